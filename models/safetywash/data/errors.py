"""Exceptions raised for bad input, each naming where the problem is."""

from __future__ import annotations


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
