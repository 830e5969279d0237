"""Score files as tables of text: the line-accurate reader and the file-level checks.

Every reader of this package reads its files with :func:`read_table`, which keeps the line
each record starts on, so that any later check can name the file, line and column of the
first problem. Files are UTF-8 unless an ``encoding`` is given; UTF-8 byte-order marks and
CRLF line endings are accepted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from safetywash.data.encoding import decode_text
from safetywash.data.errors import StudyValidationError, raise_first_bad_row
from safetywash.data.names import (
    check_distinct_case,
    control_character,
    control_character_problem,
)


def read_table(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    delimiter: str = ",",
    encoding: str = "utf-8",
    names: Sequence[str] = (),
    min_rows: int = 1,
    error: type[StudyValidationError] = StudyValidationError,
) -> pd.DataFrame:
    """Read a CSV (or TSV) as strings, checking its shape record by record.

    The file must decode in ``encoding``; the header must be non-empty with unique,
    printable names and the ``required`` columns; every data row must have exactly as many
    fields as the header (blank lines are skipped); the cells of the ``names`` columns must
    be printable (no control character, tab included).

    Parameters
    ----------
    path : str or pathlib.Path
        The file (LF or CRLF line endings; a UTF-8 byte-order mark is dropped).
    required : sequence of str
        Column names that must be present.
    delimiter : str
        Field separator (``","`` or ``"\t"``).
    encoding : str
        Text encoding of the file, e.g. ``"latin-1"`` or ``"cp1252"`` for a spreadsheet
        export that is not UTF-8.
    names : sequence of str
        Columns whose cells are names (LLM ids, benchmark keys, metadata); those absent from
        the file are skipped.
    min_rows : int
        Fewest data rows accepted (``0`` accepts a header-only file).
    error : type
        The exception class (a :class:`StudyValidationError`).

    Returns
    -------
    pandas.DataFrame
        All cells as stripped strings (``""`` for empty cells), plus a ``line`` column with
        the 1-based line on which each record starts (the header is line 1), also when a
        quoted field spans several lines.

    Raises
    ------
    StudyValidationError
        For a missing or empty file, bytes that are not text in ``encoding`` (naming the
        line, byte and column), and the shape problems above, each naming file and line.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise error("file not found", source=source)
    text = decode_text(path, encoding, delimiter=delimiter, error=error)
    try:
        header, rows, lines = _records(text, delimiter, source, required, names, error)
    except csv.Error as err:
        raise error(f"unreadable as CSV: {err}", source=source) from err
    if len(rows) < min_rows:
        raise error("the file has a header but no data rows", source=source)
    frame = pd.DataFrame(rows, columns=header, dtype=str)
    frame["line"] = np.asarray(lines, dtype=np.int64)
    return frame


def _records(
    text: str,
    delimiter: str,
    source: str,
    required: Sequence[str],
    names: Sequence[str],
    error: type[StudyValidationError],
) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, stripped rows and their start lines; blank lines skipped.

    Name cells are checked before stripping: a tab or line break at the edge of a name is
    damage too, not surrounding space.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    raw_header = next(reader, None)
    if not raw_header or all(not h.strip() for h in raw_header):
        raise error("the file is empty (no header line)", source=source)
    header = [h.strip() for h in raw_header]
    _check_header(raw_header, required, source, error)
    checked = [(j, name) for j, name in enumerate(header) if name in set(names)]
    rows, lines = [], []
    start = reader.line_num + 1  # a quoted field may span lines: name the first one
    for row in reader:
        line, start = start, reader.line_num + 1
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise error(
                f"row has {len(row)} fields but the header has {len(header)}",
                source=source,
                line=line,
            )
        for j, name in checked:
            if control_character(row[j]) is not None:
                problem = control_character_problem(row[j])
                raise error(problem, source=source, line=line, column=name)
        rows.append([cell.strip() for cell in row])
        lines.append(line)
    return header, rows, lines


def _check_header(
    raw: list[str], required: Sequence[str], source: str, error: type[StudyValidationError]
) -> None:
    seen: set[str] = set()
    for text in raw:
        name = text.strip()
        if not name:
            raise error("empty column name in the header", source=source, line=1)
        if control_character(text) is not None:
            raise error(control_character_problem(text), source=source, line=1, column=text)
        if name in seen:
            raise error("column appears twice in the header", source=source, line=1, column=name)
        if name == "line":
            raise error("'line' is a reserved column name", source=source, line=1, column=name)
        seen.add(name)
    names = [h.strip() for h in raw]
    missing = [c for c in required if c not in names]
    if missing:
        raise error(
            f"missing required column(s) {missing}; the header has {names[:12]}"
            + (" ..." if len(names) > 12 else ""),
            source=source,
            line=1,
        )


def _appears_in_rows(lines: list[int]) -> str:
    return f"LLM appears in more than one row (lines {lines})"


def check_unique(
    frame: pd.DataFrame,
    column: str,
    *,
    source: str,
    problem: Callable[[list[int]], str] = _appears_in_rows,
) -> None:
    """Fail if a value of ``column`` is on several rows, naming the second row of the first.

    Parameters
    ----------
    frame : pandas.DataFrame
        As returned by :func:`read_table`.
    column : str
        The column whose values must be unique (an LLM id).
    source : str
        File named in the error.
    problem : callable
        ``problem(lines)``: the message, given every line holding the repeated value.
    """
    values = frame[column]
    repeated = values.duplicated(keep=False).to_numpy()
    if not repeated.any():
        return
    same = (values == values[repeated].iloc[0]).to_numpy()
    lines = frame.loc[same, "line"].tolist()
    second = same & values.duplicated(keep="first").to_numpy()
    raise_first_bad_row(frame, second, problem(lines), source=source, column=column, llm_of=column)


def check_unique_llms(frame: pd.DataFrame, llm_column: str, source: str) -> None:
    """Every row names a different, non-empty LLM, also ignoring case.

    A repeated name fails as in :func:`check_unique`; two names that differ only in case
    fail naming the lines of both (see :func:`safetywash.data.names.check_distinct_case`).
    """
    check_unique(frame, llm_column, source=source)
    empty = frame[llm_column] == ""
    raise_first_bad_row(frame, empty, "empty LLM name", source=source, column=llm_column)
    check_distinct_case(frame, llm_column, source=source)


def wide_to_long(
    frame: pd.DataFrame,
    *,
    llm_column: str,
    benchmark_columns: Sequence[str],
    na_values: Iterable[str] = ("",),
    source: str | None = None,
) -> pd.DataFrame:
    """Melt a wide string table into observed cells with their file line numbers.

    Parameters
    ----------
    frame : pandas.DataFrame
        As returned by :func:`read_table`.
    llm_column : str
        Column holding the LLM id.
    benchmark_columns : sequence of str
        Score columns to melt.
    na_values : iterable of str
        Cell texts that mean "not measured" (case-insensitive); such cells are left out.
    source : str, optional
        File named in error messages.

    Returns
    -------
    pandas.DataFrame
        Columns ``llm``, ``benchmark``, ``value`` (text) and ``line``.
    """
    wide = frame[[llm_column, "line", *benchmark_columns]]
    long = wide.melt(id_vars=[llm_column, "line"], var_name="benchmark", value_name="value")
    long = long.rename(columns={llm_column: "llm"})
    missing = {v.lower() for v in na_values} | {""}
    observed = ~long["value"].str.lower().isin(missing)
    counts = long.loc[observed].groupby("benchmark").size()
    empty = [c for c in benchmark_columns if c not in counts.index]
    if empty:
        raise StudyValidationError(
            "benchmark column has no observed score at all (every cell empty or missing)",
            source=source,
            line=1,
            column=empty[0],
        )
    return long.loc[observed, ["llm", "benchmark", "value", "line"]].reset_index(drop=True)


def modelled_columns(
    columns: Sequence[str],
    catalog: pd.DataFrame,
    source: str,
    long: pd.DataFrame | None = None,
) -> tuple[list[str], list[str]]:
    """Split score columns into modelled and catalogued-as-excluded; unknown is an error.

    Parameters
    ----------
    columns : sequence of str
        Benchmark keys found in a file.
    catalog : pandas.DataFrame
        Validated catalog, indexed by key.
    source : str
        File named in the error.
    long : pandas.DataFrame, optional
        For a long file, its rows: the error then names the first row of the unknown
        benchmark; for a wide file, the header.

    Returns
    -------
    modelled, excluded : list of str
        Keys in file order.
    """
    unknown = [c for c in columns if c not in catalog.index]
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        problem = (
            f"benchmark {unknown[0]!r} has no entry in the benchmark catalog (role and "
            f"direction unknown); every undeclared column: {unknown[:10]}{more}; declare each "
            "in the benchmark metadata or as a capability or safety benchmark, or map it to "
            "an LLM column"
        )
        if long is not None:
            first = long["benchmark"] == unknown[0]
            raise_first_bad_row(
                long, first, problem, source=source, column=unknown[0], llm_of="llm"
            )
        raise StudyValidationError(problem, source=source, line=1, column=unknown[0])
    excluded = [c for c in columns if catalog.loc[c, "role"] == "excluded"]
    return [c for c in columns if c not in set(excluded)], excluded


def llm_metadata(
    frame: pd.DataFrame, llm_column: str, rename: Mapping[str, str], source: str
) -> pd.DataFrame:
    """Per-LLM metadata columns of a file, numbers checked (file, line and column named).

    Parameters
    ----------
    frame : pandas.DataFrame
        As returned by :func:`read_table`, one row per LLM.
    llm_column : str
        Column holding the LLM id.
    rename : mapping
        File column -> study column (see :data:`safetywash.data.validate.LLM_COLUMNS`);
        ``params`` and ``flop`` must be numbers or empty.
    source : str
        File named in errors.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``llm``, one column per value of ``rename``.
    """
    table = frame[[llm_column, *rename]].rename(columns=dict(rename)).set_index(llm_column)
    table.index.name = "llm"
    for original, col in rename.items():
        if col not in ("params", "flop"):
            continue
        text = frame[original].replace("", np.nan)
        numbers = pd.to_numeric(text, errors="coerce")
        raise_first_bad_row(
            frame,
            numbers.isna() & text.notna(),
            lambda row, original=original: f"{row[original]!r} is not a number",
            source=source,
            column=original,
            llm_of=llm_column,
        )
        table[col] = numbers.to_numpy()
    return table
