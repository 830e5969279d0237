"""Paths on the command line: what a command reads and writes, checked before any work.

Input paths must exist; output paths must be writable (their nearest existing folder) and
of the right kind (an output folder that is a file, or an output file that is a folder, is
refused). Output folders are built whole (:mod:`safetywash.report.runfolder`); output files
are written atomically (:func:`safetywash.data.files.atomic_write`).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from safetywash.cli.values import UsageError
from safetywash.data.files import atomic_write
from safetywash.report.runfolder import OutputFolderError, check_output_folder, clean_leftovers

__all__ = [
    "add_run_argument",
    "fit_path",
    "input_file",
    "output_dir",
    "output_file",
    "prepare_output_folder",
    "run_dir",
    "writable_run",
    "write_csv",
    "write_json",
]


def _writable_beside(path: Path) -> None:
    """Outputs are built beside their target: the nearest existing folder above ``path``
    (and ``path`` itself, when it is an existing folder) must be a writable folder."""
    parent = path.absolute().parent
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {path}: {existing} is a file, not a folder")
    for folder in (existing, path) if path.is_dir() else (existing,):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"cannot write {path}: {folder} is not writable")


def output_dir(text: str) -> Path:
    """An argparse ``type``: a folder to write (created if missing, not a file, writable)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is an existing file, not a folder")
    _writable_beside(path)
    return path


def output_file(text: str) -> Path:
    """An argparse ``type``: a file to write (replaced if present, not a folder, writable)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder, not a file")
    _writable_beside(path)
    return path


def input_file(text: str) -> Path:
    """An argparse ``type``: an existing file to read."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {path}")
    return path


def run_dir(text: str) -> Path:
    """An argparse ``type``: a run folder holding ``posterior.nc``."""
    path = Path(text)
    if not (path / "posterior.nc").is_file():
        raise argparse.ArgumentTypeError(
            f"no fit in {path}: expected {path / 'posterior.nc'} (written by 'safetywash fit')"
        )
    return path


def fit_path(text: str) -> Path:
    """An argparse ``type``: a run folder holding ``posterior.nc``, or a ``.nc`` fit file."""
    path = Path(text)
    return path if path.is_file() else run_dir(text)


def writable_run(run: Path) -> Path:
    """The folder a command writes its default outputs into (a run folder, or a fit
    file's folder), refused up front when it is not writable."""
    folder = run if run.is_dir() else run.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write into {folder} (permission denied)")
    return folder


def prepare_output_folder(
    path: Path, *, overwrite: bool, markers: Sequence[str], option: str = "--out"
) -> None:
    """Before any work: refuse ``path`` unless it can be written as asked
    (:func:`safetywash.report.runfolder.check_output_folder`), then clean what interrupted
    runs left beside it."""
    try:
        check_output_folder(path, overwrite=overwrite, markers=markers, option=option)
    except OutputFolderError as err:
        raise UsageError(str(err)) from None
    clean_leftovers(path.parent)


def write_json(path: Path, payload, *, ensure_ascii: bool = True) -> None:
    """Write ``payload`` as indented JSON (UTF-8, trailing newline), atomically; say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, ensure_ascii=ensure_ascii) + "\n"
    clean_leftovers(path.parent, [path.name])
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    print(f"wrote {path}")


def write_csv(path: Path, table: pd.DataFrame) -> Path:
    """Write ``table`` as CSV (no index), atomically: the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path.parent, [path.name])
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    """The positional ``RUN`` of a command that reads a fit: a run folder or a .nc file."""
    parser.add_argument(
        "run", type=fit_path, metavar="RUN", help="run folder (with posterior.nc) or .nc fit"
    )
