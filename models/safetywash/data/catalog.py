"""Benchmark catalogs: role, safety area, direction, scale and bounds of each benchmark.

A catalog is a table with one row per benchmark key. The project ships one catalog per
known dataset in ``data/catalogs/<dataset>.csv`` (see ``data/README.md`` for the meaning
of every column and value).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from safetywash.data.errors import CatalogError

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
    "parent",
    "note",
)
REQUIRED_COLUMNS = ("key", "role", "direction")
_TEXT_COLUMNS = ("display_name", "role", "area", "direction", "scale", "parent", "note")
_NUMBER_COLUMNS = ("lower", "upper", "chance")


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
    in_repo = Path(__file__).resolve().parents[3] / "data" / "catalogs" / f"{name}.csv"
    if in_repo.is_file():
        return in_repo
    raise CatalogError(f"no shipped catalog for dataset {name!r} (looked for {in_repo})")


def load_catalog(path_or_name: str | Path) -> pd.DataFrame:
    """Read and validate a benchmark catalog.

    Parameters
    ----------
    path_or_name : str or pathlib.Path
        A CSV path, or the name of a shipped catalog (``"safetywashing"``).

    Returns
    -------
    pandas.DataFrame
        Indexed by benchmark ``key`` with the columns of :data:`CATALOG_COLUMNS`.
    """
    path = Path(path_or_name)
    if not path.suffix and not path.exists():
        path = shipped_catalog_path(str(path_or_name))
    if not path.is_file():
        raise CatalogError("catalog file not found", source=str(path))
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as err:
        raise CatalogError("the catalog file is empty", source=str(path)) from err
    return validate_catalog(raw, source=str(path))


def validate_catalog(raw: pd.DataFrame, *, source: str = "catalog") -> pd.DataFrame:
    """Validate a catalog table and normalise its columns.

    Parameters
    ----------
    raw : pandas.DataFrame
        One row per benchmark; needs ``key``, ``role`` and ``direction``; the other
        columns of :data:`CATALOG_COLUMNS` are optional. Text cells may be empty.
    source : str
        Name used in error messages.

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
    out = pd.DataFrame(index=raw.index)
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
        bad = numbers.isna() & (text != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise CatalogError(
                f"{text.iloc[row]!r} is not a number",
                source=source,
                line=row + 2,
                column=col,
            )
        out[col] = numbers.astype(float)

    for row, rec in enumerate(out.itertuples(index=False)):
        line = row + 2
        if not rec.key:
            raise CatalogError("empty benchmark key", source=source, line=line, column="key")
        if rec.role not in ROLES:
            raise CatalogError(
                f"role {rec.role!r} of benchmark {rec.key!r} is not one of {list(ROLES)}",
                source=source,
                line=line,
                column="role",
            )
        if rec.role in MODELLED_ROLES and rec.direction not in DIRECTIONS:
            raise CatalogError(
                f"unknown direction {rec.direction!r} for benchmark {rec.key!r}: "
                f"say whether a higher raw value is better ({'/'.join(DIRECTIONS)})",
                source=source,
                line=line,
                column="direction",
            )
        if rec.role == "safety" and rec.area not in SAFETY_AREAS:
            raise CatalogError(
                f"safety benchmark {rec.key!r} has area {rec.area!r}, not one of "
                f"{list(SAFETY_AREAS)}",
                source=source,
                line=line,
                column="area",
            )
        if rec.scale and rec.scale not in SCALES:
            raise CatalogError(
                f"scale {rec.scale!r} of benchmark {rec.key!r} is not one of {list(SCALES)}",
                source=source,
                line=line,
                column="scale",
            )
        if not np.isnan(rec.lower) and not np.isnan(rec.upper) and rec.lower >= rec.upper:
            raise CatalogError(
                f"lower bound {rec.lower} is not below upper bound {rec.upper}",
                source=source,
                line=line,
                column="lower",
            )
    out.loc[out["role"] == "capability", "area"] = CAPABILITY_AREA
    out.loc[out["display_name"] == "", "display_name"] = out["key"]

    dup = out["key"].duplicated(keep=False)
    if dup.any():
        rows = (np.flatnonzero(dup.to_numpy()) + 2).tolist()
        raise CatalogError(
            f"benchmark key {out['key'][dup].iloc[0]!r} appears more than once (lines {rows})",
            source=source,
            column="key",
        )
    keys = set(out["key"])
    for row, (key, parent) in enumerate(zip(out["key"], out["parent"], strict=True)):
        if not parent:
            continue
        if parent not in keys:
            raise CatalogError(
                f"parent {parent!r} of benchmark {key!r} has no catalog row",
                source=source,
                line=row + 2,
                column="parent",
            )
        if out.loc[out["key"] == parent, "parent"].iloc[0]:
            raise CatalogError(
                f"parent {parent!r} of benchmark {key!r} is itself a part of another benchmark",
                source=source,
                line=row + 2,
                column="parent",
            )
    return out.set_index("key")[list(CATALOG_COLUMNS[1:])]
