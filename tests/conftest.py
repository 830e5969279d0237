"""Shared fixtures: where the real datasets are, and small synthetic inputs.

The real data is found through ``SAFETYWASH_DATA_DIR`` if set, else ``<repo>/../shared/data``.
Tests that need it are skipped when it is absent, except under ``CI=true``, where they fail:
CI must not pass by skipping them. The data is never copied into the repository: tests that
need a modified copy write one into ``tmp_path``. No fixture touches the network.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pandas as pd
import pytest

from safetywash.data.registry import dataset_spec
from safetywash.data.sources.safetywashing import SAFETYWASHING_FILES, read_safetywashing

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR_ENV = "SAFETYWASH_DATA_DIR"
#: The real data, found at import, before any test edits the environment.
SHARED_DATA = Path(os.environ.get(DATA_DIR_ENV) or REPO_ROOT.parent / "shared" / "data")


def _data_unavailable(reason: str) -> NoReturn:
    """Skip the test; under ``CI=true`` fail it instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true needs the real data (set {DATA_DIR_ENV})", pytrace=False)
    pytest.skip(reason)


def _find_dataset(name: str, data_dir: Path = SHARED_DATA) -> Path:
    """``<data_dir>/<name>`` if it holds every registered file of the dataset."""
    root = data_dir / name
    missing = [path for path in dataset_spec(name).files if not (root / path).is_file()]
    if missing:
        _data_unavailable(f"real data of {name} not found under {root} (missing {missing[:3]})")
    return root


@pytest.fixture(scope="session")
def shared_dataset() -> Callable[..., Path]:
    """``shared_dataset(name, data_dir=SHARED_DATA)``: the root of a real dataset.

    Skips the calling test when a registered file is missing (fails it under ``CI=true``).
    """
    return _find_dataset


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Directory holding ``safetywashing/`` (the real release); skips or fails if absent."""
    return _find_dataset("safetywashing").parent


@pytest.fixture(scope="session")
def safetywashing_root(shared_data_dir: Path) -> Path:
    """``<shared data>/safetywashing``: the release laid out as its source repository."""
    return shared_data_dir / "safetywashing"


@pytest.fixture(scope="session")
def raw_matrices(safetywashing_root: Path) -> dict[str, pd.DataFrame]:
    """The two real matrices read by plain pandas, indexed by ``model`` (for comparisons)."""
    return {
        pop: pd.read_csv(safetywashing_root / SAFETYWASHING_FILES[pop]).set_index("model")
        for pop in ("base", "chat")
    }


@pytest.fixture(scope="session")
def real_study(safetywashing_root: Path) -> Callable:
    """``real_study(population)``: the real study, read once per population and cached.

    Tests must not mutate the returned study's frames.
    """
    cache: dict[str, object] = {}

    def get(population: str):
        if population not in cache:
            cache[population] = read_safetywashing(safetywashing_root, population)
        return cache[population]

    return get


@pytest.fixture
def real_copy(safetywashing_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the release at ``tmp_path/safetywashing``; returns that root."""
    root = tmp_path / "safetywashing"
    for rel in dataset_spec("safetywashing").files:
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((safetywashing_root / rel).read_bytes())
    return root


def _set_cell(path: Path, llm: str, column: str, value: str) -> int:
    """Rewrite one cell of a wide CSV (row ``model == llm``); return that row's file line.

    The line is the physical line (header = line 1) as counted by :mod:`csv`.
    """
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        rows, lines = [], []
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
    j = rows[0].index(column)
    hits = [i for i, row in enumerate(rows[1:], start=1) if row[0] == llm]
    assert len(hits) == 1, f"{llm!r} found {len(hits)} times in {path}"
    rows[hits[0]][j] = value
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return lines[hits[0]]


@pytest.fixture
def set_cell() -> Callable[[Path, str, str, str], int]:
    """``set_cell(path, llm, column, value) -> line``: edit one cell of a wide real-layout CSV."""
    return _set_cell


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """``write_csv(name, text, *, bom=False, crlf=False)``: write text into tmp_path.

    ``text`` may also be ``bytes`` (written as is). Returns the path.
    """

    def write(name: str, text: str | bytes, *, bom: bool = False, crlf: bool = False) -> Path:
        path = tmp_path / name
        if isinstance(text, bytes):
            data = text
        else:
            if crlf:
                text = text.replace("\r\n", "\n").replace("\n", "\r\n")
            data = text.encode("utf-8")
        if bom:
            data = b"\xef\xbb\xbf" + data
        path.write_bytes(data)
        return path

    return write


#: A tiny valid catalog: two capability fractions and one unbounded lower-is-better safety
#: score, plus one excluded bookkeeping column.
TINY_CATALOG_CSV = (
    "key,display_name,role,area,direction,scale,lower,upper,chance,parent,note\n"
    "a,Alpha,capability,capability,higher,fraction,0,1,0.25,,\n"
    "b,Beta,capability,capability,higher,fraction,0,1,0.5,,\n"
    "s,Harm,safety,alignment,lower,score,,,,,higher = more harm\n"
    "n,Samples,excluded,,none,score,0,,,,bookkeeping\n"
)

#: A valid wide file for TINY_CATALOG_CSV: 4 LLMs, one missing cell (m2, b).
TINY_WIDE_CSV = "llm,a,b,s,n\nm1,0.1,0.2,3,10\nm2,0.3,,4,10\nm3,0.5,0.6,1.5,10\nm4,0.2,0.9,-2,10\n"

#: The same observed cells as TINY_WIDE_CSV in long form (LLMs first seen in the same order).
TINY_LONG_CSV = (
    "llm,benchmark,value\n"
    "m1,a,0.1\nm1,b,0.2\nm1,s,3\nm1,n,10\n"
    "m2,a,0.3\nm2,s,4\nm2,n,10\n"
    "m3,a,0.5\nm3,b,0.6\nm3,s,1.5\nm3,n,10\n"
    "m4,a,0.2\nm4,b,0.9\nm4,s,-2\nm4,n,10\n"
)


@pytest.fixture
def tiny_catalog() -> pd.DataFrame:
    """TINY_CATALOG_CSV as a raw DataFrame (string cells, a ``key`` column)."""
    return pd.read_csv(io.StringIO(TINY_CATALOG_CSV), dtype=str, keep_default_na=False)


@pytest.fixture
def tiny_catalog_csv(write_csv: Callable[..., Path]) -> Path:
    """TINY_CATALOG_CSV written to ``tmp_path/catalog.csv``."""
    return write_csv("catalog.csv", TINY_CATALOG_CSV)


@pytest.fixture
def tiny_wide_text() -> str:
    """TINY_WIDE_CSV: a valid wide file for the tiny catalog (m2 lacks ``b``)."""
    return TINY_WIDE_CSV


@pytest.fixture
def tiny_long_text() -> str:
    """TINY_LONG_CSV: the same cells as TINY_WIDE_CSV in long form."""
    return TINY_LONG_CSV
