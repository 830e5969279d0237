"""The environment of a benchmark's child fit, optionally with empty compile caches."""

from __future__ import annotations

import os
from pathlib import Path


def child_env(tmp: Path, cold_cache: bool) -> dict:
    """A copy of this process's environment; with ``cold_cache``, PyTensor's compile directory
    and Numba's cache point into ``tmp``, so the child compiles everything afresh."""
    env = dict(os.environ)
    if cold_cache:
        flags = [env.get("PYTENSOR_FLAGS", ""), f"base_compiledir={tmp / 'pytensor'}"]
        env["PYTENSOR_FLAGS"] = ",".join(f for f in flags if f)
        env["NUMBA_CACHE_DIR"] = str(tmp / "numba")
    return env
