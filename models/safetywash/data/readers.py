"""Generic readers: a wide or long score CSV to a validated study.

Every reader checks the file itself (empty file, missing columns, duplicate rows or
headers, non-numeric cells) and names the file, line and column of the first problem; the
study then checks values against the catalog (bounds, directions, counts). Readers of the
registered datasets are in :mod:`safetywash.data.sources`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from safetywash.data.declare import LLM_META_COLUMNS, Declarations, declared_catalog, llm_columns
from safetywash.data.errors import StudyValidationError, raise_first_bad_row
from safetywash.data.names import check_declared, check_distinct_case, declared_values
from safetywash.data.study import BenchmarkStudy
from safetywash.data.table import (
    check_unique_llms,
    llm_metadata,
    modelled_columns,
    read_table,
    wide_to_long,
)
from safetywash.data.validate import MIN_LLMS_PER_BENCHMARK


def _catalog_for(
    columns: Sequence[str],
    metadata: str | Path | pd.DataFrame | None,
    declarations: Declarations,
    source: str,
    encoding: str,
    check_declared: bool,
) -> pd.DataFrame:
    """The catalog of a generic file: its metadata and quick declarations (nothing guessed)."""
    return declared_catalog(
        metadata,
        declarations,
        columns=columns if check_declared else None,
        source=source,
        encoding=encoding,
    )


def read_wide_csv(
    path: str | Path,
    metadata: str | Path | pd.DataFrame | None = None,
    *,
    llm_column: str = "llm",
    na_values: Iterable[str] = ("", "NA", "NaN", "-"),
    capability: Iterable[str] = (),
    safety: Mapping[str, str] | None = None,
    lower_is_better: Iterable[str] = (),
    llm_meta: Mapping[str, str] | None = None,
    min_llms: int = MIN_LLMS_PER_BENCHMARK,
    name: str | None = None,
    populations: Collection[str] | None = None,
    encoding: str = "utf-8",
    check_declared: bool = True,
) -> BenchmarkStudy:
    """Read a wide score table: one row per LLM, one column per benchmark.

    Parameters
    ----------
    path : str or pathlib.Path
        CSV with an LLM id column and one column per benchmark; per-LLM columns named
        ``display_name``, ``population``, ``family``, ``params``, ``flop`` or mapped by
        ``llm_meta`` are LLM metadata.
    metadata : path, DataFrame or None
        Benchmark catalog (see ``data/README.md``); safety areas beyond the paper's allowed.
    llm_column, na_values : str, iterable of str
        Name of the LLM id column; cell texts meaning "not measured".
    capability, safety, lower_is_better
        Quick declarations (:class:`~safetywash.data.declare.Declarations`): capability
        columns, safety columns with areas (``{"refusal": "misuse"}``), lower-is-better
        columns. A column neither declared, in ``metadata`` nor LLM metadata is an error.
    llm_meta : mapping of str to str, optional
        Study LLM column -> file column, e.g. ``{"family": "Model Family"}``.
    min_llms, name : int, str
        Fewest observed LLMs a benchmark may have; the study name (default: the file stem).
    populations : collection of str, optional
        The populations the file may use (a typo such as ``caht`` fails, naming its line and
        the close matches, instead of starting a population of one LLM).
    encoding : str
        Text encoding of the file and of a metadata CSV (e.g. ``"latin-1"``; UTF-8 default).
    check_declared : bool
        Refuse a quick declaration naming a column the file lacks (off for shared ones).

    Returns
    -------
    BenchmarkStudy

    Raises
    ------
    StudyValidationError
        On the first problem, naming file, line and column: the study's checks, repeated or
        case-only-distinct LLM names, control characters, undeclared populations or
        columns (all listed), bytes that are not text in ``encoding``.
    """
    path, source = Path(path), str(path)
    names = [llm_column, *LLM_META_COLUMNS, *(llm_meta or {}).values()]
    frame = read_table(path, required=[llm_column], encoding=encoding, names=names)
    check_unique_llms(frame, llm_column, source)
    meta = llm_columns(_header(frame), llm_column, llm_meta, source)
    _check_populations(frame, declared_values(populations), source, llm_column, meta)
    score_columns = [c for c in _header(frame) if c not in (llm_column, *meta)]
    if not score_columns:
        raise StudyValidationError("no benchmark columns besides the LLM columns", source=source)
    declared = Declarations(tuple(capability), dict(safety or {}), tuple(lower_is_better))
    catalog = _catalog_for(score_columns, metadata, declared, source, encoding, check_declared)
    modelled, excluded = modelled_columns(score_columns, catalog, source)
    long = wide_to_long(
        frame, llm_column=llm_column, benchmark_columns=modelled, na_values=na_values, source=source
    )
    llms = llm_metadata(frame, llm_column, meta, source)
    return BenchmarkStudy.from_frames(
        long,
        llms,
        catalog,
        name=name or path.stem,
        source=source,
        min_llms=min_llms,
        excluded=excluded,
    )


def read_long_csv(
    path: str | Path,
    metadata: str | Path | pd.DataFrame | None = None,
    *,
    llm_column: str = "llm",
    capability: Iterable[str] = (),
    safety: Mapping[str, str] | None = None,
    lower_is_better: Iterable[str] = (),
    llm_meta: Mapping[str, str] | None = None,
    min_llms: int = MIN_LLMS_PER_BENCHMARK,
    name: str | None = None,
    populations: Collection[str] | None = None,
    encoding: str = "utf-8",
    check_declared: bool = True,
) -> BenchmarkStudy:
    """Read a long score table: one row per observed (llm, benchmark, value) cell.

    Parameters
    ----------
    path : str or pathlib.Path
        CSV with columns ``llm`` (or ``llm_column``), ``benchmark``, ``value``; per-LLM
        columns (named ``display_name``, ``population``, ``family``, ``params``, ``flop``, or
        mapped by ``llm_meta``) must agree on every row of the same LLM. Any other column is
        an error.
    metadata, llm_column, capability, safety, lower_is_better, llm_meta, min_llms
        As in :func:`read_wide_csv`; the declarations name values of the ``benchmark`` column.
    name, populations, encoding, check_declared
        As in :func:`read_wide_csv`.

    Returns
    -------
    BenchmarkStudy

    Raises
    ------
    StudyValidationError
        As :func:`read_wide_csv`; an LLM may be on many rows, but always spelled the same.
    """
    path = Path(path)
    source = str(path)
    names = [llm_column, "benchmark", *LLM_META_COLUMNS, *(llm_meta or {}).values()]
    frame = read_table(
        path, required=[llm_column, "benchmark", "value"], encoding=encoding, names=names
    )
    frame = frame.rename(columns={llm_column: "llm"}) if llm_column != "llm" else frame
    meta = llm_columns(_header(frame), "llm", llm_meta, source)
    extra = [c for c in _header(frame) if c not in ("llm", "benchmark", "value", *meta)]
    if extra:
        raise StudyValidationError(
            f"column(s) {extra} are neither llm, benchmark, value nor mapped LLM metadata",
            source=source,
            line=1,
            column=extra[0],
        )
    raise_first_bad_row(frame, frame["llm"] == "", "empty LLM name", source=source, column="llm")
    check_distinct_case(frame, "llm", source=source)
    _check_populations(frame, declared_values(populations), source, "llm", meta)
    raise_first_bad_row(
        frame,
        frame["value"] == "",
        "empty score: in a long file leave unmeasured cells out instead",
        source=source,
        column="value",
        llm_of="llm",
    )
    benchmarks = list(pd.unique(frame["benchmark"]))
    declared = Declarations(tuple(capability), dict(safety or {}), tuple(lower_is_better))
    catalog = _catalog_for(benchmarks, metadata, declared, source, encoding, check_declared)
    modelled, excluded = modelled_columns(benchmarks, catalog, source, long=frame)
    long = frame[frame["benchmark"].isin(modelled)]
    llms = _long_llm_metadata(long, meta, source) if meta else None
    return BenchmarkStudy.from_frames(
        long[["llm", "benchmark", "value", "line"]],
        llms,
        catalog,
        name=name or path.stem,
        source=source,
        min_llms=min_llms,
        excluded=excluded,
    )


def _header(frame: pd.DataFrame) -> list[str]:
    """A table's columns as in its file (without the added ``line``)."""
    return [c for c in frame.columns if c != "line"]


def _long_llm_metadata(long: pd.DataFrame, meta: Mapping[str, str], source: str) -> pd.DataFrame:
    """Per-LLM columns of a long file, which must agree on every row of the same LLM."""
    per_llm = long.groupby("llm", sort=False)[list(meta)].nunique()
    clash = per_llm[(per_llm > 1).any(axis=1)]
    if not clash.empty:
        llm = str(clash.index[0])
        col = str(clash.columns[(clash.iloc[0] > 1).to_numpy()][0])
        rows = long[long["llm"] == llm]
        first = rows[col].iloc[0]
        raise_first_bad_row(
            long,
            (long["llm"] == llm) & (long[col] != first),
            lambda r: (
                f"LLM metadata differs between rows of the same LLM ({first!r} "
                f"on line {int(rows['line'].iloc[0])}, {r[col]!r} here)"
            ),
            source=source,
            column=col,
            llm_of="llm",
        )
    firsts = long.drop_duplicates("llm")
    return llm_metadata(firsts, "llm", dict(meta), source)


def _check_populations(
    frame: pd.DataFrame,
    declared: tuple[str, ...] | None,
    source: str,
    llm_column: str,
    meta: Mapping[str, str],
) -> None:
    """With declared populations, the population column must hold only those."""
    if declared is None:
        return
    column = next((f for f, s in meta.items() if s == "population"), None)
    if column is None:
        raise StudyValidationError(
            f"populations {list(declared)} were declared but the file has no 'population' column",
            source=source,
            line=1,
        )
    check_declared(frame, column, declared, source=source, llm_of=llm_column)
