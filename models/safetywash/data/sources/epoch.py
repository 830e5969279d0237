"""Reader for Epoch AI's "benchmark stitching" scores (``epoch-research/benchmark-stitching``).

The release has Epoch's own Inspect runs (``data/benchmarks_runs.csv``, long format, one
row per run), 37 external benchmark tables (``data/external_benchmark_<name>.csv``, one
benchmark per file, several rows per model version possible) and a model-version registry
(``data/model_versions.csv``). The reader rebuilds the paper's models x benchmarks matrix
with the source's own rules (see the ``epoch-benchmark-stitching`` section of
``data/README.md``):

1. the row unit is the model *version* id (``model`` in the runs file, ``Model version`` in
   the external files, ``id`` in the registry); ids are compared after stripping
   surrounding spaces on *both* sides (two ids end in a space in every file that has them);
2. a row is used only if its version id and its score are non-empty, and (except in the
   BALROG and internal files) its ``Source`` is non-empty;
3. scores are normalised to 0-1: a trailing ``%`` is dropped and the number divided by the
   file's divisor (100 for percent strings and 0-100 numbers, 10 for the 0-10 writing
   score, 1 for the internal runs);
4. benchmarks the catalog marks ``excluded`` (BoolQ, MC-Bench, METR, the two public
   FrontierMath subsets) are dropped before anything is counted;
5. versions are kept when they have scores on more than 3 distinct benchmarks;
6. versions are kept when their registry release date is on or after 2022-11-01 (an
   empty date drops the version);
7. several rows for one (version, benchmark) pair (different sources, shot counts,
   scaffolds) are resolved by the **maximum** score, as the paper does
   (``duplicates="error"`` refuses instead, naming the lines).

Every version id in a score file must be in the registry; an unknown id is an error (the
source's inner join would drop it silently, and at the pinned commit none is unknown).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from safetywash.data.catalog import as_catalog
from safetywash.data.errors import StudyValidationError, raise_first_bad_row
from safetywash.data.names import check_distinct_case
from safetywash.data.study import BenchmarkStudy
from safetywash.data.table import check_unique, read_table
from safetywash.data.validate import MIN_LLMS_PER_BENCHMARK

log = logging.getLogger(__name__)

EPOCH_RUNS = "data/benchmarks_runs.csv"
EPOCH_VERSIONS = "data/model_versions.csv"
EPOCH_POPULATIONS = ("all",)
EPOCH_DUPLICATE_RULES = ("max", "error")
#: Paper filter: keep versions with scores on more than this many distinct benchmarks.
EPOCH_MIN_BENCHMARKS_EXCLUSIVE = 3
#: Paper filter: keep versions released on or after this date (ChatGPT era).
EPOCH_START_DATE = "2022-11-01"


@dataclass(frozen=True)
class ExternalFile:
    """Where the score of one external benchmark file is and how to normalise it."""

    score_column: str
    divisor: float = 100.0
    needs_source: bool = True

    def path(self, key: str) -> str:
        """Path of the file of benchmark ``key`` inside the release."""
        return f"data/external_benchmark_{key}.csv"


#: Catalog key (file stem) -> score column and normalisation, as in the paper's loader.
EPOCH_EXTERNAL: dict[str, ExternalFile] = {
    "aider_polyglot": ExternalFile("Percent correct"),
    "anli": ExternalFile("Score"),
    "arc_agi": ExternalFile("Score"),
    "arc_ai2": ExternalFile("Challenge score"),
    "balrog": ExternalFile("Average progress", needs_source=False),
    "bbh": ExternalFile("Average"),
    "boolq": ExternalFile("Score"),
    "cadeval": ExternalFile("Overall pass (%)"),
    "csqa2": ExternalFile("Score"),
    "cybench": ExternalFile("Unguided % Solved"),
    "deepresearch": ExternalFile("Average score"),
    "factorio_learning_environment": ExternalFile("Lab Success %"),
    "fictionlivebench": ExternalFile("16k token score"),
    "geobench": ExternalFile("ACW Country %"),
    "gsm8k": ExternalFile("EM"),
    "gso_bench": ExternalFile("Score OPT@1"),
    "hellaswag": ExternalFile("Overall accuracy"),
    "lambada": ExternalFile("Score"),
    "lech_mazur_writing": ExternalFile("Mean score", divisor=10.0),
    "livebench": ExternalFile("Global average"),
    "mcbench": ExternalFile("Win rate"),
    "metr": ExternalFile("average_score", divisor=1.0),
    "mmlu": ExternalFile("EM"),
    "openbookqa": ExternalFile("Accuracy"),
    "os_world": ExternalFile("Score"),
    "osuniverse": ExternalFile("Weighted Score"),
    "piqa": ExternalFile("Score"),
    "scienceqa": ExternalFile("Score"),
    "simple_bench": ExternalFile("Score (AVG@5)"),
    "superglue": ExternalFile("Score"),
    "terminal_bench": ExternalFile("Accuracy mean"),
    "the_agent_company": ExternalFile("% Resolved"),
    "triviaqa": ExternalFile("EM"),
    "videomme": ExternalFile("Overall (no subtitles)"),
    "vpct": ExternalFile("Correct"),
    "weirdml": ExternalFile("Accuracy"),
    "winogrande": ExternalFile("Accuracy"),
}
#: Internal runs: columns of ``benchmarks_runs.csv``.
RUNS_COLUMNS = {"benchmark": "task", "version": "model", "value": "Best score (across scorers)"}
RUNS_NAMES = (RUNS_COLUMNS["version"], RUNS_COLUMNS["benchmark"])
VERSION_COLUMNS = ("id", "Model", "Version release date")
VERSION_NAMES = ("id", "Model", "Display name", "Unique display name")


# ---------------------------------------------------------------------- raw cells
def epoch_score_rows(
    root: str | Path, catalog: str | Path | pd.DataFrame = "epoch-benchmark-stitching"
) -> pd.DataFrame:
    """Every usable score row of the modelled benchmarks, before filters and duplicates.

    Applies rules 1-4 of the module docstring.

    Returns
    -------
    pandas.DataFrame
        Columns ``llm`` (version id, stripped), ``benchmark`` (catalog key), ``value``
        (normalised 0-1 float), ``text`` (the cell as stored), ``source`` (file) and
        ``line`` (the line the row starts on).
    """
    root = Path(root)
    table = as_catalog(catalog)
    modelled = set(table.index[table["role"] != "excluded"])
    runs, tasks = _runs_rows(root, table, modelled)
    parts = [runs]
    for key, spec in EPOCH_EXTERNAL.items():
        if key not in table.index:
            raise StudyValidationError(
                f"external benchmark file {spec.path(key)} has no catalog entry "
                "(role and direction unknown)",
                source=str(root / spec.path(key)),
                column=spec.score_column,
            )
        if key in modelled:
            parts.append(_external_rows(root, key, spec))
    orphans = sorted(k for k in modelled if k not in EPOCH_EXTERNAL and k not in tasks)
    if orphans:
        raise StudyValidationError(
            f"catalogued benchmark(s) {orphans[:5]} are neither a task of {EPOCH_RUNS} nor "
            "an external benchmark file",
            source=str(root / EPOCH_RUNS),
        )
    return pd.concat(parts, ignore_index=True)


def _runs_rows(
    root: Path, table: pd.DataFrame, modelled: set[str]
) -> tuple[pd.DataFrame, set[str]]:
    path = root / EPOCH_RUNS
    source = str(path)
    frame = read_table(path, required=list(RUNS_COLUMNS.values()), names=RUNS_NAMES)
    task = frame[RUNS_COLUMNS["benchmark"]]
    tasks = set(task)
    unknown = ~task.isin(table.index)
    raise_first_bad_row(
        frame,
        unknown,
        lambda r: (
            f"task {r['task']!r} has no entry in the benchmark catalog (role and direction "
            f"unknown); all unknown: {sorted(set(task[unknown]))[:10]}"
        ),
        source=source,
        column=RUNS_COLUMNS["benchmark"],
    )
    frame = frame[task.isin(modelled)]
    columns = [*RUNS_NAMES, RUNS_COLUMNS["value"], "line"]
    out = frame[columns].set_axis(["llm", "benchmark", "text", "line"], axis=1)
    return _parse(out, divisor=1.0, source=source, column=RUNS_COLUMNS["value"]), tasks


def _external_rows(root: Path, key: str, spec: ExternalFile) -> pd.DataFrame:
    path = root / spec.path(key)
    source = str(path)
    required = ["Model version", spec.score_column] + (["Source"] if spec.needs_source else [])
    frame = read_table(path, required=required, names=["Model version"])
    keep = (frame["Model version"] != "") & (frame[spec.score_column] != "")
    if spec.needs_source:
        keep &= frame["Source"] != ""
    frame = frame[keep]
    out = pd.DataFrame(
        {
            "llm": frame["Model version"],
            "benchmark": key,
            "text": frame[spec.score_column],
            "line": frame["line"],
        }
    )
    return _parse(out, divisor=spec.divisor, source=source, column=spec.score_column)


def _parse(rows: pd.DataFrame, *, divisor: float, source: str, column: str) -> pd.DataFrame:
    """Drop empty ids/scores, normalise scores to 0-1; fail on the first unreadable score."""
    rows = rows[(rows["llm"] != "") & (rows["text"] != "")].copy()
    number = pd.to_numeric(rows["text"].str.removesuffix("%").str.strip(), errors="coerce")
    raise_first_bad_row(
        rows,
        number.isna() | ~number.map(math.isfinite),
        lambda r: f"score {r['text']!r} is not a number (or a percentage like '42%')",
        source=source,
        column=column,
        llm_of="llm",
    )
    rows["value"] = number.astype(float) / divisor
    rows["source"] = source
    return rows[["llm", "benchmark", "value", "text", "source", "line"]]


# ---------------------------------------------------------------------- registry
def epoch_versions(root: str | Path) -> pd.DataFrame:
    """The model-version registry, indexed by the stripped version id.

    Returns
    -------
    pandas.DataFrame
        Columns ``family`` (``Model``), ``display_name`` (``Unique display name``, else
        ``Display name``, else the id), ``date`` (Timestamp or NaT) and ``line``.
    """
    path = Path(root) / EPOCH_VERSIONS
    source = str(path)
    frame = read_table(path, required=list(VERSION_COLUMNS), names=VERSION_NAMES)
    raise_first_bad_row(frame, frame["id"] == "", "empty model-version id", source=source)
    check_unique(
        frame,
        "id",
        source=source,
        problem=lambda lines: (
            f"model-version id appears more than once (lines {lines}; ids are compared "
            "without surrounding spaces)"
        ),
    )
    text = frame["Version release date"]
    date = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    raise_first_bad_row(
        frame,
        date.isna() & (text != ""),
        lambda r: f"release date {r['Version release date']!r} is not a YYYY-MM-DD date",
        source=source,
        column="Version release date",
        llm_of="id",
    )
    display = frame.get("Unique display name", pd.Series("", index=frame.index))
    display = display.where(display != "", frame.get("Display name", display))
    display = display.where(display != "", frame["id"])
    return pd.DataFrame(
        {
            "family": frame["Model"].to_numpy(),
            "display_name": display.to_numpy(),
            "date": date.to_numpy(),
            "line": frame["line"].to_numpy(),
        },
        index=pd.Index(frame["id"], name="llm"),
    )


# ---------------------------------------------------------------------- duplicates
def resolve_duplicates(rows: pd.DataFrame, rule: str = "max") -> pd.DataFrame:
    """One score per (version, benchmark) pair.

    Parameters
    ----------
    rows : pandas.DataFrame
        As from :func:`epoch_score_rows`.
    rule : {"max", "error"}
        ``"max"`` keeps the row with the largest score (the paper's rule; ties keep the
        first row in file order). ``"error"`` raises on the first duplicated pair, naming
        its file and lines.

    Returns
    -------
    pandas.DataFrame
        The kept rows, in their original order.
    """
    if rule not in EPOCH_DUPLICATE_RULES:
        raise ValueError(f"duplicates must be one of {EPOCH_DUPLICATE_RULES}, not {rule!r}")
    dup = rows.duplicated(["llm", "benchmark"], keep=False)
    if not dup.any():
        return rows
    if rule == "error":

        def problem(first: pd.Series) -> str:
            same = rows[(rows["llm"] == first["llm"]) & (rows["benchmark"] == first["benchmark"])]
            where = "; ".join(
                f"{s} line {n}" for s, n in zip(same["source"], same["line"], strict=True)
            )
            return (
                f"{len(same)} scores for the same (version, benchmark) pair ({where}); "
                "pass duplicates='max' to keep the largest, as the paper does"
            )

        raise_first_bad_row(
            rows, dup, problem, column_of="benchmark", llm_of="llm", source_of="source"
        )
    order = rows.assign(_pos=range(len(rows)))
    best = order.sort_values(["value", "_pos"], ascending=[False, True], kind="stable")
    best = best.drop_duplicates(["llm", "benchmark"], keep="first").sort_values("_pos")
    n_pairs = int(rows.loc[dup].groupby(["llm", "benchmark"]).ngroups)
    log.info(
        "epoch: %d (version, benchmark) pairs had several scores (%d rows); kept the maximum",
        n_pairs,
        int(dup.sum()),
    )
    return best.drop(columns="_pos")


# ---------------------------------------------------------------------- reader
def read_epoch_benchmark_stitching(
    root: str | Path,
    population: str = "all",
    *,
    catalog: str | Path | pd.DataFrame = "epoch-benchmark-stitching",
    duplicates: str = "max",
    min_llms: int = MIN_LLMS_PER_BENCHMARK,
) -> BenchmarkStudy:
    """Read the Epoch AI benchmark-stitching release into the paper's final matrix.

    Parameters
    ----------
    root : str or pathlib.Path
        Directory laid out as the source repository (``<root>/data/*.csv``).
    population : {"all"}
        The release has no population split; ``"all"`` is the paper's final matrix
        (179 model versions x 38 benchmarks at the pinned commit).
    catalog : path, name or DataFrame
        Benchmark catalog; default the shipped ``data/catalogs/epoch-benchmark-stitching.csv``.
    duplicates : {"max", "error"}
        How to resolve several scores for one (version, benchmark) pair (see
        :func:`resolve_duplicates`).
    min_llms : int
        Fewest observed versions a benchmark may have.

    Returns
    -------
    BenchmarkStudy
        Scores normalised to 0-1 (higher = better as stored; the catalog's ``direction``
        orients them). LLM ids are model-version ids, ``family`` is the registry's
        ``Model``.
    """
    if population not in EPOCH_POPULATIONS:
        raise StudyValidationError(
            f"unknown population {population!r}; epoch-benchmark-stitching has "
            f"{list(EPOCH_POPULATIONS)}"
        )
    if duplicates not in EPOCH_DUPLICATE_RULES:
        raise ValueError(f"duplicates must be one of {EPOCH_DUPLICATE_RULES}, not {duplicates!r}")
    root = Path(root)
    table = as_catalog(catalog)
    rows = epoch_score_rows(root, table)
    versions = epoch_versions(root)
    in_runs = rows["source"] == str(root / EPOCH_RUNS)
    raise_first_bad_row(
        rows.assign(column=np.where(in_runs, RUNS_COLUMNS["version"], "Model version")),
        ~rows["llm"].isin(versions.index),
        f"model version is not in {EPOCH_VERSIONS} (column 'id'); every score must "
        "belong to a registered version",
        column_of="column",
        llm_of="llm",
        source_of="source",
    )
    rows = _paper_filters(rows, versions)
    rows = resolve_duplicates(rows, duplicates)
    keep = list(pd.unique(rows["llm"]))
    # The registry may spell two versions alike but for case; a study must not hold both.
    kept = versions.loc[keep].rename_axis("id").reset_index().sort_values("line")
    check_distinct_case(kept, "id", source=str(root / EPOCH_VERSIONS))
    llms = versions.loc[keep, ["display_name", "family"]].assign(population="all")
    excluded = [k for k in table.index if table.loc[k, "role"] == "excluded"]
    return BenchmarkStudy.from_frames(
        rows[["llm", "benchmark", "value", "line", "source"]],
        llms,
        table,
        name="epoch-benchmark-stitching",
        source=str(root / "data"),
        min_llms=min_llms,
        excluded=excluded,
    )


def _paper_filters(rows: pd.DataFrame, versions: pd.DataFrame) -> pd.DataFrame:
    """Rules 5 and 6: more than 3 distinct benchmarks; released on/after 2022-11-01."""
    counts = rows.groupby("llm")["benchmark"].nunique()
    enough = counts.index[counts > EPOCH_MIN_BENCHMARKS_EXCLUSIVE]
    rows = rows[rows["llm"].isin(enough)]
    date = versions["date"].reindex(rows["llm"]).to_numpy()
    recent = pd.Series(date).ge(pd.Timestamp(EPOCH_START_DATE)).to_numpy()
    return rows[recent]
