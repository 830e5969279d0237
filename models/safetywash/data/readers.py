"""Readers: score files on disk to a validated :class:`~safetywash.data.study.BenchmarkStudy`.

Every reader checks the file itself (empty file, missing columns, duplicate rows or
headers, non-numeric cells) and names the file, line and column of the first problem; the
study then checks values against the catalog (bounds, directions, counts).
UTF-8 byte-order marks and CRLF line endings are accepted.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from safetywash.data.catalog import load_catalog, validate_catalog
from safetywash.data.errors import StudyValidationError
from safetywash.data.study import MIN_LLMS_PER_BENCHMARK, BenchmarkStudy

SAFETYWASHING_FILES = {
    "base": "data/benchmarks_base_models.csv",
    "chat": "data/benchmarks_chat_models.csv",
}
SAFETYWASHING_INFO = "data/benchmarks_info.csv"
POPULATIONS = ("base", "chat", "all")
# Columns of the Safetywashing matrices that describe the LLM, not a benchmark.
SAFETYWASHING_LLM_COLUMNS = {
    "name": "display_name",
    "type": "population",
    "model_size": "params",
    "FLOP": "flop",
}
# Generic files may carry these per-LLM columns beside the scores.
LLM_META_COLUMNS = ("display_name", "population", "family", "params", "flop")

_FAMILY_PATTERNS = (
    (r"^meta-llama-3", "Llama 3"),
    (r"^llama-2", "Llama 2"),
    (r"^mixtral", "Mixtral"),
    (r"^mistral", "Mistral"),
    (r"^qwen1\.5", "Qwen 1.5"),
    (r"^yi-", "Yi"),
    (r"^falcon", "Falcon"),
    (r"^dbrx", "DBRX"),
    (r"^deepseek", "DeepSeek LLM"),
    (r"^gemma", "Gemma"),
)


def llm_family(llm: str) -> str:
    """Model family of a Safetywashing LLM id (``"Llama-2-7b-hf"`` -> ``"Llama 2"``)."""
    for pattern, family in _FAMILY_PATTERNS:
        if re.search(pattern, llm, flags=re.IGNORECASE):
            return family
    return ""


# ---------------------------------------------------------------------- file level
def read_table(
    path: str | Path, *, required: Sequence[str] = (), delimiter: str = ","
) -> pd.DataFrame:
    """Read a CSV (or TSV) as strings, checking its shape record by record.

    The header must be non-empty with unique names and the ``required`` columns; every data
    row must have exactly as many fields as the header (blank lines are skipped).

    Parameters
    ----------
    path : str or pathlib.Path
        The file (UTF-8, optional BOM, LF or CRLF line endings).
    required : sequence of str
        Column names that must be present.
    delimiter : str
        Field separator (``","`` or ``"\t"``).

    Returns
    -------
    pandas.DataFrame
        All cells as stripped strings (``""`` for empty cells), plus a ``line`` column with
        the 1-based line on which each record starts (the header is line 1), also when a
        quoted field spans several lines.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise StudyValidationError("file not found", source=source)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if not header or all(not h.strip() for h in header):
            raise StudyValidationError("the file is empty (no header line)", source=source)
        names = [h.strip() for h in header]
        _check_header(names, required, source)
        rows, lines = [], []
        start = reader.line_num + 1  # a quoted field may span lines: name the first one
        for row in reader:
            line, start = start, reader.line_num + 1
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                raise StudyValidationError(
                    f"row has {len(row)} fields but the header has {len(names)}",
                    source=source,
                    line=line,
                )
            rows.append([cell.strip() for cell in row])
            lines.append(line)
    if not rows:
        raise StudyValidationError("the file has a header but no data rows", source=source)
    frame = pd.DataFrame(rows, columns=names, dtype=str)
    frame["line"] = lines
    return frame


def _check_header(names: list[str], required: Sequence[str], source: str) -> None:
    seen: set[str] = set()
    for name in names:
        if not name:
            raise StudyValidationError("empty column name in the header", source=source, line=1)
        if name in seen:
            raise StudyValidationError(
                "column appears twice in the header", source=source, line=1, column=name
            )
        if name == "line":
            raise StudyValidationError(
                "'line' is a reserved column name", source=source, line=1, column=name
            )
        seen.add(name)
    missing = [c for c in required if c not in names]
    if missing:
        raise StudyValidationError(
            f"missing required column(s) {missing}; the header has {names[:12]}"
            + (" ..." if len(names) > 12 else ""),
            source=source,
            line=1,
        )


def _check_unique_llms(frame: pd.DataFrame, llm_column: str, source: str) -> None:
    dup = frame[llm_column].duplicated(keep=False).to_numpy()
    if dup.any():
        name = frame.loc[dup, llm_column].iloc[0]
        lines = frame.loc[frame[llm_column] == name, "line"].tolist()
        raise StudyValidationError(
            f"LLM appears in more than one row (lines {lines})",
            source=source,
            line=lines[1],
            column=llm_column,
            llm=name,
        )
    empty = (frame[llm_column] == "").to_numpy()
    if empty.any():
        raise StudyValidationError(
            "empty LLM name",
            source=source,
            line=int(frame.loc[empty, "line"].iloc[0]),
            column=llm_column,
        )


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


def _catalog_for(
    benchmark_columns: Sequence[str],
    metadata: str | Path | pd.DataFrame | None,
    default_direction: str | None,
    capability: Iterable[str],
    source: str,
) -> pd.DataFrame:
    """The catalog for a generic file: a metadata CSV, or defaults given by argument."""
    if metadata is not None:
        if isinstance(metadata, pd.DataFrame):
            return validate_catalog(metadata, source="metadata")
        return load_catalog(metadata)
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


def _modelled_columns(
    columns: Sequence[str],
    catalog: pd.DataFrame,
    source: str,
    long: pd.DataFrame | None = None,
) -> tuple[list[str], list[str]]:
    """Split score columns into modelled and catalogued-as-excluded; unknown is an error.

    For a long file (``long`` given) the error names the first row of the unknown
    benchmark; for a wide file, the header.
    """
    unknown = [c for c in columns if c not in catalog.index]
    if unknown:
        where = {"line": 1}
        if long is not None:
            row = long.loc[long["benchmark"] == unknown[0]].iloc[0]
            where = {"line": int(row["line"]), "llm": str(row["llm"])}
        raise StudyValidationError(
            f"benchmark {unknown[0]!r} has no entry in the benchmark catalog (role and "
            f"direction unknown); all unknown: {unknown[:10]}",
            source=source,
            column=unknown[0],
            **where,
        )
    excluded = [c for c in columns if catalog.loc[c, "role"] == "excluded"]
    return [c for c in columns if c not in set(excluded)], excluded


def _llm_table(
    frame: pd.DataFrame, llm_column: str, rename: Mapping[str, str], source: str
) -> pd.DataFrame:
    """Per-LLM metadata columns of a file, numbers checked (file, line and column named)."""
    table = frame[[llm_column, *rename]].rename(columns=dict(rename)).set_index(llm_column)
    table.index.name = "llm"
    lines = frame["line"].to_numpy()
    for original, col in rename.items():
        if col not in ("params", "flop"):
            continue
        text = table[col].replace("", np.nan)
        numbers = pd.to_numeric(text, errors="coerce")
        bad = (numbers.isna() & text.notna()).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise StudyValidationError(
                f"{text.iloc[i]!r} is not a number",
                source=source,
                line=int(lines[i]),
                column=original,
                llm=str(table.index[i]),
            )
        table[col] = numbers
    return table


# ---------------------------------------------------------------------- generic readers
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

    Returns
    -------
    BenchmarkStudy
    """
    path = Path(path)
    source = str(path)
    frame = read_table(path, required=[llm_column])
    _check_unique_llms(frame, llm_column, source)
    meta = [c for c in LLM_META_COLUMNS if c in frame.columns]
    score_columns = [c for c in frame.columns if c not in (llm_column, "line", *meta)]
    if not score_columns:
        raise StudyValidationError("no benchmark columns besides the LLM columns", source=source)
    catalog = _catalog_for(score_columns, metadata, default_direction, capability, source)
    modelled, excluded = _modelled_columns(score_columns, catalog, source)
    long = wide_to_long(
        frame,
        llm_column=llm_column,
        benchmark_columns=modelled,
        na_values=na_values,
        source=source,
    )
    llms = _llm_table(frame, llm_column, {c: c for c in meta}, source)
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
) -> BenchmarkStudy:
    """Read a long score table: one row per observed (llm, benchmark, value) cell.

    Parameters
    ----------
    path : str or pathlib.Path
        CSV with columns ``llm``, ``benchmark``, ``value``; optional per-LLM columns
        ``display_name``, ``population``, ``family``, ``params``, ``flop`` must agree on
        every row of the same LLM.
    metadata, default_direction, capability, min_llms, name
        As in :func:`read_wide_csv`.

    Returns
    -------
    BenchmarkStudy
    """
    path = Path(path)
    source = str(path)
    frame = read_table(path, required=["llm", "benchmark", "value"])
    empty = (frame["value"] == "").to_numpy()
    if empty.any():
        row = frame.loc[empty].iloc[0]
        raise StudyValidationError(
            "empty score: in a long file leave unmeasured cells out instead",
            source=source,
            line=int(row["line"]),
            column="value",
            llm=row["llm"],
        )
    benchmarks = list(pd.unique(frame["benchmark"]))
    catalog = _catalog_for(benchmarks, metadata, default_direction, capability, source)
    modelled, excluded = _modelled_columns(benchmarks, catalog, source, long=frame)
    long = frame[frame["benchmark"].isin(modelled)]
    meta = [c for c in LLM_META_COLUMNS if c in frame.columns]
    llms = None
    if meta:
        per_llm = long.groupby("llm", sort=False)[meta].nunique()
        clash = per_llm[(per_llm > 1).any(axis=1)]
        if not clash.empty:
            llm = str(clash.index[0])
            col = str(clash.columns[(clash.iloc[0] > 1).to_numpy()][0])
            rows = long[long["llm"] == llm]
            differs = rows[rows[col] != rows[col].iloc[0]].iloc[0]
            raise StudyValidationError(
                f"LLM metadata differs between rows of the same LLM ({rows[col].iloc[0]!r} "
                f"on line {int(rows['line'].iloc[0])}, {differs[col]!r} here)",
                source=source,
                line=int(differs["line"]),
                column=col,
                llm=llm,
            )
        firsts = long.drop_duplicates("llm")
        llms = _llm_table(firsts, "llm", {c: c for c in meta}, source)
    return BenchmarkStudy.from_frames(
        long[["llm", "benchmark", "value", "line"]],
        llms,
        catalog,
        name=name or path.stem,
        source=source,
        min_llms=min_llms,
        excluded=excluded,
    )


# ---------------------------------------------------------------------- Safetywashing
def read_safetywashing(
    root: str | Path,
    population: str = "all",
    *,
    catalog: str | Path | pd.DataFrame = "safetywashing",
    min_llms: int = MIN_LLMS_PER_BENCHMARK,
) -> BenchmarkStudy:
    """Read the Safetywashing release (Ren et al., 2024) into a study.

    Parameters
    ----------
    root : str or pathlib.Path
        Directory laid out as the source repository (``<root>/data/benchmarks_*.csv``).
    population : {"base", "chat", "all"}
        Which matrix: base (pretrained) LLMs, chat LLMs, or both.
    catalog : path, name or DataFrame
        Benchmark catalog; default the one shipped in ``data/catalogs/safetywashing.csv``.
    min_llms : int
        Fewest observed LLMs a benchmark may have.

    Returns
    -------
    BenchmarkStudy
        Raw values as stored in the source (MACHIAVELLI un-negated, mixed scales); the
        catalog's ``direction`` says how to orient each benchmark. Columns catalogued as
        ``excluded`` are listed in ``study.excluded``.
    """
    if population not in POPULATIONS:
        raise StudyValidationError(
            f"unknown population {population!r}; choose one of {list(POPULATIONS)}"
        )
    root = Path(root)
    table = catalog if isinstance(catalog, pd.DataFrame) else load_catalog(catalog)
    if "key" in table.columns:
        table = validate_catalog(table)
    pops = ("base", "chat") if population == "all" else (population,)
    longs, llm_tables, excluded = [], [], []
    for pop in pops:
        path = root / SAFETYWASHING_FILES[pop]
        source = str(path)
        frame = read_table(path, required=["model", *SAFETYWASHING_LLM_COLUMNS])
        _check_unique_llms(frame, "model", source)
        score_columns = [
            c
            for c in frame.columns
            if c not in ("model", "line") and c not in SAFETYWASHING_LLM_COLUMNS
        ]
        modelled, dropped = _modelled_columns(score_columns, table, source)
        excluded += [c for c in dropped if c not in excluded]
        long = wide_to_long(frame, llm_column="model", benchmark_columns=modelled, source=source)
        _check_numeric(long, source)
        longs.append(long.assign(source=source))
        llm_tables.append(_llm_table(frame, "model", SAFETYWASHING_LLM_COLUMNS, source))
    llms = pd.concat(llm_tables)
    llms["family"] = [llm_family(k) for k in llms.index]
    long = pd.concat(longs, ignore_index=True)
    return BenchmarkStudy.from_frames(
        long,
        llms,
        table,
        name=f"safetywashing-{population}",
        source=" + ".join(str(root / SAFETYWASHING_FILES[p]) for p in pops),
        min_llms=min_llms,
        excluded=excluded,
    )


def _check_numeric(long: pd.DataFrame, source: str) -> None:
    """Fail on the first non-numeric cell, naming the file, line and column."""
    numbers = pd.to_numeric(long["value"], errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        row = long.loc[bad].iloc[0]
        raise StudyValidationError(
            f"score {row['value']!r} is not a number",
            source=source,
            line=int(row["line"]),
            column=row["benchmark"],
            llm=row["llm"],
        )
