"""A new LLM's scores: read them from a CSV and check them against a fit.

The file has a header ``benchmark,value`` and one row per benchmark, in the study's stored
units. :func:`validate_new_scores` names the line of the first bad row (an unknown or
repeated benchmark key, a missing or non-numeric value, a value outside the benchmark's
declared range) in a :class:`~safetywash.data.errors.StudyValidationError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.data.errors import StudyValidationError
from safetywash.data.names import close_matches
from safetywash.data.table import read_table
from safetywash.inference.fitfile import benchmark_table, excluded_benchmarks, fit_config


def read_new_scores(path: str | Path, *, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a new LLM's scores: a CSV with columns ``benchmark,value``.

    Parameters
    ----------
    path : str or pathlib.Path
        The score file (header ``benchmark,value``, case-insensitive).
    encoding : str
        Its text encoding (a UTF-8 byte-order mark is dropped).

    Returns
    -------
    pandas.DataFrame
        Columns ``benchmark``, ``value`` (as text) and ``line`` (1-based file line of each
        row; the header is line 1, blank lines counted). Validate with
        :func:`validate_new_scores`.
    """
    frame = read_table(path, encoding=encoding, names=("benchmark",), min_rows=0)
    frame.columns = [c if c == "line" else str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("benchmark", "value") if c not in frame.columns]
    if missing:
        raise StudyValidationError(
            f"missing column(s) {missing}; the file needs a header 'benchmark,value'",
            source=str(path),
            line=1,
        )
    return frame[["benchmark", "value", "line"]].reset_index(drop=True)


def _unknown_key_error(dt: xr.DataTree, key: str, keys: list[str], **where) -> Exception:
    why = ""
    if key in excluded_benchmarks(dt):
        why = (
            " (it is left out of this fit: a part of an aggregate or excluded by the "
            f"catalog, and the fit is at the {fit_config(dt).level} level)"
        )
    return StudyValidationError(
        f"unknown benchmark {key!r}{why}{close_matches(key, keys)}", **where
    )


def _number(text: str, **where) -> float:
    """A finite number from a cell's text, or the error naming the cell."""
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is None or not np.isfinite(number):
        problem = "missing value" if text == "" else f"value {text!r} is not a finite number"
        raise StudyValidationError(problem, **where)
    return number


def _check_range(number: float, lo: float, hi: float, **where) -> None:
    if (np.isfinite(lo) and number < lo) or (np.isfinite(hi) and number > hi):
        raise StudyValidationError(
            f"value {number:g} is outside the declared range "
            f"[{'unbounded' if np.isnan(lo) else f'{lo:g}'}, "
            f"{'unbounded' if np.isnan(hi) else f'{hi:g}'}]",
            **where,
        )


def validate_new_scores(
    scores: pd.DataFrame, dt: xr.DataTree, *, source: str = "scores"
) -> pd.Series:
    """Check a new LLM's scores against a fit; return the values by benchmark key.

    Parameters
    ----------
    scores : pandas.DataFrame
        Columns ``benchmark`` and ``value`` (numbers or text); an optional ``line`` column
        gives file lines for error messages (else the row number is reported).
    dt : xarray.DataTree
        The fit.
    source : str
        Name of the input in error messages.

    Returns
    -------
    pandas.Series
        Raw values (stored units) indexed by benchmark key, in the fit's benchmark order.

    Raises
    ------
    StudyValidationError
        Naming the line of an unknown benchmark key (with close matches), a duplicate, a
        missing or non-numeric value, or a value outside the benchmark's declared range.
    """
    table = benchmark_table(dt)
    keys = list(table.index)
    lines = scores["line"].to_numpy() if "line" in scores.columns else np.arange(len(scores)) + 1
    if len(scores) == 0:
        raise StudyValidationError(
            "no scores given: at least one benchmark is needed", source=source
        )
    seen: dict[str, int] = {}
    values = {}
    for (key, value), line in zip(
        scores[["benchmark", "value"]].itertuples(index=False), lines, strict=True
    ):
        key = str(key).strip()
        where = {"source": source, "line": int(line), "column": key}
        if key not in table.index:
            raise _unknown_key_error(dt, key, keys, **where)
        if key in seen:
            raise StudyValidationError(
                f"benchmark {key!r} given twice (first on line {seen[key]})", **where
            )
        seen[key] = int(line)
        number = _number(str(value).strip(), **where)
        _check_range(number, table.loc[key, "lower"], table.loc[key, "upper"], **where)
        values[key] = number
    return pd.Series(values, dtype=float).reindex([k for k in keys if k in values])
