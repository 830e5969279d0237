"""Checks that turn raw score and LLM tables into a study's validated tables.

Each check fails on the first problem with a
:class:`~safetywash.data.errors.StudyValidationError` naming the file, line, column and LLM as
precisely as the input allows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from safetywash.data.catalog import MODELLED_ROLES
from safetywash.data.errors import StudyValidationError, raise_first_bad_row
from safetywash.data.names import check_printable, control_character, control_character_problem

MIN_LLMS_PER_BENCHMARK = 3
LLM_COLUMNS = ("display_name", "population", "family", "params", "flop")
_REQUIRED = ("llm", "benchmark", "value")


def validate_scores(
    scores: pd.DataFrame, catalog: pd.DataFrame, *, source: str, min_llms: int
) -> pd.DataFrame:
    """The long score table, checked against the catalog, with float values.

    Parameters
    ----------
    scores : pandas.DataFrame
        Columns ``llm``, ``benchmark``, ``value`` (observed cells only); optional ``line``
        (file line of each cell) and ``source`` (file of each cell) for error messages.
    catalog : pandas.DataFrame
        Validated catalog indexed by key.
    source : str
        File or description named in errors (unless a cell's ``source`` is given).
    min_llms : int
        Fewest observed LLMs a benchmark may have.

    Returns
    -------
    pandas.DataFrame
        A copy with stripped ids and float values.
    """
    missing = [c for c in _REQUIRED if c not in scores.columns]
    if missing:
        raise StudyValidationError(
            f"missing required column(s) {missing}; scores need {list(_REQUIRED)}",
            source=source,
        )
    if scores.empty:
        raise StudyValidationError("no scores: the table has no observed cells", source=source)
    scores = scores.copy()
    scores["llm"] = scores["llm"].astype(str).str.strip()
    scores["benchmark"] = scores["benchmark"].astype(str).str.strip()
    check_printable(
        scores,
        ["llm", "benchmark"],
        source=source,
        llm_of="llm",
        source_of=_cell_location(scores, source)["source_of"],
    )
    scores["value"] = score_values(scores, source=source)
    _check_unique_cells(scores, source)
    _check_catalogued(scores, catalog, source)
    _check_bounds(scores, catalog, source)
    _check_counts(scores, source, min_llms)
    return scores


def _cell_location(scores: pd.DataFrame, source: str) -> dict:
    """Keywords of :func:`raise_first_bad_row` naming a cell's file, line, benchmark and LLM."""
    source_of = "source" if "source" in scores.columns else None
    return {"source": source, "column_of": "benchmark", "llm_of": "llm", "source_of": source_of}


def score_values(scores: pd.DataFrame, *, source: str) -> np.ndarray:
    """The ``value`` column of long scores as finite floats.

    Parameters
    ----------
    scores : pandas.DataFrame
        Columns ``llm``, ``benchmark``, ``value`` (text or numbers); optional ``line`` and
        ``source`` as in :func:`validate_scores`.
    source : str
        File named in errors.

    Returns
    -------
    numpy.ndarray
        The values as floats.

    Raises
    ------
    StudyValidationError
        On the first cell that is not a number, is empty/NaN, or is infinite.
    """
    where = _cell_location(scores, source)
    raw = scores["value"]
    numeric = pd.to_numeric(raw, errors="coerce")
    not_number = numeric.isna() & raw.notna()
    raise_first_bad_row(
        scores, not_number, lambda r: f"score {r['value']!r} is not a number", **where
    )
    values = numeric.to_numpy(dtype=float)
    raise_first_bad_row(
        scores,
        np.isnan(values),
        "missing score given as an empty/NaN cell in long data: leave the row out instead",
        **where,
    )
    raise_first_bad_row(scores, np.isinf(values), "score is infinite", **where)
    return values


def _check_unique_cells(scores: pd.DataFrame, source: str) -> None:
    def problem(row: pd.Series) -> str:
        same = (scores["llm"] == row["llm"]) & (scores["benchmark"] == row["benchmark"])
        lines = scores.loc[same, "line"].tolist() if "line" in scores.columns else []
        extra = f" (lines {lines})" if lines else ""
        return f"duplicate (llm, benchmark) pair: {int(same.sum())} scores for the same cell{extra}"

    dup = scores.duplicated(["llm", "benchmark"], keep=False)
    raise_first_bad_row(scores, dup, problem, **_cell_location(scores, source))


def _check_catalogued(scores: pd.DataFrame, catalog: pd.DataFrame, source: str) -> None:
    unknown = ~scores["benchmark"].isin(catalog.index).to_numpy()
    if unknown.any():
        names = sorted(set(scores.loc[unknown, "benchmark"]))
        raise StudyValidationError(
            f"benchmark has no catalog entry (no role or direction known); unknown: {names[:10]}",
            source=source,
            column=names[0],
        )
    roles = catalog["role"].reindex(scores["benchmark"]).to_numpy()
    not_modelled = ~np.isin(roles, MODELLED_ROLES)
    if not_modelled.any():
        name = scores.loc[not_modelled, "benchmark"].iloc[0]
        raise StudyValidationError(
            f"benchmark is catalogued as role {catalog.loc[name, 'role']!r} and cannot be "
            "modelled; readers drop such columns",
            source=source,
            column=name,
        )


def _check_bounds(scores: pd.DataFrame, catalog: pd.DataFrame, source: str) -> None:
    lower = catalog["lower"].reindex(scores["benchmark"]).to_numpy(dtype=float)
    upper = catalog["upper"].reindex(scores["benchmark"]).to_numpy(dtype=float)
    values = scores["value"].to_numpy(dtype=float)
    out = (values < np.where(np.isnan(lower), -np.inf, lower)) | (
        values > np.where(np.isnan(upper), np.inf, upper)
    )

    def problem(row: pd.Series) -> str:
        low, high = catalog.loc[row["benchmark"], ["lower", "upper"]]
        return (
            f"score {row['value']:g} is outside the declared range [{_bound(low)}, {_bound(high)}]"
        )

    raise_first_bad_row(scores, out, problem, **_cell_location(scores, source))


def _bound(x: float) -> str:
    return "unbounded" if np.isnan(x) else f"{x:g}"


def _check_counts(scores: pd.DataFrame, source: str, min_llms: int) -> None:
    counts = scores.groupby("benchmark", sort=False)["llm"].size()
    few = counts[counts < min_llms]
    if not few.empty:
        raise StudyValidationError(
            f"benchmark has only {int(few.iloc[0])} observed LLM(s); at least {min_llms} needed",
            source=source,
            column=str(few.index[0]),
        )
    spread = scores.groupby("benchmark", sort=False)["value"].agg(lambda v: np.ptp(v.to_numpy()))
    constant = spread[spread == 0]
    if not constant.empty:
        key = str(constant.index[0])
        value = scores.loc[scores["benchmark"] == key, "value"].iloc[0]
        raise StudyValidationError(
            f"benchmark is constant ({value:g} for every LLM): it carries no information",
            source=source,
            column=key,
        )


def validate_llms(llms: pd.DataFrame | None, scores: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """The LLM table of a study: one row per scored LLM, every column of :data:`LLM_COLUMNS`.

    Parameters
    ----------
    llms : pandas.DataFrame or None
        Indexed by LLM id, with any of :data:`LLM_COLUMNS`; ``None`` builds a minimal table
        (population ``"all"``) from the LLMs in ``scores``.
    scores : pandas.DataFrame
        Validated scores (see :func:`validate_scores`).
    source : str
        File or description named in errors.

    Returns
    -------
    pandas.DataFrame
    """
    present = list(pd.unique(scores["llm"]))
    if llms is None:
        llms = pd.DataFrame(index=pd.Index(present, name="llm"))
    llms = llms.copy()
    llms.index = pd.Index(llms.index.astype(str).str.strip(), name="llm")
    if llms.index.duplicated().any():
        dup = llms.index[llms.index.duplicated()][0]
        raise StudyValidationError("LLM listed more than once", source=source, llm=dup)
    _check_llm_names(llms, source)
    unknown = [k for k in present if k not in llms.index]
    if unknown:
        raise StudyValidationError(
            "LLM has scores but no row in the LLM table", source=source, llm=unknown[0]
        )
    without = [k for k in llms.index if k not in set(present)]
    if without:
        raise StudyValidationError(
            "LLM has no scores on any modelled benchmark", source=source, llm=without[0]
        )
    defaults = {
        "display_name": None,
        "population": "all",
        "family": "",
        "params": np.nan,
        "flop": np.nan,
    }
    for col, default in defaults.items():
        if col not in llms.columns:
            llms[col] = llms.index if col == "display_name" else default
    for col in ("params", "flop"):
        llms[col] = pd.to_numeric(llms[col], errors="raise").astype(float)
    for col in ("display_name", "population", "family"):
        llms[col] = llms[col].fillna("").astype(str)
        bad = [k for k, v in llms[col].items() if control_character(v) is not None]
        if bad:
            problem = control_character_problem(llms.loc[bad[0], col])
            raise StudyValidationError(problem, source=source, column=col, llm=bad[0])
    return llms[list(LLM_COLUMNS)]


def _check_llm_names(llms: pd.DataFrame, source: str) -> None:
    """LLM ids are printable and differ in more than case (readers name the lines first)."""
    for name in llms.index:
        if control_character(name) is not None:
            raise StudyValidationError(control_character_problem(name), source=source)
    folded = llms.index.str.casefold()
    if folded.duplicated().any():
        second = llms.index[folded.duplicated()][0]
        first = llms.index[folded == second.casefold()][0]
        raise StudyValidationError(
            f"LLM names {first!r} and {second!r} differ only in case; spell one LLM the same "
            "way everywhere, or give two LLMs names that differ in more than case",
            source=source,
            llm=second,
        )
