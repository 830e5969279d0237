"""Where a registered dataset's files are on this machine, and getting them there.

:func:`fetch_files` returns a directory in which every file of a dataset sits at its path
inside the source repository. It looks in three places, in this order:

1. a local data directory (the ``data_dir`` argument, else the ``SAFETYWASH_DATA_DIR``
   environment variable), laid out as ``<data_dir>/<dataset name>/<path in source repository>``;
2. the download cache, ``<cache_dir>/<dataset name>/<path in source repository>`` (see
   :func:`default_cache_dir`);
3. the network: missing cache files are downloaded from the pinned URL and checked.

Every file is checked against its registered sha256 before the directory is returned.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from safetywash import __version__
from safetywash.data.errors import DatasetError
from safetywash.data.files import StrPath, atomic_write, sha256_file

if TYPE_CHECKING:
    from safetywash.data.registry import DatasetSpec

DATA_DIR_ENV = "SAFETYWASH_DATA_DIR"
CACHE_DIR_ENV = "SAFETYWASH_CACHE_DIR"

_CHUNK_SIZE = 1 << 20


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


def fetch_files(
    spec: DatasetSpec,
    data_dir: StrPath | None = None,
    cache_dir: StrPath | None = None,
    base_url: str | None = None,
    download: bool = True,
    timeout: float = 30,
    origin: str | None = None,
) -> Path:
    """Return a local directory holding every file of a dataset, verified by sha256.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset (see :func:`safetywash.data.registry.dataset_spec`).
    data_dir : str or os.PathLike, optional
        Local data directory laid out as ``<data_dir>/<spec.name>/<path in source repository>``.
        Defaults to the ``SAFETYWASH_DATA_DIR`` environment variable. When a data directory is
        set, it must hold the whole dataset: the cache and the network are not used.
    cache_dir : str or os.PathLike, optional
        Cache root, laid out as ``<cache_dir>/<spec.name>/<path>``. Defaults to
        :func:`default_cache_dir`.
    base_url : str, optional
        Download from this URL prefix instead of the registered pinned one (e.g. a mirror).
    download : bool, default True
        If False, never use the network; fail if the cache is incomplete.
    timeout : float, default 30
        Socket timeout in seconds for each download.
    origin : str, optional
        How ``data_dir`` was chosen, named in error messages (default "data_dir argument").

    Returns
    -------
    pathlib.Path
        Dataset root ``R``; file ``p`` of the dataset is at ``R / p``.

    Raises
    ------
    DatasetError
        If a data directory is set but lacks files or holds a file
        with the wrong sha256; if a download fails or yields the wrong sha256; or if files are
        missing from the cache and ``download`` is False. Messages say where to put the files
        for offline use.
    """
    local = resolve_data_dir(data_dir)
    if local is not None:
        if data_dir is None:
            origin = f"${DATA_DIR_ENV}"
        return _verify_local_dir(spec, local, origin or "data_dir argument")
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
    """Download ``url`` to a temporary file beside ``dest``; keep it only if its sha256 matches."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as out:
            actual = _stream_to(url, out, timeout)
        if actual != expected:
            raise DatasetError(
                f"Checksum mismatch for {url}: expected sha256 {expected}, got {actual}. "
                "The download was discarded; the server may be serving different content."
            )

    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, write)


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
