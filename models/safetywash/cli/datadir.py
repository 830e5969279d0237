"""Where the commands look for local data when ``--data-dir`` is not given."""

from __future__ import annotations

import os
from pathlib import Path

from safetywash.data.registry import DATA_DIR_ENV

#: ``../shared/data`` beside the project root, used when it exists and nothing else is set.
SHARED_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def default_data_dir() -> Path | None:
    """The local data directory the commands use unless ``--data-dir`` is given.

    Returns
    -------
    pathlib.Path or None
        ``SAFETYWASH_DATA_DIR`` if set, else ``../shared/data`` beside the project root if
        it exists, else ``None`` (download into the cache).
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return SHARED_DATA_DIR if SHARED_DATA_DIR.is_dir() else None
