"""The data layer's exceptions, and the one way to raise a located error for a bad row."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


class StudyValidationError(ValueError):
    """Bad benchmark-study input, located as precisely as the input allows.

    Parameters
    ----------
    problem : str
        What is wrong, in plain words.
    source : str, optional
        The file (or other source) the data came from.
    line : int, optional
        1-based line number in the source file (the header is line 1).
    column : str, optional
        The column (benchmark) concerned.
    llm : str, optional
        The LLM (row) concerned.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: str | None = None,
        llm: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.column = column
        self.llm = llm
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.llm is not None:
            where.append(f"LLM {self.llm!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.problem}" if prefix else self.problem


class CatalogError(StudyValidationError):
    """A benchmark catalog (metadata table) is malformed or lacks an entry."""


class DatasetError(RuntimeError):
    """A registered dataset could not be found, downloaded or verified."""


def raise_first_bad_row(
    rows: pd.DataFrame,
    bad: np.ndarray | pd.Series,
    problem: str | Callable[[pd.Series], str],
    *,
    source: str | None = None,
    column: str | None = None,
    column_of: str | None = None,
    llm_of: str | None = None,
    source_of: str | None = None,
    error: type[StudyValidationError] = StudyValidationError,
) -> None:
    """Raise a located error for the first row selected by ``bad``; return if there is none.

    Parameters
    ----------
    rows : pandas.DataFrame
        The rows checked; a ``line`` column (1-based file line of each row) gives the line.
    bad : array-like of bool
        One flag per row of ``rows``, True where the row is bad.
    problem : str or callable
        What is wrong, or a function of the bad row returning it.
    source : str, optional
        File (or other source) named in the error.
    column : str, optional
        Column named in the error.
    column_of : str, optional
        Name the column given in this field of the row instead (e.g. ``"benchmark"``).
    llm_of : str, optional
        Name the LLM given in this field of the row.
    source_of : str, optional
        Name the file given in this field of the row when it is non-empty (rows read from
        several files), else ``source``.
    error : type
        The exception class (a :class:`StudyValidationError`).

    Raises
    ------
    StudyValidationError
        If any row is bad.
    """
    bad = np.asarray(bad, dtype=bool)
    if not bad.any():
        return
    row = rows.iloc[int(np.flatnonzero(bad)[0])]
    line = row.get("line")
    where = row[source_of] if source_of is not None else None
    raise error(
        problem(row) if callable(problem) else problem,
        source=str(where) if isinstance(where, str) and where else source,
        line=None if line is None or pd.isna(line) else int(line),
        column=str(row[column_of]) if column_of is not None else column,
        llm=str(row[llm_of]) if llm_of is not None else None,
    )
