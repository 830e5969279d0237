"""Reader for the HELM Classic metric tables in ``socialfoundations/benchbench``.

The release (Zhang & Hardt, ICML 2024) has eight tab-separated tables under
``benchbench/data/helm/``: accuracy, bias, calibration, efficiency, fairness, robustness,
summarization and toxicity. Each has one row per model (the same 67 models in every table,
in a different order), a ``Mean win rate`` column and one column per ``Scenario - Metric``;
``-`` marks a missing cell.

Benchmark keys are ``"<table>: <column>"`` (e.g. ``"calibration: MMLU - ECE (10-bin)"``),
because ``Mean win rate`` occurs in every table. The shipped catalog
``data/catalogs/helm-benchbench.csv`` decides which columns are modelled; see the
``helm-benchbench`` section of ``data/README.md`` for the rules.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from safetywash.data.catalog import as_catalog
from safetywash.data.errors import StudyValidationError, raise_first_bad_row
from safetywash.data.study import BenchmarkStudy
from safetywash.data.table import check_unique_llms, modelled_columns, read_table, wide_to_long
from safetywash.data.validate import MIN_LLMS_PER_BENCHMARK

HELM_DIR = "benchbench/data/helm"
HELM_TABLES = (
    "accuracy",
    "bias",
    "calibration",
    "efficiency",
    "fairness",
    "robustness",
    "summarization",
    "toxicity",
)
#: Names the first (model) column has in the release (``accuracy.tsv`` uses the first).
HELM_LLM_COLUMNS = ("Model/adapter", "Model")
HELM_MISSING = ("-",)
HELM_POPULATIONS = ("all",)
_SIZE = re.compile(r"^(?P<family>.*?)\s*\((?P<number>[0-9.]+)(?P<unit>[MB])\)$")


def helm_key(table: str, column: str) -> str:
    """Catalog key of a HELM column: ``"<table>: <column>"``."""
    return f"{table}: {column}"


def helm_family_and_params(name: str) -> tuple[str, float]:
    """Family and parameter count of a HELM model display name.

    ``"Llama 2 (70B)"`` -> ``("Llama 2", 7e10)``; names without a size in parentheses
    (``"text-davinci-002"``) -> ``(name, nan)``.
    """
    match = _SIZE.match(name)
    if not match:
        return name, float("nan")
    scale = 1e9 if match["unit"] == "B" else 1e6
    return match["family"], float(match["number"]) * scale


def read_helm_benchbench(
    root: str | Path,
    population: str = "all",
    *,
    catalog: str | Path | pd.DataFrame = "helm-benchbench",
    min_llms: int = MIN_LLMS_PER_BENCHMARK,
) -> BenchmarkStudy:
    """Read the HELM Classic tables of ``socialfoundations/benchbench`` into a study.

    Parameters
    ----------
    root : str or pathlib.Path
        Directory laid out as the source repository
        (``<root>/benchbench/data/helm/<table>.tsv``).
    population : {"all"}
        HELM does not split its models into populations; ``"all"`` is the only choice.
    catalog : path, name or DataFrame
        Benchmark catalog; default the shipped ``data/catalogs/helm-benchbench.csv``.
    min_llms : int
        Fewest observed LLMs a benchmark may have.

    Returns
    -------
    BenchmarkStudy
        Raw values as stored (``-`` cells left out); columns catalogued as ``excluded``
        are listed in ``study.excluded``.

    Raises
    ------
    StudyValidationError
        On bad input, naming the file, line and column: a missing table, a header without
        the model column, a duplicate or unknown model, a column without a catalog entry,
        a cell that is neither a number nor ``-``, a value outside the catalog bounds.
    """
    if population not in HELM_POPULATIONS:
        raise StudyValidationError(
            f"unknown population {population!r}; helm-benchbench has {list(HELM_POPULATIONS)}"
        )
    root = Path(root)
    table = as_catalog(catalog)
    longs, excluded = [], []
    models: dict[str, int] = {}  # model -> its line in the first table
    for name in HELM_TABLES:
        path = root / HELM_DIR / f"{name}.tsv"
        frame, llm_column = _read_helm_table(path)
        if models:
            _check_same_models(frame, llm_column, str(path), models)
        else:
            models = dict(zip(frame[llm_column], frame["line"].astype(int), strict=True))
        long, dropped = _helm_cells(frame, llm_column, name, table, str(path))
        excluded += dropped
        if long is not None:
            longs.append(long)
    return BenchmarkStudy.from_frames(
        pd.concat(longs, ignore_index=True),
        _llm_table(list(models)),
        table,
        name="helm-benchbench",
        source=str(root / HELM_DIR),
        min_llms=min_llms,
        excluded=excluded,
    )


def _read_helm_table(path: Path) -> tuple[pd.DataFrame, str]:
    """One HELM table and the name of its model column; models checked unique."""
    frame = read_table(path, delimiter="\t", names=HELM_LLM_COLUMNS)
    llm_column = frame.columns[0]
    if llm_column not in HELM_LLM_COLUMNS:
        raise StudyValidationError(
            f"the first column should hold the model name (one of "
            f"{list(HELM_LLM_COLUMNS)}), not {llm_column!r}",
            source=str(path),
            line=1,
            column=llm_column,
        )
    check_unique_llms(frame, llm_column, str(path))
    return frame, llm_column


def _helm_cells(
    frame: pd.DataFrame, llm_column: str, name: str, catalog: pd.DataFrame, source: str
) -> tuple[pd.DataFrame | None, list[str]]:
    """The observed cells of one table's modelled columns (or None), and its excluded keys."""
    columns = [c for c in frame.columns if c not in (llm_column, "line")]
    keyed = frame.rename(columns={c: helm_key(name, c) for c in columns})
    modelled, excluded = modelled_columns([helm_key(name, c) for c in columns], catalog, source)
    if not modelled:
        return None, excluded
    long = wide_to_long(
        keyed,
        llm_column=llm_column,
        benchmark_columns=modelled,
        na_values=HELM_MISSING,
        source=source,
    )
    # Each cell keeps its file: the study's checks name the one table that holds it.
    return long.assign(source=source), excluded


def _check_same_models(
    frame: pd.DataFrame, llm_column: str, source: str, models: dict[str, int]
) -> None:
    """Every table must list the same models as the first (a typo would add a fake LLM)."""
    first = f"{HELM_TABLES[0]}.tsv"
    raise_first_bad_row(
        frame,
        ~frame[llm_column].isin(set(models)),
        f"model is not in {first} (every HELM table lists the same models)",
        source=source,
        column=llm_column,
        llm_of=llm_column,
    )
    present = set(frame[llm_column])
    absent = [m for m in models if m not in present]
    if absent:
        raise StudyValidationError(
            f"model listed in {first} (line {models[absent[0]]}) is missing from this table; "
            f"all missing: {absent[:5]}",
            source=source,
            column=llm_column,
            llm=absent[0],
        )


def _llm_table(names: list[str]) -> pd.DataFrame:
    family, params = zip(*(helm_family_and_params(n) for n in names), strict=True)
    return pd.DataFrame(
        {
            "display_name": names,
            "population": "all",
            "family": list(family),
            "params": np.asarray(params, dtype=float),
        },
        index=pd.Index(names, name="llm"),
    )
