"""Files on disk: atomic writes and checksums, used by every module that writes or verifies one."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

type StrPath = str | os.PathLike[str]

#: The source checkout (``<root>/models/safetywash/data/files.py``); in an installed wheel this
#: is a folder inside ``site-packages`` that holds no project files.
SOURCE_ROOT = Path(__file__).resolve().parents[3]


def atomic_write(path: StrPath, write: Callable[[Path], None]) -> Path:
    """Write a file so that readers see either the old file or the complete new one.

    ``write`` is called with a fresh temporary path in the same folder as ``path``; when it
    returns, the temporary file replaces ``path`` in one step (:func:`os.replace`). If
    ``write`` raises anything (``KeyboardInterrupt`` included), the temporary file is removed
    and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its folder must exist.
    write : callable
        ``write(tmp)`` writes the complete content to the path ``tmp`` (an empty file that
        already exists; writers may open it or replace it).

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    The file gets the usual permissions of a new file (``0o666`` less the umask), not the
    owner-only ones of :func:`tempfile.mkstemp`.
    """
    path = Path(path)
    tmp = _create_temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _create_temporary(path: Path) -> Path:
    """An empty new file ``.<name>.<random>.part`` beside ``path``, mode 0o666 less the umask."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")


def sha256_file(path: StrPath) -> str:
    """Return the lowercase hex sha256 of a file, read in chunks.

    Not memoised: the registered data files total well under 1 MB per dataset, so hashing
    costs milliseconds, and a cache keyed on file metadata could miss a same-size edit.

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
