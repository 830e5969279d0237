"""Registry and checksum-verified downloader for the public score tables safetywash analyses.

Each dataset is a set of files from a public source repository, pinned to one commit and
identified by sha256. :func:`fetch_dataset` returns a directory in which every file sits at
its path inside the source repository. It looks in three places, in this order:

1. a local data directory (the ``data_dir`` argument, else the ``SAFETYWASH_DATA_DIR``
   environment variable), laid out as ``<data_dir>/<dataset name>/<path in source repository>``;
2. the download cache, ``<cache_dir>/<dataset name>/<path in source repository>`` (see
   :func:`default_cache_dir`);
3. the network: missing cache files are downloaded from the pinned URL and checked.

Every file is checked against its registered sha256 before the directory is returned. Parsing
the files is left to :mod:`safetywash.data.readers`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import BinaryIO

from safetywash import __version__

__all__ = [
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

DATA_DIR_ENV = "SAFETYWASH_DATA_DIR"
CACHE_DIR_ENV = "SAFETYWASH_CACHE_DIR"

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK_SIZE = 1 << 20

type StrPath = str | os.PathLike[str]


class DatasetError(RuntimeError):
    """A dataset could not be found, downloaded or verified."""


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


def resolve_data_dir(data_dir: StrPath | None = None) -> Path | None:
    """Return the local data directory to use, if any.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Explicit directory. Takes precedence over the environment variable.

    Returns
    -------
    pathlib.Path or None
        ``data_dir`` if given, else the ``SAFETYWASH_DATA_DIR`` environment variable if set
        and non-empty, else None. ``~`` is expanded.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV)
    return Path(from_env).expanduser() if from_env else None


def default_cache_dir() -> Path:
    """Return the directory under which downloaded datasets are cached.

    Returns
    -------
    pathlib.Path
        ``SAFETYWASH_CACHE_DIR`` if set and non-empty; else ``$XDG_CACHE_HOME/safetywash`` if
        ``XDG_CACHE_HOME`` is an absolute path (the XDG spec says to ignore relative ones);
        else ``~/.cache/safetywash``. The directory is not created.
    """
    from_env = os.environ.get(CACHE_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "safetywash"
    return Path.home() / ".cache" / "safetywash"


def sha256_file(path: StrPath) -> str:
    """Return the lowercase hex sha256 of a file, read in chunks.

    Not memoised: the registered files total well under 1 MB per dataset, so hashing costs
    milliseconds, and a cache keyed on file metadata could miss a same-size in-place edit.

    Parameters
    ----------
    path : str or os.PathLike
        File to hash.

    Returns
    -------
    str
        64 hex digits.
    """
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


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
    data_dir : str or os.PathLike, optional
        Local data directory laid out as ``<data_dir>/<name>/<path in source repository>``.
        Defaults to the ``SAFETYWASH_DATA_DIR`` environment variable. When a data directory is
        set, it must hold the whole dataset: the cache and the network are not used.
    cache_dir : str or os.PathLike, optional
        Cache root, laid out as ``<cache_dir>/<name>/<path>``. Defaults to
        :func:`default_cache_dir`.
    base_url : str, optional
        Download from this URL prefix instead of the registered pinned one (e.g. a mirror).
    download : bool, default True
        If False, never use the network; fail if the cache is incomplete.
    timeout : float, default 30
        Socket timeout in seconds for each download.

    Returns
    -------
    pathlib.Path
        Dataset root ``R``; file ``p`` of the dataset is at ``R / p``.

    Raises
    ------
    DatasetError
        If the name is unknown; if a data directory is set but lacks files or holds a file
        with the wrong sha256; if a download fails or yields the wrong sha256; or if files are
        missing from the cache and ``download`` is False. Messages say where to put the files
        for offline use.
    """
    spec = dataset_spec(name)
    local = resolve_data_dir(data_dir)
    if local is not None:
        origin = "data_dir argument" if data_dir is not None else f"${DATA_DIR_ENV}"
        return _verify_local_dir(spec, local, origin)
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root = cache_root / spec.name
    stale = _stale_cache_files(spec, root)
    if stale and not download:
        headline = (
            f"Dataset {spec.name!r} is not fully cached under {cache_root} and download=False."
        )
        raise DatasetError(_offline_message(spec, cache_root, stale, headline))
    for path in stale:
        try:
            _download_verified(spec.url(path, base_url), root / path, spec.files[path], timeout)
        except _NetworkError as exc:
            headline = f"Dataset {spec.name!r} could not be downloaded: {exc}."
            raise DatasetError(_offline_message(spec, cache_root, stale, headline)) from exc
    return root


class _NetworkError(Exception):
    """Internal: fetching a URL failed; the urllib / socket error is the ``__cause__``."""


def _verify_local_dir(spec: DatasetSpec, data_dir: Path, origin: str) -> Path:
    root = data_dir / spec.name
    missing = [path for path in spec.files if not (root / path).is_file()]
    if missing:
        raise DatasetError(_local_missing_message(spec, data_dir, origin, missing))
    mismatches = _checksum_mismatches(spec, root, spec.files)
    if mismatches:
        lines = [
            f"  {root / path}: expected sha256 {exp}, got {act}" for path, exp, act in mismatches
        ]
        raise DatasetError(
            f"Checksum mismatch in dataset {spec.name!r} under data directory {data_dir} "
            f"({origin}):\n" + "\n".join(lines) + f"\nRe-copy the files from {spec.base_url}."
        )
    return root


def _local_missing_message(
    spec: DatasetSpec, data_dir: Path, origin: str, missing: list[str]
) -> str:
    root = data_dir / spec.name
    listed = "\n".join(f"  {root / path}" for path in missing)
    return (
        f"Data directory {data_dir} ({origin}) lacks {len(missing)} of {len(spec.files)} "
        f"file(s) of dataset {spec.name!r}:\n{listed}\n"
        f"Expected layout: <data_dir>/{spec.name}/<path in source repository>, "
        f"e.g. {root / next(iter(spec.files))}. Files are available from {spec.base_url}. "
        f"To use the download cache instead, do not pass data_dir and unset {DATA_DIR_ENV}."
        + _nesting_hint(spec, data_dir)
    )


def _nesting_hint(spec: DatasetSpec, data_dir: Path) -> str:
    """Hint for the common mistake of passing the dataset root instead of its parent."""
    if all((data_dir / path).is_file() for path in spec.files):
        return (
            f" Note: {data_dir} itself holds the files; pass its parent directory "
            f"{data_dir.parent} instead."
        )
    return ""


def _checksum_mismatches(
    spec: DatasetSpec, root: Path, paths: Iterable[str]
) -> list[tuple[str, str, str]]:
    found = ((path, spec.files[path], sha256_file(root / path)) for path in paths)
    return [(path, expected, actual) for path, expected, actual in found if expected != actual]


def _stale_cache_files(spec: DatasetSpec, root: Path) -> list[str]:
    """Paths whose cached copy is absent or has the wrong checksum."""
    present = [path for path in spec.files if (root / path).is_file()]
    bad = {path for path, _, _ in _checksum_mismatches(spec, root, present)}
    return [path for path in spec.files if path not in present or path in bad]


def _download_verified(url: str, dest: Path, expected: str, timeout: float) -> None:
    """Download ``url`` to a temp file next to ``dest``, check its sha256, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _stream_to(url, out, timeout)
        if actual != expected:
            raise DatasetError(
                f"Checksum mismatch for {url}: expected sha256 {expected}, got {actual}. "
                "The download was discarded; the server may be serving different content."
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _stream_to(url: str, out: BinaryIO, timeout: float) -> str:
    """Copy ``url`` into the binary file ``out``; return the sha256 of the bytes."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": f"safetywash/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            while chunk := response.read(_CHUNK_SIZE):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        raise _NetworkError(f"could not fetch {url}: {exc}") from exc
    return digest.hexdigest()


def _offline_message(spec: DatasetSpec, cache_root: Path, stale: list[str], headline: str) -> str:
    example = next(iter(spec.files))
    files = "\n".join(
        f"    {path}" + ("   <- missing or corrupt in cache" if path in stale else "")
        for path in spec.files
    )
    return (
        f"{headline}\n"
        f"For offline use, get these files (pinned source: {spec.base_url}):\n{files}\n"
        "and put them in either of these places:\n"
        f"  1. a data directory given as data_dir=... or via {DATA_DIR_ENV}, laid out as\n"
        f"     <data_dir>/{spec.name}/<path>, e.g. <data_dir>/{spec.name}/{example}\n"
        "  2. the download cache, laid out as\n"
        f"     {cache_root / spec.name}/<path>, e.g. {cache_root / spec.name / example}\n"
        "Checksums (sha256) are listed in safetywash.data.registry.REGISTRY and are verified."
    )
