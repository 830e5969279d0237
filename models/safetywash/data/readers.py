"""Generic readers: a wide or long score CSV to a validated study.

Every reader checks the file itself (empty file, missing columns, duplicate rows or
headers, non-numeric cells) and names the file, line and column of the first problem; the
study then checks values against the catalog (bounds, directions, counts). Readers of the
registered datasets are in :mod:`safetywash.data.sources`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import pandas as pd

from safetywash.data.catalog import as_catalog, validate_catalog
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

# Generic files may carry these per-LLM columns beside the scores.
LLM_META_COLUMNS = ("display_name", "population", "family", "params", "flop")


def _catalog_for(
    benchmark_columns: Sequence[str],
    metadata: str | Path | pd.DataFrame | None,
    default_direction: str | None,
    capability: Iterable[str],
    source: str,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """The catalog for a generic file: a metadata CSV, or defaults given by argument."""
    if metadata is not None:
        return as_catalog(metadata, source="metadata", encoding=encoding)
    if default_direction is None:
        raise StudyValidationError(
            "unknown direction: no benchmark metadata was given, so it is not known whether "
            "a higher score is better; pass a metadata CSV (key, role, direction, ...) or "
            "default_direction='higher'/'lower'",
            source=source,
            column=benchmark_columns[0] if benchmark_columns else None,
        )
    capability = set(capability)
    rows = [
        {
            "key": key,
            "role": "capability" if key in capability else "safety",
            "area": "capability" if key in capability else "alignment",
            "direction": default_direction,
        }
        for key in benchmark_columns
    ]
    return validate_catalog(pd.DataFrame(rows), source="defaults")


def read_wide_csv(
    path: str | Path,
    metadata: str | Path | pd.DataFrame | None = None,
    *,
    llm_column: str = "llm",
    na_values: Iterable[str] = ("", "NA", "NaN", "-"),
    default_direction: str | None = None,
    capability: Iterable[str] = (),
    min_llms: int = MIN_LLMS_PER_BENCHMARK,
    name: str | None = None,
    populations: Collection[str] | None = None,
    encoding: str = "utf-8",
) -> BenchmarkStudy:
    """Read a wide score table: one row per LLM, one column per benchmark.

    Parameters
    ----------
    path : str or pathlib.Path
        CSV with an LLM id column and one column per benchmark. Optional per-LLM columns
        ``display_name``, ``population``, ``family``, ``params``, ``flop`` are metadata.
    metadata : path, DataFrame or None
        Benchmark catalog (see ``data/README.md``). Without it, ``default_direction`` must
        be given and every column is a safety benchmark unless listed in ``capability``.
    llm_column : str
        Name of the LLM id column.
    na_values : iterable of str
        Cell texts meaning "not measured".
    default_direction : {"higher", "lower"}, optional
        Direction of every benchmark when no metadata is given.
    capability : iterable of str
        Capability benchmarks when no metadata is given.
    min_llms : int
        Fewest observed LLMs a benchmark may have.
    name : str, optional
        Study name (default: the file stem).
    populations : collection of str, optional
        The populations the file may use: every value of its ``population`` column must be
        one of them (a typo such as ``caht`` fails, naming its line and the close matches
        instead of starting a population of one LLM). Without it any value is accepted.
    encoding : str
        Text encoding of the file and of a metadata CSV (e.g. ``"latin-1"``); UTF-8 with or
        without a byte-order mark by default.

    Returns
    -------
    BenchmarkStudy

    Raises
    ------
    StudyValidationError
        On the first problem, naming file, line and column: besides the study's checks, LLM
        names that repeat or differ only in case, control characters in names or keys,
        undeclared populations and bytes that are not text in ``encoding``.
    """
    path = Path(path)
    source = str(path)
    frame = _read_wide_table(path, llm_column, populations, encoding)
    meta = [c for c in LLM_META_COLUMNS if c in frame.columns]
    score_columns = [c for c in frame.columns if c not in (llm_column, "line", *meta)]
    if not score_columns:
        raise StudyValidationError("no benchmark columns besides the LLM columns", source=source)
    catalog = _catalog_for(score_columns, metadata, default_direction, capability, source, encoding)
    modelled, excluded = modelled_columns(score_columns, catalog, source)
    long = wide_to_long(
        frame,
        llm_column=llm_column,
        benchmark_columns=modelled,
        na_values=na_values,
        source=source,
    )
    llms = llm_metadata(frame, llm_column, {c: c for c in meta}, source)
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
    default_direction: str | None = None,
    capability: Iterable[str] = (),
    min_llms: int = MIN_LLMS_PER_BENCHMARK,
    name: str | None = None,
    populations: Collection[str] | None = None,
    encoding: str = "utf-8",
) -> BenchmarkStudy:
    """Read a long score table: one row per observed (llm, benchmark, value) cell.

    Parameters
    ----------
    path : str or pathlib.Path
        CSV with columns ``llm``, ``benchmark``, ``value``; optional per-LLM columns
        ``display_name``, ``population``, ``family``, ``params``, ``flop`` must agree on
        every row of the same LLM.
    metadata, default_direction, capability, min_llms, name, populations, encoding
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
    declared = declared_values(populations)
    frame = read_table(
        path,
        required=["llm", "benchmark", "value"],
        encoding=encoding,
        names=["llm", "benchmark", *LLM_META_COLUMNS],
    )
    raise_first_bad_row(frame, frame["llm"] == "", "empty LLM name", source=source, column="llm")
    check_distinct_case(frame, "llm", source=source)
    _check_populations(frame, declared, source, "llm")
    raise_first_bad_row(
        frame,
        frame["value"] == "",
        "empty score: in a long file leave unmeasured cells out instead",
        source=source,
        column="value",
        llm_of="llm",
    )
    benchmarks = list(pd.unique(frame["benchmark"]))
    catalog = _catalog_for(benchmarks, metadata, default_direction, capability, source, encoding)
    modelled, excluded = modelled_columns(benchmarks, catalog, source, long=frame)
    long = frame[frame["benchmark"].isin(modelled)]
    meta = [c for c in LLM_META_COLUMNS if c in frame.columns]
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


def _long_llm_metadata(long: pd.DataFrame, meta: list[str], source: str) -> pd.DataFrame:
    """Per-LLM columns of a long file, which must agree on every row of the same LLM."""
    per_llm = long.groupby("llm", sort=False)[meta].nunique()
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
    return llm_metadata(firsts, "llm", {c: c for c in meta}, source)


def _read_wide_table(
    path: Path, llm_column: str, populations: Collection[str] | None, encoding: str
) -> pd.DataFrame:
    """A wide file's table: one printable LLM name per row, populations as declared."""
    declared = declared_values(populations)
    names = [llm_column, *LLM_META_COLUMNS]
    frame = read_table(path, required=[llm_column], encoding=encoding, names=names)
    check_unique_llms(frame, llm_column, str(path))
    _check_populations(frame, declared, str(path), llm_column)
    return frame


def _check_populations(
    frame: pd.DataFrame, declared: tuple[str, ...] | None, source: str, llm_column: str
) -> None:
    """With declared populations, the ``population`` column must hold only those."""
    if declared is None:
        return
    if "population" not in frame.columns:
        raise StudyValidationError(
            f"populations {list(declared)} were declared but the file has no 'population' column",
            source=source,
            line=1,
        )
    check_declared(frame, "population", declared, source=source, llm_of=llm_column)
