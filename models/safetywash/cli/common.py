"""Shared command-line plumbing for the scripts in ``scripts/``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from safetywash.data.registry import DATA_DIR_ENV, dataset_names

#: ``../shared/data`` beside the project root, used when it exists and nothing else is set.
SHARED_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def default_data_dir() -> Path | None:
    """The local data directory scripts use unless ``--data-dir`` is given.

    ``SAFETYWASH_DATA_DIR`` if set, else ``../shared/data`` beside the project root if it
    exists, else ``None`` (download into the cache).
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return SHARED_DATA_DIR if SHARED_DATA_DIR.is_dir() else None


def add_dataset_arguments(parser: argparse.ArgumentParser, *, populations: bool = True) -> None:
    """``--dataset``, ``--population`` and ``--data-dir`` options."""
    parser.add_argument(
        "--dataset", default="safetywashing", choices=dataset_names(), help="dataset name"
    )
    if populations:
        parser.add_argument(
            "--population",
            default=None,
            help="LLM population: base, chat or all (default: chat for safetywashing, "
            "all for the other datasets, which have one population)",
        )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"local data directory laid out as <dir>/<dataset>/<path>; default ${DATA_DIR_ENV}, "
        "else ../shared/data beside the project if present, else download to the cache",
    )


def resolve_population(dataset: str, population: str | None) -> str:
    """The ``--population`` value, or the dataset's default."""
    if population is not None:
        return population
    return "chat" if dataset == "safetywashing" else "all"


def resolve_data_dir_argument(value: Path | None) -> Path | None:
    """The ``--data-dir`` value, or :func:`default_data_dir`."""
    return value if value is not None else default_data_dir()
