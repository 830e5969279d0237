"""Reader for the frozen Hugging Face Open LLM Leaderboard v1 (via ``IBM/benchbench``).

One file, ``src/bat/assets/benchmarks_old/hf_open_llm_v1_240829_frozen.csv``: one row per
submission (1804), columns ``model`` (HF repo id), ``hf_open_llm_v1`` (the average) and the
six benchmarks ``HFV1_ARC``, ``HFV1_HellaSwag``, ``HFV1_MMLU``, ``HFV1_TruthfulQA``,
``HFV1_Winogrande``, ``HFV1_GSM8K`` in percent. Two rules make it a study (see the
``open-llm-leaderboard-v1`` section of ``data/README.md``):

* **Duplicated names** (48 names on 97 rows: re-submissions the file does not tell apart):
  the row with the highest leaderboard average ``hf_open_llm_v1`` is kept whole (ties: the
  earlier line; the file is sorted by the average, so this is the first row of the name).
  Names are compared ignoring case, as Hugging Face repository ids are (one name occurs in
  two spellings). ``duplicates="error"`` refuses instead, naming the lines.
* **GSM8K zeros**: ``HFV1_GSM8K == 0`` is read as a failed run (missing) when the same row's
  ``HFV1_MMLU`` is at least 30, i.e. 5 points above 4-way chance: among the 1416 rows with
  MMLU >= 30 only 16 are 0, while their non-zero GSM8K scores have median 40 and 5% quantile
  3.6 (47 of 1319 problems), so exactly 0 of 1319 is a broken generation, not a
  measurement. Near-chance models (MMLU < 30) keep their zeros: 136 of their 388 rows are 0
  and the non-zero scores are tiny (median 0.95), so 0 is a genuine floor score.
  ``gsm8k_failed_mmlu=None`` keeps every zero.

``helm_classic_240829.csv`` in the same folder has misaligned columns and is never read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from safetywash.data.catalog import as_catalog
from safetywash.data.errors import StudyValidationError, raise_first_bad_row
from safetywash.data.names import check_distinct_case
from safetywash.data.study import BenchmarkStudy
from safetywash.data.table import check_unique, modelled_columns, read_table, wide_to_long
from safetywash.data.validate import MIN_LLMS_PER_BENCHMARK, score_values

OPENLLM_FILE = "src/bat/assets/benchmarks_old/hf_open_llm_v1_240829_frozen.csv"
OPENLLM_LLM_COLUMN = "model"
OPENLLM_AVERAGE = "hf_open_llm_v1"
OPENLLM_POPULATIONS = ("all",)
OPENLLM_DUPLICATE_RULES = ("best", "error")
#: A GSM8K score of exactly 0 is a failed run when MMLU (percent) is at least this.
GSM8K_FAILED_MMLU = 30.0


def keep_best_submission(frame: pd.DataFrame, rule: str = "best", *, source: str) -> pd.DataFrame:
    """One row per model name.

    Parameters
    ----------
    frame : pandas.DataFrame
        The file as from :func:`~safetywash.data.table.read_table`, with the average column
        already checked to be numeric.
    rule : {"best", "error"}
        ``"best"`` keeps, for each duplicated name, the row with the highest
        ``hf_open_llm_v1`` (ties: the earlier line); names that differ only in case are one
        name (Hugging Face repository ids ignore case), kept in the spelling of the kept
        row. ``"error"`` raises on the first duplicated name, naming its lines.
    source : str
        File named in errors.

    Returns
    -------
    pandas.DataFrame
        The kept rows in file order.
    """
    if rule not in OPENLLM_DUPLICATE_RULES:
        raise ValueError(f"duplicates must be one of {OPENLLM_DUPLICATE_RULES}, not {rule!r}")
    key = frame[OPENLLM_LLM_COLUMN].str.casefold()
    if not key.duplicated().any():
        return frame
    if rule == "error":
        check_unique(
            frame,
            OPENLLM_LLM_COLUMN,
            source=source,
            problem=lambda lines: (
                f"model appears in more than one row (lines {lines}); pass duplicates='best' "
                f"to keep the row with the highest {OPENLLM_AVERAGE}"
            ),
        )
        check_distinct_case(
            frame,
            OPENLLM_LLM_COLUMN,
            source=source,
            what="model name",
            advice=f"pass duplicates='best' to keep the row with the highest {OPENLLM_AVERAGE}",
        )
    average = pd.to_numeric(frame[OPENLLM_AVERAGE]).to_numpy(dtype=float)
    order = np.lexsort((frame["line"].to_numpy(), -average))
    best = frame.assign(_key=key).iloc[order].drop_duplicates("_key", keep="first")
    return best.drop(columns="_key").sort_values("line")


def failed_gsm8k(long: pd.DataFrame, threshold: float | None = GSM8K_FAILED_MMLU) -> np.ndarray:
    """Mask of the GSM8K cells read as failed runs (0 with MMLU >= ``threshold``)."""
    is_gsm = (long["benchmark"] == "HFV1_GSM8K").to_numpy()
    if threshold is None:
        return np.zeros(len(long), dtype=bool)
    mmlu = long.loc[long["benchmark"] == "HFV1_MMLU"].set_index("llm")["value"]
    row_mmlu = pd.to_numeric(mmlu, errors="coerce").reindex(long["llm"]).to_numpy(dtype=float)
    value = pd.to_numeric(long["value"], errors="coerce").to_numpy(dtype=float)
    return is_gsm & (value == 0.0) & (row_mmlu >= threshold)


def read_open_llm_leaderboard_v1(
    root: str | Path,
    population: str = "all",
    *,
    catalog: str | Path | pd.DataFrame = "open-llm-leaderboard-v1",
    duplicates: str = "best",
    gsm8k_failed_mmlu: float | None = GSM8K_FAILED_MMLU,
    min_llms: int = MIN_LLMS_PER_BENCHMARK,
) -> BenchmarkStudy:
    """Read the frozen Open LLM Leaderboard v1 into a study.

    Parameters
    ----------
    root : str or pathlib.Path
        Directory laid out as ``IBM/benchbench`` (``<root>/src/bat/assets/...``).
    population : {"all"}
        The leaderboard does not label base and chat models; ``"all"`` is the only choice.
    catalog : path, name or DataFrame
        Benchmark catalog; default the shipped ``data/catalogs/open-llm-leaderboard-v1.csv``.
    duplicates : {"best", "error"}
        Rule for model names on several rows (see :func:`keep_best_submission`).
    gsm8k_failed_mmlu : float or None
        GSM8K zeros of rows with MMLU at least this are left out as failed runs; ``None``
        keeps every zero.
    min_llms : int
        Fewest observed LLMs a benchmark may have.

    Returns
    -------
    BenchmarkStudy
        1755 LLMs x 6 benchmarks at the pinned commit, percent scores as stored.
    """
    if population not in OPENLLM_POPULATIONS:
        raise StudyValidationError(
            f"unknown population {population!r}; open-llm-leaderboard-v1 has "
            f"{list(OPENLLM_POPULATIONS)}"
        )
    if duplicates not in OPENLLM_DUPLICATE_RULES:
        raise ValueError(f"duplicates must be one of {OPENLLM_DUPLICATE_RULES}, not {duplicates!r}")
    path = Path(root) / OPENLLM_FILE
    source = str(path)
    table = as_catalog(catalog)
    frame, modelled, excluded = _read_checked(path, table)
    kept = keep_best_submission(frame, duplicates, source=source)
    long = wide_to_long(
        kept, llm_column=OPENLLM_LLM_COLUMN, benchmark_columns=modelled, source=source
    )
    long = long.loc[~failed_gsm8k(long, gsm8k_failed_mmlu)].reset_index(drop=True)
    names = kept[OPENLLM_LLM_COLUMN].tolist()
    llms = pd.DataFrame(
        {"display_name": names, "population": "all", "family": ""},
        index=pd.Index(names, name="llm"),
    )
    return BenchmarkStudy.from_frames(
        long.assign(source=source),
        llms,
        table,
        name="open-llm-leaderboard-v1",
        source=source,
        min_llms=min_llms,
        excluded=excluded,
    )


def _read_checked(path: Path, catalog: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The file, its modelled and its excluded columns; every name, column and score checked.

    Every score column is checked, including the average that ranks duplicate rows and the
    rows that the duplicate rule then drops.
    """
    source = str(path)
    frame = read_table(
        path,
        required=[OPENLLM_LLM_COLUMN, OPENLLM_AVERAGE, "HFV1_MMLU", "HFV1_GSM8K"],
        names=[OPENLLM_LLM_COLUMN],
    )
    raise_first_bad_row(
        frame,
        frame[OPENLLM_LLM_COLUMN] == "",
        "empty model name",
        source=source,
        column=OPENLLM_LLM_COLUMN,
    )
    columns = [c for c in frame.columns if c not in (OPENLLM_LLM_COLUMN, "line")]
    modelled, excluded = modelled_columns(columns, catalog, source)
    everything = wide_to_long(
        frame, llm_column=OPENLLM_LLM_COLUMN, benchmark_columns=columns, source=source
    )
    score_values(everything, source=source)
    raise_first_bad_row(
        frame,
        frame[OPENLLM_AVERAGE] == "",
        "empty leaderboard average (it ranks duplicate submissions)",
        source=source,
        column=OPENLLM_AVERAGE,
        llm_of=OPENLLM_LLM_COLUMN,
    )
    return frame, modelled, excluded
