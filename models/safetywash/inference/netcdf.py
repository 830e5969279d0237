"""The bytes of a fit file: checksummed, compressed NetCDF-4 (HDF5) written and read in full.

Every numeric array of a fit is written with HDF5's fletcher32 checksum and gzip compression
(shuffled), per chunk. HDF5 checks a chunk's checksum only when the chunk is read, so
:func:`read_tree` reads every variable before the file is closed: damaged data is found at
load time, never handed on. Text arrays (names, metadata) and attrs are not filtered (HDF5
cannot filter variable-length strings); they are covered by the file's own structure checks.

Whatever goes wrong while a file is read (missing, not HDF5, truncated, a checksum or
decompression failure, a layout that is not a NetCDF-4 tree) becomes one
:class:`FitFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import re
from pathlib import Path

import xarray as xr

__all__ = [
    "CHECKSUMMED",
    "FitFileError",
    "checksummed_encoding",
    "describe_read_error",
    "read_tree",
    "write_netcdf",
]

#: Filters of every numeric array of a saved fit (h5netcdf encoding names).
CHECKSUMMED = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "fletcher32": True}

_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


class FitFileError(ValueError):
    """A fit file that cannot be read: missing, not HDF5, truncated or corrupted."""


def checksummed_encoding(dt: xr.DataTree) -> dict[str, dict[str, dict]]:
    """The ``to_netcdf`` encoding of a tree: :data:`CHECKSUMMED` for every numeric array.

    One chunk per chain (the whole array when it has no ``chain`` dimension). Scalars and
    text arrays are left as they are (HDF5 filters need chunked numeric data).
    """
    encoding = {}
    for node in dt.subtree:
        filtered = {
            str(name): {**CHECKSUMMED, "chunksizes": _chunks(var)}
            for name, var in node.to_dataset().variables.items()
            if var.ndim and var.size and var.dtype.kind in "biuf"
        }
        if filtered:
            encoding[node.path] = filtered
    return encoding


def _chunks(var: xr.Variable) -> tuple[int, ...]:
    return (1, *var.shape[1:]) if var.dims[0] == "chain" else var.shape


def write_netcdf(data: xr.DataTree | xr.Dataset, path: str | Path) -> None:
    """Write a tree (or one dataset) to ``path`` (h5netcdf) with :func:`checksummed_encoding`."""
    if isinstance(data, xr.Dataset):
        encoding = checksummed_encoding(xr.DataTree(data)).get("/", {})
    else:
        encoding = checksummed_encoding(data)
    data.to_netcdf(path, engine="h5netcdf", encoding=encoding)


def read_tree(path: str | Path) -> xr.DataTree:
    """Open a NetCDF-4 tree and read every variable of it into memory.

    Raises
    ------
    FitFileError
        The file is missing, not an HDF5 file, truncated, fails a checksum or cannot be
        decoded as a tree; the message names the file (and the variable, for damaged data).
    """
    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"no fit file at {path}")
    try:
        opened = xr.open_datatree(path, engine="h5netcdf")
    except Exception as err:  # any failure to open is a fact about the file
        raise FitFileError(f"{path}: {describe_read_error(err, path)}") from err
    with opened:
        for node in opened.subtree:
            for name, var in node.variables.items():
                try:
                    var.load()
                except Exception as err:
                    where = f"{node.path.rstrip('/')}/{name}"
                    raise FitFileError(
                        f"{path}: variable {where} cannot be read: {describe_read_error(err, path)}"
                    ) from err
        return opened.load()


def describe_read_error(err: BaseException, path: Path) -> str:
    """What an HDF5 read error says about a file, in words."""
    text = " ".join(str(err).split())
    size = path.stat().st_size if path.exists() else 0
    truncated = _TRUNCATED.search(text)
    if truncated:
        have, want = (int(g) for g in truncated.groups())
        return (
            f"the file is truncated ({have} of {want} bytes; an interrupted write or copy); "
            "refit or restore a complete copy"
        )
    if size == 0:
        return "the file is empty; refit or restore a complete copy"
    if "file signature not found" in text:
        return (
            "not an HDF5/NetCDF-4 file (no HDF5 signature); expected a posterior.nc "
            "written by 'safetywash fit'"
        )
    if "filter returned failure" in text or "checksum" in text.lower():
        return (
            "the data is corrupted (its HDF5 checksum or decompression failed); the file "
            "changed after it was written: refit or restore a copy"
        )
    return f"not a readable fit file ({type(err).__name__}: {text})"
