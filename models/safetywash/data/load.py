"""Load a registered dataset by name, like ``arviz.load_arviz_data``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from safetywash.data.files import StrPath
from safetywash.data.readers import read_safetywashing
from safetywash.data.registry import DatasetError, dataset_spec, fetch_dataset
from safetywash.data.sources.epoch import read_epoch_benchmark_stitching
from safetywash.data.sources.helm import read_helm_benchbench
from safetywash.data.sources.openllm import read_open_llm_leaderboard_v1
from safetywash.data.study import BenchmarkStudy

#: Dataset name -> reader taking (root directory, population).
READERS: dict[str, Callable[..., BenchmarkStudy]] = {
    "safetywashing": read_safetywashing,
    "helm-benchbench": read_helm_benchbench,
    "epoch-benchmark-stitching": read_epoch_benchmark_stitching,
    "open-llm-leaderboard-v1": read_open_llm_leaderboard_v1,
}


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
        (default: the ``SAFETYWASH_DATA_DIR`` environment variable).
    cache_dir : str or path, optional
        Download cache (default :func:`safetywash.data.registry.default_cache_dir`).
    download : bool
        Whether a missing file may be downloaded from its pinned URL.

    Returns
    -------
    BenchmarkStudy
    """
    dataset_spec(name)  # unknown names fail here, listing the known ones
    reader = READERS.get(name)
    if reader is None:
        raise DatasetError(
            f"dataset {name!r} is registered but has no reader yet; readable: {sorted(READERS)}"
        )
    root: Path = fetch_dataset(name, data_dir=data_dir, cache_dir=cache_dir, download=download)
    return reader(root, population)
