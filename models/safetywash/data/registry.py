"""Registry of the public score tables safetywash analyses, and fetching one by name.

Each dataset is a set of files from a public source repository, pinned to one commit and
identified by sha256. :func:`fetch_dataset` returns a local directory holding every file of a
dataset, verified (see :mod:`safetywash.data.download` for where it looks). Parsing the
files is left to the readers in :mod:`safetywash.data.sources`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from safetywash.data.download import (
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    default_cache_dir,
    fetch_files,
    resolve_data_dir,
)
from safetywash.data.errors import DatasetError
from safetywash.data.files import StrPath, sha256_file

# The locations, the error and the checksum are re-exported: callers find every dataset
# entry point here.
__all__ = [
    "CACHE_DIR_ENV",
    "DATA_DIR_ENV",
    "REGISTRY",
    "DatasetError",
    "DatasetSpec",
    "dataset_names",
    "dataset_spec",
    "default_cache_dir",
    "fetch_dataset",
    "resolve_data_dir",
    "sha256_file",
]

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: files of one source repository pinned to one commit.

    Parameters
    ----------
    name : str
        Registry key; also the directory name under a data or cache directory.
    base_url : str
        Pinned URL prefix. A file's URL is ``base_url`` joined with its path.
    files : Mapping[str, str]
        Relative POSIX path inside the source repository -> lowercase hex sha256.
    description : str
        One-line human-readable description and source.
    """

    name: str
    base_url: str
    files: Mapping[str, str] = field(hash=False)
    description: str = ""

    def __post_init__(self) -> None:
        if not self.files:
            raise ValueError(f"dataset {self.name!r} registers no files")
        for path, digest in self.files.items():
            _check_relative_path(path)
            if not _SHA256_RE.fullmatch(digest):
                raise ValueError(f"{path!r}: not a lowercase hex sha256: {digest!r}")
        object.__setattr__(self, "files", MappingProxyType(dict(sorted(self.files.items()))))

    def url(self, path: str, base_url: str | None = None) -> str:
        """Return the download URL of ``path``, optionally under another ``base_url``."""
        return _join_url(base_url or self.base_url, path)


def _check_relative_path(path: str) -> None:
    pure = PurePosixPath(path)
    if pure.is_absolute() or not pure.parts or ".." in pure.parts or "\\" in path:
        raise ValueError(f"file path must be relative, without '..': {path!r}")


def _join_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + urllib.parse.quote(path)


def _files(prefix: str, suffix: str, digests: Mapping[str, str]) -> dict[str, str]:
    """Expand ``{stem: sha256}`` to ``{prefix + stem + suffix: sha256}``."""
    return {f"{prefix}{stem}{suffix}": digest for stem, digest in digests.items()}


# Base URLs and sha256 values are copied from /work/shared/data/<name>/PROVENANCE.md; every
# checksum was re-computed from the local copies there with hashlib and matched.

_SAFETYWASHING = DatasetSpec(
    name="safetywashing",
    base_url=(
        "https://raw.githubusercontent.com/centerforaisafety/safetywashing/"
        "bee302c11f174afb064d721123b16b810d34f4fd/"
    ),
    files=_files(
        "data/",
        ".csv",
        {
            "benchmarks_base_models": (
                "52b0af4f6d6c4426614f4b95d21086d25955fa8c978d88349bdeed82bdcb1be5"
            ),
            "benchmarks_chat_models": (
                "5ede988872d8bba23d0bb87fcebb9704d7fe7d4e6f065226b691499333f57c58"
            ),
            "benchmarks_info": "a043fd235bff9b38897e7cd2a566dbdf041f56eb779dcdd0c45e55809e758470",
        },
    ),
    description=(
        "Ren et al. (2024) 'Safetywashing' matrices: 27 base and 26 chat LLMs x ~180 "
        "benchmarks, plus benchmark metadata (centerforaisafety/safetywashing, MIT)."
    ),
)

_HELM_BENCHBENCH = DatasetSpec(
    name="helm-benchbench",
    base_url=(
        "https://raw.githubusercontent.com/socialfoundations/benchbench/"
        "658cb6965ff3449df9f07d096743e6efe8dc129d/"
    ),
    files=_files(
        "benchbench/data/helm/",
        ".tsv",
        {
            "accuracy": "623167727cf7c1865d0ba979fa241d60cc5183e2b0fcb55548a165db17250a22",
            "bias": "46a23a7887b2784ca6494b554c15ec6762693c72f48b3998eea1524dd3f2a4ac",
            "calibration": "c4fec07bb1ad28f549b4471871277599bcb7677f1008f8565d45c9f234cd2a6b",
            "efficiency": "98ef5f4c139a866a9cfb7c00cd5e2fb4f4ce5664e8c8b6ef9e7579991a642ccd",
            "fairness": "31f24691f462a067d85f4df81ea7dfff6c9e3ddea02d4583f030c24a71e616a5",
            "robustness": "047fec0dbc07cb60290284d9b4bb0cd020158cc000a29fd44272f3cef13a9ce9",
            "summarization": "bdaaae14f71c514162c64f92aa8106a474a2451c96e1e7b7c5ad9dd0bb4e58cf",
            "toxicity": "4b02616c53845180ab5d8df870945c2424efc6d5031b76c99311bf8b320d9f25",
        },
    ),
    description=(
        "HELM Classic metric tables (accuracy, bias, calibration, efficiency, fairness, "
        "robustness, summarization, toxicity) for 67 models, via socialfoundations/benchbench "
        "(Zhang & Hardt, ICML 2024; MIT)."
    ),
)

_EPOCH_BENCHMARK_STITCHING = DatasetSpec(
    name="epoch-benchmark-stitching",
    base_url=(
        "https://raw.githubusercontent.com/epoch-research/benchmark-stitching/"
        "f87d3cc8e8a8f8471be475ebce58fb9a73b4e756/"
    ),
    files={
        **_files(
            "data/",
            ".csv",
            {
                "benchmarks_runs": (
                    "5907dfcbd446aeec61d20a0d971be3b6ca07ecf46f40ada3a4b8e26a656b70a8"
                ),
                "model_versions": (
                    "08025ffc7b5c00781dd86ef5261f38b2204ed6d5b36160c61af3d9c8da9a10e6"
                ),
            },
        ),
        **_files(
            "data/external_benchmark_",
            ".csv",
            {
                "aider_polyglot": (
                    "020086010f6bdd3bff393ef3dd35a772436415226f0e502b1148a0047243e0cc"
                ),
                "anli": "6f455864562b479a5976b27b7f467a30eff58c96e9bc2d6aafdedb8f383d4650",
                "arc_agi": "4b227f7d3d4f7205f331cc8b38da6ebb93354fc554360e8bb7838012274de7c3",
                "arc_ai2": "73d2913f18b3541d4ef1632bbe1159db26ba7cff22bc57164a69447944db7208",
                "balrog": "5292e9d495e27d24c974bdee085d8f61950b435d963420cfd0446903d088dcc2",
                "bbh": "952840e40e7be7ed16ab9c6a7b1ec8d6e0798d2d8a2d0a8e7a82f4cd371a5bc2",
                "boolq": "3358a1412a446b585c4b336cf2ff570e8c22939f650df5cf3fa40678bfb4678a",
                "cadeval": "73a02a913b76378bec0ab82171fc9ab9e20986cbc9ee5e02d4f2cc8dd077ed00",
                "csqa2": "80ec45c44ceb5e49b581cafe2972eb3341f4e3d8d5e9930817a1f572d1b3df49",
                "cybench": "c2f691d9da3112f483785bc01e6d6f94e5565b8dcbb222ecf5702de22e2e372d",
                "deepresearch": "45636c6da16389aefb62f9e9331875ffd8ddc84fad8adba33118191f3137672a",
                "factorio_learning_environment": (
                    "d17880ea192747e15417ad5c429fbae2ae019e5695929875eea87d8139641352"
                ),
                "fictionlivebench": (
                    "67d0128f067410e45337f1df5458c2719dd48ead985502c86a1a5659edc5754d"
                ),
                "geobench": "ef546f421267e903757e6e2931d39255dfc461521921c75a84b84dabbced01de",
                "gsm8k": "8606ddd2cd8cbedd3aad9efadc76e45e7b3db9a053c0ddad0fe86427862e3ca5",
                "gso_bench": "d2592c18feec9ead53892ed7902a5818a418bb0b9cec45eb25514f28e99e3459",
                "hellaswag": "6e812925ca86fddcb3faf0c3f5b9cc44c6e00890aeda99bde98d96179b89eaae",
                "lambada": "8b003e7626585053bfdead814489b662f3d340907877e71f7834cd0d3a4a9e7f",
                "lech_mazur_writing": (
                    "60cdcf595807204610be50e48c397ba27f133ce41a87c6a86430a7015227233c"
                ),
                "livebench": "a816646abde0bda45a8118fc253842fb333b3df8215b26794c1f2c451da08414",
                "mcbench": "f5f57c9e01e9f02be7e56bc4228fb2cb86bc523fcebe5cce6a70d14c95aab163",
                "metr": "9665b4f6a2d5a2cfe0600b8afbdf126eafc9e2c6e7435474d96044202c390953",
                "mmlu": "6bd3bb6d9eba5d841d905a9dd56ac11650da7563c6c1efab5c03d3929bff05a8",
                "openbookqa": "deb1cdaf00be63c99dbcfda0fd4abaea6649354a4a05113fd6474dde49dac323",
                "os_world": "0ce84c19eab4b9df4d1e7733a214f410e450731f0027cf63cf9162992aa665c8",
                "osuniverse": "12e2635a7da3e1d6d6bde7a52860b4ae5724fd980f6fa4556186d54e7ea4df59",
                "piqa": "dd2ffd7ba5aae9a84bff2f45700a401611ffc19d69194952ffc13e623c3e3a16",
                "scienceqa": "01853dc4f43c3f711727dafdbfec581b78631314f95578dd72fcfe72cb12d031",
                "simple_bench": "b299fc36d0a20733e67e46ec579e2e5109bc8b240fa1e7a5bcb5419cf34f103c",
                "superglue": "66d09c3c47db5ca6e30e05e3c2284a526fec2e4d4c0ee87d5d3f69f93d542b56",
                "terminal_bench": (
                    "345a38e18b2c17e7f5c92dd8d3fd462b551c43791b1bea31c800395e50da077e"
                ),
                "the_agent_company": (
                    "56bd6c5404a8cd766b5f6bd87dfd0b2f2d79c663e145ce0700bb7ce1a04abfca"
                ),
                "triviaqa": "c1f3489eb3faa7830d3378b531783c9010e530ea49f0d814eba76158bbd5f4a9",
                "videomme": "440fb4ec0cee1b4c0e64729d089825dd711c5fdc7dcec8a74d214ce60b209862",
                "vpct": "88818218a894b26b1232bdf6af1f7062f3b5faed8c796b13a4b95b2ab84a42d7",
                "weirdml": "83f5daf7a1685db0d07f4d5052533f42e0913717b2733a395f8ba25c55613000",
                "winogrande": "53c7ed0d229d5566166bb7ddb19764bda7000bb59603e727f16e8626de071445",
            },
        ),
    },
    description=(
        "Epoch AI 'benchmark stitching' scores ('A Rosetta Stone for AI Benchmarks'): internal "
        "Inspect runs, 37 external benchmark tables and the model-version registry "
        "(epoch-research/benchmark-stitching, MIT)."
    ),
)

# Only the Open LLM Leaderboard v1 table is registered. PROVENANCE.md lists nine more IBM/benchbench
# files; helm_classic_240829.csv in particular has misaligned columns (use helm-benchbench).
_OPEN_LLM_LEADERBOARD_V1 = DatasetSpec(
    name="open-llm-leaderboard-v1",
    base_url=(
        "https://raw.githubusercontent.com/IBM/benchbench/1dfd46a6f5dbc6ca8b7728425f1991625a6d4088/"
    ),
    files=_files(
        "src/bat/assets/benchmarks_old/",
        ".csv",
        {
            "hf_open_llm_v1_240829_frozen": (
                "146ff259e7fde1c7948695916a9a03b84d565fcea735e4a703ff8723b513775b"
            ),
        },
    ),
    description=(
        "Hugging Face Open LLM Leaderboard v1 (frozen 2024-08-29): 1804 submissions x 6 "
        "benchmarks, via IBM/benchbench (Apache-2.0 per its LICENCE file)."
    ),
)

REGISTRY: Mapping[str, DatasetSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _SAFETYWASHING,
            _HELM_BENCHBENCH,
            _EPOCH_BENCHMARK_STITCHING,
            _OPEN_LLM_LEADERBOARD_V1,
        )
    }
)
"""All registered datasets, by name (read-only)."""


def dataset_names() -> list[str]:
    """Return the names of all registered datasets.

    Returns
    -------
    list of str
        Sorted dataset names, usable as the ``name`` argument of :func:`fetch_dataset`.
    """
    return sorted(REGISTRY)


def dataset_spec(name: str) -> DatasetSpec:
    """Return the registry entry of a dataset.

    Parameters
    ----------
    name : str
        A registered dataset name (see :func:`dataset_names`).

    Returns
    -------
    DatasetSpec

    Raises
    ------
    DatasetError
        If ``name`` is not registered; the message lists the known names.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(dataset_names())
        raise DatasetError(f"Unknown dataset {name!r}. Known datasets: {known}.") from None


def fetch_dataset(
    name: str,
    data_dir: StrPath | None = None,
    cache_dir: StrPath | None = None,
    base_url: str | None = None,
    download: bool = True,
    timeout: float = 30,
) -> Path:
    """Return a local directory holding every file of a dataset, verified by sha256.

    Parameters
    ----------
    name : str
        Registered dataset name (see :func:`dataset_names`).
    data_dir, cache_dir, base_url, download, timeout
        As in :func:`safetywash.data.download.fetch_files`: a local data directory (default
        ``SAFETYWASH_DATA_DIR``) that must then hold the whole dataset; else the download
        cache (default :func:`default_cache_dir`), filled from ``base_url`` (default the
        pinned source) unless ``download`` is False.

    Returns
    -------
    pathlib.Path
        Dataset root ``R``; file ``p`` of the dataset is at ``R / p``.

    Raises
    ------
    DatasetError
        If the name is unknown, or the files cannot be found, downloaded or verified (the
        message says where to put them for offline use).
    """
    return fetch_files(
        dataset_spec(name),
        data_dir=data_dir,
        cache_dir=cache_dir,
        base_url=base_url,
        download=download,
        timeout=timeout,
    )
