"""Reader for the Safetywashing release (Ren et al., 2024; ``centerforaisafety/safetywashing``).

Two wide matrices, ``data/benchmarks_base_models.csv`` (base LLMs) and
``data/benchmarks_chat_models.csv`` (chat LLMs): one row per LLM, the per-LLM columns
``model``, ``name``, ``type``, ``model_size``, ``FLOP`` and one column per benchmark score,
as stored in the release (see the shipped catalog ``data/catalogs/safetywashing.csv`` and
``data/README.md``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from safetywash.data.catalog import as_catalog
from safetywash.data.errors import StudyValidationError, raise_first_bad_row
from safetywash.data.names import check_declared, check_distinct_case
from safetywash.data.study import BenchmarkStudy
from safetywash.data.table import (
    check_unique_llms,
    llm_metadata,
    modelled_columns,
    read_table,
    wide_to_long,
)
from safetywash.data.validate import MIN_LLMS_PER_BENCHMARK

SAFETYWASHING_FILES = {
    "base": "data/benchmarks_base_models.csv",
    "chat": "data/benchmarks_chat_models.csv",
}
POPULATIONS = ("base", "chat", "all")
# Columns of the Safetywashing matrices that describe the LLM, not a benchmark.
SAFETYWASHING_LLM_COLUMNS = {
    "name": "display_name",
    "type": "population",
    "model_size": "params",
    "FLOP": "flop",
}

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
    table = as_catalog(catalog)
    pops = ("base", "chat") if population == "all" else (population,)
    longs, llm_tables, frames, excluded = [], [], [], []
    for pop in pops:
        path = root / SAFETYWASHING_FILES[pop]
        source = str(path)
        frame = _read_matrix(path, pop)
        frames.append(frame[["model", "line"]].assign(source=source))
        score_columns = [
            c
            for c in frame.columns
            if c not in ("model", "line") and c not in SAFETYWASHING_LLM_COLUMNS
        ]
        modelled, dropped = modelled_columns(score_columns, table, source)
        excluded += [c for c in dropped if c not in excluded]
        long = wide_to_long(frame, llm_column="model", benchmark_columns=modelled, source=source)
        # Each cell keeps its file: the study's checks name the one file that holds it.
        longs.append(long.assign(source=source))
        llm_tables.append(llm_metadata(frame, "model", SAFETYWASHING_LLM_COLUMNS, source))
    # An LLM in both matrices (in any spelling) would be two LLMs of one study.
    both = pd.concat(frames, ignore_index=True)
    check_distinct_case(both, "model", source=None, what="model", source_of="source")
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


def _read_matrix(path: Path, population: str) -> pd.DataFrame:
    """One matrix, its LLM names checked and every ``type`` equal to its population."""
    source = str(path)
    frame = read_table(
        path,
        required=["model", *SAFETYWASHING_LLM_COLUMNS],
        names=["model", "name", "type"],
    )
    check_unique_llms(frame, "model", source)
    known = POPULATIONS[:-1]
    check_declared(frame, "type", known, source=source, what="population", llm_of="model")
    raise_first_bad_row(
        frame,
        frame["type"] != population,
        lambda row: (
            f"population {row['type']!r} in the matrix of {population!r} LLMs "
            f"({SAFETYWASHING_FILES[population]}): each matrix holds one population"
        ),
        source=source,
        column="type",
        llm_of="model",
    )
    return frame
