"""Checks on the names in input tables: printable, distinct regardless of case, declared.

LLM names, benchmark keys and metadata strings are identifiers: a control character in one
(a NUL byte, a tab, a stray escape) is a damaged file, two spellings of one LLM that differ
only in case would become two LLMs, and a population value the dataset does not declare
(``caht``) would silently start a population of its own. Each check fails on the first
problem in file order, naming the file, line and column.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Sequence

import numpy as np
import pandas as pd

from safetywash.data.errors import StudyValidationError, raise_first_bad_row

#: C0 controls, DEL and C1 controls (Unicode category Cc), tab and line breaks included.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {0: "NUL", 9: "tab", 10: "line feed", 13: "carriage return", 27: "ESC"}


def close_matches(value: str, known: Collection[str], *, n: int = 3, cutoff: float = 0.6) -> str:
    """``"; close matches: [...]"`` for the known values resembling ``value``, else ``""``.

    Parameters
    ----------
    value : str
        The unknown value.
    known : collection of str
        The values that would have been accepted.
    n, cutoff
        As in :func:`difflib.get_close_matches`.

    Returns
    -------
    str
        A suffix for an error message.
    """
    near = nearest_names(value, known, n=n, cutoff=cutoff)
    return f"; close matches: {near}" if near else ""


def nearest_names(
    value: str,
    known: Iterable[str],
    *,
    n: int = 3,
    cutoff: float = 0.6,
    ignore_case: bool = False,
) -> list[str]:
    """The known names most like ``value``, best first (:func:`difflib.get_close_matches`).

    With ``ignore_case`` the comparison is on lower case and the names come back as spelled
    in ``known``.
    """
    spelled = {(str(k).lower() if ignore_case else str(k)): str(k) for k in known}
    probe = value.lower() if ignore_case else value
    near = difflib.get_close_matches(probe, sorted(spelled), n=n, cutoff=cutoff)
    return [spelled[k] for k in near]


def control_character(text: str) -> str | None:
    """Description of the first control character in ``text`` (``"U+0000 (NUL)"``), or None."""
    found = CONTROL_CHARACTERS.search(text)
    if found is None:
        return None
    code = ord(found.group())
    label = _CONTROL_NAMES.get(code)
    return f"U+{code:04X}" + (f" ({label})" if label else "")


def control_character_problem(text: str) -> str:
    """The error message for a name holding a control character."""
    return (
        f"{text!r} contains the control character {control_character(text)}: names, "
        "benchmark keys and metadata must be printable text"
    )


def check_printable(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    source: str | None,
    llm_of: str | None = None,
    source_of: str | None = None,
    error: type[StudyValidationError] = StudyValidationError,
) -> None:
    """Fail on the first cell (in file order) of ``columns`` holding a control character.

    Parameters
    ----------
    frame : pandas.DataFrame
        Cells with an optional ``line`` column (the file line of each row).
    columns : sequence of str
        Columns holding names; those absent from ``frame`` are skipped.
    source : str, optional
        File named in the error.
    llm_of : str, optional
        Column holding the row's LLM name, named in the error when that name is printable.
    source_of : str, optional
        Column holding each row's file, for rows read from several files.
    error : type
        The exception class.
    """
    present = [c for c in columns if c in frame.columns]
    if not present or frame.empty:
        return
    bad = np.column_stack(
        [frame[c].astype(str).str.contains(CONTROL_CHARACTERS).to_numpy() for c in present]
    )
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size == 0:
        return
    column = present[int(np.flatnonzero(bad[rows[0]])[0])]
    first = np.zeros(len(frame), dtype=bool)
    first[rows[0]] = True
    llm = frame[llm_of].iloc[rows[0]] if llm_of is not None else None
    named = llm_of if isinstance(llm, str) and control_character(llm) is None else None
    raise_first_bad_row(
        frame,
        first,
        lambda row: control_character_problem(str(row[column])),
        source=source,
        column=column,
        llm_of=named,
        source_of=source_of,
        error=error,
    )


def check_distinct_case(
    frame: pd.DataFrame,
    column: str,
    *,
    source: str | None,
    what: str = "LLM name",
    source_of: str | None = None,
    advice: str = "spell one LLM the same way on every line, or give two LLMs names that "
    "differ in more than case",
) -> None:
    """Fail if two spellings of a name differ only in case, naming the lines of both.

    Rows repeating one spelling are allowed (a long file lists an LLM on every row of its
    scores); within one file each spelling is represented by its first row. With
    ``source_of``, rows of different files holding the same name are a clash too.

    Parameters
    ----------
    frame : pandas.DataFrame
        String cells with a ``line`` column.
    column : str
        The column of names.
    source : str, optional
        File named in the error (unless the row's ``source_of`` field names one).
    what : str
        What the (LLM) names are called, for the message.
    source_of : str, optional
        Column holding each row's file, for rows read from several files.
    advice : str
        What to do about two spellings, ending the message.
    """
    keys = [column] if source_of is None else [source_of, column]
    positions = np.flatnonzero(~frame.duplicated(keys).to_numpy())
    firsts = frame.iloc[positions]
    folded = firsts[column].str.casefold()
    clash = np.flatnonzero(folded.duplicated().to_numpy())
    if clash.size == 0:
        return
    second = firsts.iloc[clash[0]]
    first = firsts.loc[(folded == second[column].casefold()).to_numpy()].iloc[0]
    where_first, where_second = _line_of(first, source_of), _line_of(second, source_of)
    if first[column] == second[column]:
        problem = f"{what} {second[column]!r} appears in two files ({where_first}, {where_second})"
    else:
        problem = (
            f"{what}s {first[column]!r} ({where_first}) and {second[column]!r} "
            f"({where_second}) differ only in case; {advice}"
        )
    bad = np.zeros(len(frame), dtype=bool)
    bad[positions[clash[0]]] = True
    raise_first_bad_row(
        frame,
        bad,
        problem,
        source=source,
        column=column,
        llm_of=column,
        source_of=source_of,
    )


def _line_of(row: pd.Series, source_of: str | None) -> str:
    line = f"line {int(row['line'])}"
    return f"{row[source_of]} {line}" if source_of is not None else line


def check_declared(
    frame: pd.DataFrame,
    column: str,
    declared: Collection[str],
    *,
    source: str | None,
    what: str = "population",
    llm_of: str | None = None,
) -> None:
    """Fail on the first row whose ``column`` value is not one of ``declared``.

    Parameters
    ----------
    frame : pandas.DataFrame
        String cells with a ``line`` column.
    column : str
        The column checked (e.g. ``population`` or Safetywashing's ``type``).
    declared : collection of str
        The values the dataset declares.
    source : str, optional
        File named in the error.
    what : str
        What the values are, for the message.
    llm_of : str, optional
        Column holding the row's LLM name.
    """
    allowed = sorted(set(declared))

    def problem(row: pd.Series) -> str:
        value = row[column]
        said = f"empty {what}" if value == "" else f"{what} {value!r}"
        return f"{said} is not one of the declared {what}s {allowed}" + close_matches(
            value, allowed
        )

    raise_first_bad_row(
        frame,
        ~frame[column].isin(allowed).to_numpy(),
        problem,
        source=source,
        column=column,
        llm_of=llm_of,
    )


def declared_values(values: Collection[str] | None, *, what: str = "populations") -> tuple | None:
    """Check a user's list of declared values (e.g. ``populations=``); None stays None.

    Returns
    -------
    tuple of str or None
        The values, stripped, in the order given.

    Raises
    ------
    StudyValidationError
        For a bare string, an empty list, or an empty or non-printable value.
    """
    if values is None:
        return None
    if isinstance(values, str):
        raise StudyValidationError(
            f"{what} must be a list of names, not the single string {values!r}"
        )
    out = tuple(str(v).strip() for v in values)
    if not out:
        raise StudyValidationError(f"{what} was given but lists no name")
    for value in out:
        if value == "":
            raise StudyValidationError(f"{what} lists an empty name")
        if control_character(value) is not None:
            raise StudyValidationError(f"{what}: {control_character_problem(value)}")
    return out
