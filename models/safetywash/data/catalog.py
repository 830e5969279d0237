"""Benchmark catalogs: role, safety area, direction, scale and bounds of each benchmark.

A catalog is a table with one row per benchmark key. The project ships one catalog per
known dataset in ``data/catalogs/<dataset>.csv`` (see ``data/README.md`` for the meaning
of every column and value).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from safetywash.data.errors import CatalogError, raise_first_bad_row
from safetywash.data.files import SOURCE_ROOT
from safetywash.data.names import CONTROL_CHARACTERS, control_character_problem, nearest_names
from safetywash.data.table import read_table

ROLES = ("capability", "safety", "excluded")
MODELLED_ROLES = ("capability", "safety")
DIRECTIONS = ("higher", "lower")
SAFETY_AREAS = (
    "alignment",
    "scalable_oversight",
    "truthfulness",
    "machine_ethics",
    "bias",
    "calibration",
    "adversarial_robustness",
    "weaponization",
)
CAPABILITY_AREA = "capability"
#: How alike a new area name may be to one of :data:`SAFETY_AREAS` before it is taken for a
#: misspelling of it (``truthfullness``) rather than a new area.
NEAR_AREA_CUTOFF = 0.85
SCALES = ("fraction", "percent", "rating", "elo", "loglik", "ratio_to_random", "score")

CATALOG_COLUMNS = (
    "key",
    "display_name",
    "role",
    "area",
    "direction",
    "scale",
    "lower",
    "upper",
    "chance",
    "n_items",
    "parent",
    "note",
)
REQUIRED_COLUMNS = ("key", "role", "direction")
_TEXT_COLUMNS = ("display_name", "role", "area", "direction", "scale", "parent", "note")
_NUMBER_COLUMNS = ("lower", "upper", "chance", "n_items")
#: Scales whose stored value is a share of scored items when the benchmark has both bounds
#: (the value's share of ``[lower, upper]`` is the proportion of items passed).
PROPORTION_SCALES = ("fraction", "percent")


def shipped_catalog_path(name: str) -> Path:
    """Path of the catalog the project ships for dataset ``name``.

    Parameters
    ----------
    name : str
        Dataset name, e.g. ``"safetywashing"``.

    Returns
    -------
    pathlib.Path
    """
    packaged = resources.files("safetywash").joinpath("catalogs", f"{name}.csv")
    if packaged.is_file():
        return Path(str(packaged))
    # Editable installs and source checkouts: the catalog lives in <repo>/data/catalogs.
    in_repo = SOURCE_ROOT / "data" / "catalogs" / f"{name}.csv"
    if in_repo.is_file():
        return in_repo
    raise CatalogError(f"no shipped catalog for dataset {name!r} (looked for {in_repo})")


def load_catalog(
    path_or_name: str | Path, *, encoding: str = "utf-8", new_areas: bool = False
) -> pd.DataFrame:
    """Read and validate a benchmark catalog.

    Parameters
    ----------
    path_or_name : str or pathlib.Path
        A CSV path, or the name of a shipped catalog (``"safetywashing"``).
    encoding : str
        Text encoding of a CSV path (shipped catalogs are UTF-8).
    new_areas : bool
        Accept safety areas beyond :data:`SAFETY_AREAS` (see :func:`validate_catalog`).

    Returns
    -------
    pandas.DataFrame
        Indexed by benchmark ``key`` with the columns of :data:`CATALOG_COLUMNS`.

    Raises
    ------
    CatalogError
        For a missing, empty or undecodable file, a malformed row (naming its line and
        column), or a catalog that breaks a rule of ``data/README.md``.
    """
    path = Path(path_or_name)
    if not path.suffix and not path.exists():
        path = shipped_catalog_path(str(path_or_name))
        encoding = "utf-8"
    if not path.is_file():
        raise CatalogError("catalog file not found", source=str(path))
    raw = read_table(path, encoding=encoding, min_rows=0, error=CatalogError)
    return validate_catalog(raw, source=str(path), new_areas=new_areas)


def as_catalog(
    catalog: str | Path | pd.DataFrame,
    *,
    source: str = "catalog",
    encoding: str = "utf-8",
    new_areas: bool = False,
) -> pd.DataFrame:
    """A validated catalog from a shipped catalog's name, a CSV path or a table.

    Parameters
    ----------
    catalog : str, pathlib.Path or pandas.DataFrame
        A name or path (see :func:`load_catalog`), a raw table with a ``key`` column, or a
        table indexed by ``key`` (or ``benchmark``), e.g. a study's ``benchmarks``.
    source : str
        Name used in error messages for a table.
    encoding : str
        Text encoding of a CSV path.
    new_areas : bool
        Accept safety areas beyond :data:`SAFETY_AREAS` (see :func:`validate_catalog`).

    Returns
    -------
    pandas.DataFrame
        As from :func:`validate_catalog`.
    """
    if not isinstance(catalog, pd.DataFrame):
        return load_catalog(catalog, encoding=encoding, new_areas=new_areas)
    if "key" in catalog.columns:
        return validate_catalog(catalog, source=source, new_areas=new_areas)
    if catalog.index.name in ("key", "benchmark"):
        raw = catalog.rename_axis("key").reset_index()
        return validate_catalog(raw, source=source, new_areas=new_areas)
    raise CatalogError("the catalog needs a 'key' column or index", source=source)


def validate_catalog(
    raw: pd.DataFrame, *, source: str = "catalog", new_areas: bool = False
) -> pd.DataFrame:
    """Validate a catalog table and normalise its columns.

    Parameters
    ----------
    raw : pandas.DataFrame
        One row per benchmark; needs ``key``, ``role`` and ``direction``; the other
        columns of :data:`CATALOG_COLUMNS` are optional. Text cells may be empty.
    source : str
        Name used in error messages.
    new_areas : bool
        Accept a safety area beyond the paper's :data:`SAFETY_AREAS` (a user's own study may
        declare its own). It must still be non-empty, and a name nearly spelled like one of
        the paper's (``truthfullness``) is refused as a misspelling.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``key``; every column of :data:`CATALOG_COLUMNS` present, bounds and
        chance as floats (NaN = none), text columns as strings (``""`` = none).
    """
    raw = raw.copy()
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise CatalogError(
            f"missing required column(s) {missing}; a catalog needs {list(REQUIRED_COLUMNS)}",
            source=source,
        )
    if raw.empty:
        raise CatalogError("the catalog has no rows", source=source)
    out = _normalised(raw, source)
    _check_rows(out, _row_rules(out, new_areas), source)
    out.loc[out["role"] == "capability", "area"] = CAPABILITY_AREA
    out.loc[out["display_name"] == "", "display_name"] = out["key"]
    dup = out["key"].duplicated(keep=False)
    if dup.any():
        raise CatalogError(
            f"benchmark key {out['key'][dup].iloc[0]!r} appears more than once "
            f"(lines {out.loc[dup, 'line'].tolist()})",
            source=source,
            column="key",
        )
    _check_rows(out, _parent_rules(out), source)
    return out.set_index("key")[list(CATALOG_COLUMNS[1:])]


def _normalised(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Text columns as stripped strings, number columns as floats; a ``line`` per row."""
    out = pd.DataFrame(index=raw.index)
    # A table read from a file knows its lines; otherwise the header is line 1.
    out["line"] = raw["line"] if "line" in raw.columns else np.arange(len(raw)) + 2
    for col in (*_TEXT_COLUMNS, "key"):
        values = raw[col] if col in raw.columns else pd.Series("", index=raw.index)
        out[col] = values.fillna("").astype(str).str.strip()
    for col in _NUMBER_COLUMNS:
        if col in raw.columns and pd.api.types.is_numeric_dtype(raw[col]):
            out[col] = raw[col].astype(float)
            continue
        text = raw[col] if col in raw.columns else pd.Series("", index=raw.index)
        text = text.astype(object).where(text.notna(), "").astype(str).str.strip()
        numbers = pd.to_numeric(text.replace("", np.nan), errors="coerce")
        out[col] = text
        raise_first_bad_row(
            out,
            numbers.isna() & (text != ""),
            lambda r, col=col: f"{r[col]!r} is not a number",
            source=source,
            column=col,
            error=CatalogError,
        )
        out[col] = numbers.astype(float)
    return out


#: A rule on catalog rows: (bad rows, column named, problem given the row).
type _Rule = tuple[np.ndarray, str, Callable[[pd.Series], str]]


def _area_rule(out: pd.DataFrame, new_areas: bool) -> _Rule:
    """A safety row's area: one of the paper's, or (``new_areas``) any other non-empty name
    that is not a near-spelling of one of the paper's."""
    safety = out["role"] == "safety"
    if not new_areas:
        return (
            (safety & ~out["area"].isin(SAFETY_AREAS)).to_numpy(),
            "area",
            lambda r: (
                f"safety benchmark {r['key']!r} has area {r['area']!r}, not one of "
                f"{list(SAFETY_AREAS)}"
            ),
        )

    def near(area: str) -> list[str]:
        if area in SAFETY_AREAS:
            return []
        return nearest_names(area, SAFETY_AREAS, n=1, cutoff=NEAR_AREA_CUTOFF, ignore_case=True)

    def problem(r: pd.Series) -> str:
        if r["area"] in ("", CAPABILITY_AREA):
            return (
                f"safety benchmark {r['key']!r} has area {r['area']!r}: name a safety area "
                "(a new name is allowed)"
            )
        return (
            f"safety benchmark {r['key']!r} has area {r['area']!r}, nearly the paper's area "
            f"{near(r['area'])[0]!r}: spell it as the paper does, or choose a distinct new name"
        )

    unnamed = out["area"].isin(("", CAPABILITY_AREA))
    bad = safety & (unnamed | out["area"].map(lambda a: bool(near(a))))
    return bad.to_numpy(), "area", problem


def _row_rules(out: pd.DataFrame, new_areas: bool = False) -> list[_Rule]:
    """Rules on each row's own fields, in the order they are checked within a row."""
    modelled = out["role"].isin(MODELLED_ROLES)
    return [
        *_printable_rules(out),
        ((out["key"] == "").to_numpy(), "key", lambda r: "empty benchmark key"),
        (
            (~out["role"].isin(ROLES)).to_numpy(),
            "role",
            lambda r: f"role {r['role']!r} of benchmark {r['key']!r} is not one of {list(ROLES)}",
        ),
        (
            (modelled & ~out["direction"].isin(DIRECTIONS)).to_numpy(),
            "direction",
            lambda r: (
                f"unknown direction {r['direction']!r} for benchmark {r['key']!r}: say whether a "
                f"higher raw value is better ({'/'.join(DIRECTIONS)})"
            ),
        ),
        _area_rule(out, new_areas),
        (
            ((out["scale"] != "") & ~out["scale"].isin(SCALES)).to_numpy(),
            "scale",
            lambda r: (
                f"scale {r['scale']!r} of benchmark {r['key']!r} is not one of {list(SCALES)}"
            ),
        ),
        (
            (out["n_items"].notna() & ~_whole_positive(out["n_items"])).to_numpy(),
            "n_items",
            lambda r: (
                f"n_items {r['n_items']:g} of benchmark {r['key']!r} is not a positive whole "
                "number (the number of scored items; leave it empty when unknown)"
            ),
        ),
        (
            (out["lower"] >= out["upper"]).to_numpy(),
            "lower",
            lambda r: f"lower bound {r['lower']} is not below upper bound {r['upper']}",
        ),
    ]


def _whole_positive(values: pd.Series) -> pd.Series:
    """Whether each value is a finite whole number of at least 1."""
    finite = np.isfinite(values)
    return finite & (values >= 1) & (values == np.floor(values.where(finite, 0)))


def proportion_items(benchmarks: pd.DataFrame) -> pd.Series:
    """Number of scored items of every benchmark whose score is a proportion of them.

    A benchmark's stored value is a proportion of items when its ``scale`` is one of
    :data:`PROPORTION_SCALES` and it has both bounds (the share of ``[lower, upper]`` is
    the share of items passed) and its ``n_items`` is known; its sampling variance is then
    ``p (1 - p) / n_items``. NaN for every other benchmark (unknown count, or a metric that
    is not a simple proportion: ratings, Elo, log-likelihoods, F1, open scores).

    Parameters
    ----------
    benchmarks : pandas.DataFrame
        Catalog rows (a validated catalog or a study's ``benchmarks``).

    Returns
    -------
    pandas.Series
        Float counts indexed like ``benchmarks``.
    """
    bounded = benchmarks["lower"].notna() & benchmarks["upper"].notna()
    proportion = benchmarks["scale"].isin(PROPORTION_SCALES) & bounded
    return benchmarks["n_items"].astype(float).where(proportion)


def _printable_rules(out: pd.DataFrame) -> list[_Rule]:
    """Keys and text fields hold no control character (a note may hold tabs and line breaks)."""
    rules: list[_Rule] = []
    for col in ("key", *_TEXT_COLUMNS):
        text = out[col] if col != "note" else out[col].str.replace(r"[\t\r\n]", "", regex=True)
        rules.append(
            (
                text.str.contains(CONTROL_CHARACTERS).to_numpy(),
                col,
                lambda r, col=col: control_character_problem(r[col]),
            )
        )
    return rules


def _check_rows(out: pd.DataFrame, rules: list[_Rule], source: str) -> None:
    """The first row breaking a rule fails, naming the first rule it breaks."""
    bad = np.column_stack([mask for mask, _, _ in rules])
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size == 0:
        return
    mask, column, problem = rules[int(np.flatnonzero(bad[rows[0]])[0])]
    # No earlier row breaks any rule, so this rule's first bad row is rows[0].
    raise_first_bad_row(out, mask, problem, source=source, column=column, error=CatalogError)


def _parent_rules(out: pd.DataFrame) -> list[_Rule]:
    """A parent is a catalogued benchmark that has no parent itself."""
    parent_of = dict(zip(out["key"], out["parent"], strict=True))
    has_parent = out["parent"] != ""
    known = out["parent"].isin(set(parent_of))
    return [
        (
            (has_parent & ~known).to_numpy(),
            "parent",
            lambda r: f"parent {r['parent']!r} of benchmark {r['key']!r} has no catalog row",
        ),
        (
            (has_parent & known & (out["parent"].map(parent_of) != "")).to_numpy(),
            "parent",
            lambda r: (
                f"parent {r['parent']!r} of benchmark {r['key']!r} is itself a part of another "
                "benchmark"
            ),
        ),
    ]
