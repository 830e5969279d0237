"""Output folders written whole: staged beside the target, moved into place when complete.

A command that writes a folder (``fit --out RUN``, ``sbc --out DIR``, ``sensitivity
--save-fits DIR``) builds it as ``.<name>.partial-<pid>-<random>`` in the target's parent
(:func:`staged_folder`) and moves it into place in one rename when everything is written
(:func:`place_folder`): readers see the old folder or the complete new one, never a mix.
An existing non-empty folder is replaced only when asked (``overwrite``): the old one is
renamed aside as ``.<name>.replaced-<pid>-<random>``, the new one moved in, then the old
one deleted.

Leftovers of interrupted runs are removed by :func:`clean_leftovers` on the next run:
staged folders of processes no longer running, set-aside folders whose replacement is in
place (restored when it is not), and the temporary files of interrupted atomic writes.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "ATOMIC_PART_GRACE_SECONDS",
    "OutputFolderError",
    "check_output_folder",
    "clean_leftovers",
    "partial_prefix",
    "place_folder",
    "staged_folder",
]

#: A temporary file of an interrupted atomic write (``safetywash.data.files.atomic_write``)
#: untouched this long is a leftover (a live write keeps modifying its file).
ATOMIC_PART_GRACE_SECONDS = 600.0

_STAGED = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|replaced)-(?P<pid>\d+)-[^/]+$")
_ATOMIC_PART = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.part$")


class OutputFolderError(Exception):
    """An output folder that cannot be written as asked (it exists, or is a file)."""


def partial_prefix(name: str) -> str:
    """The name prefix of a folder staged for ``name`` by this process."""
    return f".{name}.partial-{os.getpid()}-"


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_leftovers(folder: str | Path, targets: Iterable[str] = ()) -> list[Path]:
    """Remove what interrupted runs left in ``folder``; return what was removed or restored.

    * ``.<name>.partial-<pid>-*``: a staged folder (or file) of a process no longer running.
    * ``.<name>.replaced-<pid>-*`` of a process no longer running: deleted when ``<name>``
      exists (the replacement is in place), else renamed back to ``<name>``.
    * ``.<name>.<8 hex>.part``: an interrupted atomic write, when ``<name>`` is in
      ``targets`` (about to be written again) or it has not changed for
      :data:`ATOMIC_PART_GRACE_SECONDS`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    targets, done, now = set(targets), [], time.time()
    for entry in sorted(folder.iterdir()):
        staged, part = _STAGED.match(entry.name), _ATOMIC_PART.match(entry.name)
        if staged and not _running(int(staged["pid"])):
            original = folder / staged["name"]
            if staged["kind"] == "replaced" and not original.exists():
                entry.rename(original)
            else:
                _remove(entry)
            done.append(entry)
        elif part and entry.is_file():
            stale = now - entry.stat().st_mtime > ATOMIC_PART_GRACE_SECONDS
            if part["name"] in targets or stale:
                entry.unlink(missing_ok=True)
                done.append(entry)
    return done


def _is_empty(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def check_output_folder(
    path: str | Path, *, overwrite: bool, markers: Iterable[str] = (), option: str = "--out"
) -> None:
    """Refuse an output folder that cannot be written as asked.

    Parameters
    ----------
    path : str or pathlib.Path
        The folder to write.
    overwrite : bool
        Whether an existing non-empty folder may be replaced.
    markers : iterable of str
        Names (glob patterns) one of which a folder must hold to be replaced: a folder
        that holds none of them was not written by this command and is never replaced.
    option : str
        The option that named the folder, for the messages.

    Raises
    ------
    OutputFolderError
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputFolderError(f"{option} {path} is an existing file, not a folder")
    if path.absolute() in (Path.cwd(), *Path.cwd().parents):
        raise OutputFolderError(f"{option} {path} is the current folder or above it")
    if path.is_dir() and not _is_empty(path):
        if not overwrite:
            raise OutputFolderError(
                f"{option} {path} already exists and is not empty; choose another folder, "
                "or pass --overwrite to replace it"
            )
        markers = list(markers)
        if markers and not any(any(path.glob(m)) for m in markers):
            raise OutputFolderError(
                f"{option} {path} holds none of {markers}: it was not written by this "
                "command and is not replaced; choose another folder"
            )


@contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to build it in; removed if the block fails.

    Use :func:`place_folder` inside the block to move it into place.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.parent / f"{partial_prefix(target.name)}{secrets.token_hex(4)}"
    stage.mkdir()
    try:
        yield stage
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def place_folder(stage: Path, target: str | Path, *, overwrite: bool) -> Path:
    """Move a complete staged folder to ``target`` in one rename.

    A missing or empty ``target`` is simply replaced. A non-empty one is replaced only with
    ``overwrite``: renamed aside, the new folder moved in, the old one deleted. Without
    ``overwrite`` (the folder was filled while this command ran) the new folder is kept
    beside it as ``<target>-<date>-<time>`` and :class:`OutputFolderError` says where.

    Returns
    -------
    pathlib.Path
        ``target``.
    """
    target = Path(target)
    if not target.exists() or _is_empty(target):
        os.replace(stage, target)
        return target
    if not overwrite:
        kept = target.with_name(f"{target.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(stage, kept)
        raise OutputFolderError(
            f"{target} was filled while this command ran and is left as it was; the new "
            f"results are in {kept}"
        )
    aside = target.parent / f".{target.name}.replaced-{os.getpid()}-{secrets.token_hex(4)}"
    os.replace(target, aside)
    try:
        os.replace(stage, target)
    except BaseException:
        os.replace(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return target
