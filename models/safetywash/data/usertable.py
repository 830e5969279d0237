"""A study from a user's own files: a score table, its benchmark metadata, its declarations.

:class:`UserTable` says how to read one score file (wide or long, which column names the
LLMs, per-LLM columns, the benchmark metadata CSV and quick declarations, the text
encoding); :func:`read_user_study` turns it into a validated study, as the registered
datasets' readers do for theirs. Every command's ``--scores`` goes through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from safetywash.data.declare import Declarations
from safetywash.data.errors import StudyValidationError
from safetywash.data.readers import read_long_csv, read_wide_csv
from safetywash.data.study import BenchmarkStudy
from safetywash.data.table import read_table
from safetywash.data.validate import MIN_LLMS_PER_BENCHMARK


@dataclass(frozen=True)
class UserTable:
    """How to read a user's score file.

    Attributes
    ----------
    path : pathlib.Path
        The score CSV.
    metadata : pathlib.Path, optional
        Its benchmark metadata CSV (catalog format of ``data/README.md``).
    long : bool
        ``llm,benchmark,value`` rows instead of one row per LLM.
    llm_column : str
        The column naming the LLMs.
    llm_meta : mapping of str to str
        Study LLM column (``family``, ``params``, ``flop``, ``population``,
        ``display_name``) -> file column.
    declarations : Declarations
        Quick declarations of benchmark columns.
    encoding : str
        Text encoding of the score file and the metadata CSV.
    """

    path: Path
    metadata: Path | None = None
    long: bool = False
    llm_column: str = "llm"
    llm_meta: Mapping[str, str] = field(default_factory=dict)
    declarations: Declarations = field(default_factory=Declarations)
    encoding: str = "utf-8"

    @property
    def has_population(self) -> bool:
        """Whether the file carries a population column (named or mapped)."""
        if "population" in self.llm_meta:
            return True
        header = read_table(self.path, encoding=self.encoding, min_rows=0).columns
        return "population" in header


def read_user_table(
    table: UserTable, *, min_llms: int = MIN_LLMS_PER_BENCHMARK, check_declared: bool = True
) -> BenchmarkStudy:
    """Read a user's score file as a validated study (every population in it).

    Parameters
    ----------
    table : UserTable
        The file and how to read it.
    min_llms : int
        Fewest observed LLMs a benchmark may have.
    check_declared : bool
        Refuse quick declarations naming columns the file does not have.

    Returns
    -------
    BenchmarkStudy
    """
    reader = read_long_csv if table.long else read_wide_csv
    declared = table.declarations
    return reader(
        table.path,
        table.metadata,
        llm_column=table.llm_column,
        capability=declared.capability,
        safety=declared.safety,
        lower_is_better=declared.lower_is_better,
        llm_meta=table.llm_meta,
        min_llms=min_llms,
        encoding=table.encoding,
        check_declared=check_declared,
    )


def read_user_study(
    table: UserTable, population: str | None = None, *, check_declared: bool = True
) -> BenchmarkStudy:
    """A user's score file as a study, restricted to one population if one is named.

    Parameters
    ----------
    table : UserTable
        The file and how to read it.
    population : str, optional
        A value of the file's population column (or ``"all"``); a file without such a column
        is one population, and naming one other than ``"all"`` is an error.
    check_declared : bool
        As in :func:`read_user_table`.

    Returns
    -------
    BenchmarkStudy
    """
    if population not in (None, "all") and not table.has_population:
        raise StudyValidationError(
            f"population {population!r} was asked for but the file has no population column "
            "(name one 'population' or map one with the LLM metadata); leave the population "
            "out to fit every LLM",
            source=str(table.path),
            line=1,
        )
    study = read_user_table(table, check_declared=check_declared)
    return study if population in (None, "all") else study.select_population(population)


def llm_rows(table: UserTable) -> tuple[list[str], list[int]]:
    """The LLM names of a user's file in file order, with the line each first appears on."""
    frame = read_table(table.path, required=[table.llm_column], encoding=table.encoding)
    firsts = frame.drop_duplicates(table.llm_column) if table.long else frame
    names = firsts[table.llm_column].astype(str).tolist()
    return names, pd.to_numeric(firsts["line"]).astype(int).tolist()
