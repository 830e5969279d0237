"""Load a registered dataset by name, like ``arviz.load_arviz_data``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from safetywash.data.download import DATA_DIR_ENV, fetch_files, resolve_data_dir
from safetywash.data.errors import DatasetError
from safetywash.data.files import SOURCE_ROOT, StrPath
from safetywash.data.registry import dataset_spec
from safetywash.data.sources.epoch import EPOCH_POPULATIONS, read_epoch_benchmark_stitching
from safetywash.data.sources.helm import HELM_POPULATIONS, read_helm_benchbench
from safetywash.data.sources.openllm import OPENLLM_POPULATIONS, read_open_llm_leaderboard_v1
from safetywash.data.sources.safetywashing import POPULATIONS, read_safetywashing
from safetywash.data.study import BenchmarkStudy

#: Dataset name -> reader taking (root directory, population).
READERS: dict[str, Callable[..., BenchmarkStudy]] = {
    "safetywashing": read_safetywashing,
    "helm-benchbench": read_helm_benchbench,
    "epoch-benchmark-stitching": read_epoch_benchmark_stitching,
    "open-llm-leaderboard-v1": read_open_llm_leaderboard_v1,
}

#: Dataset name -> the populations its reader accepts.
DATASET_POPULATIONS: dict[str, tuple[str, ...]] = {
    "safetywashing": tuple(POPULATIONS),
    "helm-benchbench": tuple(HELM_POPULATIONS),
    "epoch-benchmark-stitching": tuple(EPOCH_POPULATIONS),
    "open-llm-leaderboard-v1": tuple(OPENLLM_POPULATIONS),
}


def default_population(name: str) -> str:
    """The population the commands fit when none is named: chat LLMs for Safetywashing (the
    paper's headline table), the one population ``"all"`` for the other datasets."""
    return "chat" if name == "safetywashing" else "all"


#: ``../shared/data`` beside the project root, used when it exists and nothing else is set.
SHARED_DATA_DIR = SOURCE_ROOT.parent / "shared" / "data"


def default_data_dir() -> Path | None:
    """The local data directory used when none is given.

    Returns
    -------
    pathlib.Path or None
        ``SAFETYWASH_DATA_DIR`` if set and non-empty, else ``../shared/data`` beside the
        project root if it exists, else ``None`` (files come from the download cache).
    """
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return SHARED_DATA_DIR if SHARED_DATA_DIR.is_dir() else None


def load_dataset(
    name: str,
    population: str = "all",
    *,
    data_dir: StrPath | None = None,
    cache_dir: StrPath | None = None,
    download: bool = True,
) -> BenchmarkStudy:
    """A registered dataset as a validated study.

    Parameters
    ----------
    name : str
        Registered dataset name (see :func:`safetywash.data.registry.dataset_names`).
    population : str
        Population selector (``"base"``, ``"chat"`` or ``"all"`` for ``safetywashing``).
    data_dir : str or path, optional
        Local directory laid out as ``<data_dir>/<name>/<path in source repository>``
        (default: :func:`default_data_dir`). When a local directory is used it must hold
        the whole dataset.
    cache_dir : str or path, optional
        Download cache (default :func:`safetywash.data.download.default_cache_dir`), used
        when there is no local directory.
    download : bool
        Whether a missing file may be downloaded from its pinned URL.

    Returns
    -------
    BenchmarkStudy
    """
    spec = dataset_spec(name)  # unknown names fail here, listing the known ones
    reader = READERS.get(name)
    if reader is None:
        raise DatasetError(
            f"dataset {name!r} is registered but has no reader yet; readable: {sorted(READERS)}"
        )
    origin = None
    if data_dir is None and resolve_data_dir() is None:
        data_dir = default_data_dir()
        origin = f"the default beside the project, as {DATA_DIR_ENV} is not set"
    root = fetch_files(
        spec, data_dir=data_dir, cache_dir=cache_dir, download=download, origin=origin
    )
    return reader(root, population)
