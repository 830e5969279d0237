"""The Safetywashing paper's point-estimate method (Ren et al., 2024), as a baseline.

Per population: z-score every column; take the first eigenvector of the Spearman
correlation matrix of the capability benchmarks as weights of a capability score; report
each column's Spearman correlation with that score ("capabilities correlation") and with
training compute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from safetywash.data.errors import StudyValidationError
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import benchmark_table

#: The 12 capability benchmarks of the paper's capability score.
PAPER_CAPABILITY_BENCHMARKS = (
    "logiqa",
    "piqa",
    "hellaswag",
    "winogrande",
    "superglue_copa",
    "medqa_4options",
    "arc_challenge",
    "mmlu",
    "minerva_math",
    "lambada_openai",
    "gsm8k",
    "bbh",
)
MIN_PAIRS = 3


@dataclass(frozen=True)
class BaselineResult:
    """Output of :func:`paper_baseline`.

    Attributes
    ----------
    population : str
        Population label (``"base"``, ``"chat"``, or a joined label).
    capability_benchmarks : tuple of str
        Columns of the capability score.
    weights : pandas.Series
        First eigenvector of their Spearman matrix (largest-magnitude entry positive).
    eigenvalues : numpy.ndarray
        All eigenvalues, descending.
    capability_score : pandas.Series
        Capability score of every LLM.
    table : pandas.DataFrame
        One row per benchmark: display_name, role, area, direction,
        capabilities_correlation (raw column as stored), oriented_correlation (after the
        catalog's direction), flop_correlation, n_llms, n_flop.
    """

    population: str
    capability_benchmarks: tuple[str, ...]
    weights: pd.Series
    eigenvalues: np.ndarray
    capability_score: pd.Series
    table: pd.DataFrame

    @property
    def variance_explained(self) -> float:
        """First eigenvalue over the sum of eigenvalues."""
        return float(self.eigenvalues[0] / self.eigenvalues.sum())

    def to_json_dict(self) -> dict:
        """``{"population", "variance_explained", "correlations": {key: r}}``."""
        corr = self.table["capabilities_correlation"].dropna()
        return {
            "population": self.population,
            "variance_explained": self.variance_explained,
            "correlations": {str(k): float(v) for k, v in corr.items()},
        }

    def to_dataset(self) -> xr.Dataset:
        """The result as an xarray Dataset with ``benchmark`` and ``llm`` dims."""
        table = self.table.rename_axis("benchmark")
        ds = xr.Dataset.from_dataframe(table)
        ds["capability_score"] = xr.DataArray(
            self.capability_score.to_numpy(),
            dims="llm",
            coords={"llm": self.capability_score.index.to_numpy(dtype=str)},
        )
        ds.attrs.update(population=self.population, variance_explained=self.variance_explained)
        return ds


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Spearman correlation over the pairs where both are finite, and the pair count."""
    both = np.isfinite(x) & np.isfinite(y)
    n = int(both.sum())
    if n < MIN_PAIRS or np.ptp(x[both]) == 0 or np.ptp(y[both]) == 0:
        return float("nan"), n
    return float(stats.spearmanr(x[both], y[both]).statistic), n


def standardize(wide: pd.DataFrame) -> pd.DataFrame:
    """Z-score each column with its population SD (``ddof=0``) over the LLMs that have it."""
    return (wide - wide.mean()) / wide.std(ddof=0)


def capability_benchmarks_for(study: BenchmarkStudy) -> tuple[str, ...]:
    """The paper's 12 capability benchmarks if all present, else every capability one."""
    present = set(study.benchmarks.index)
    if set(PAPER_CAPABILITY_BENCHMARKS) <= present:
        return PAPER_CAPABILITY_BENCHMARKS
    chosen = tuple(study.benchmarks.index[study.benchmarks["role"] == "capability"])
    if len(chosen) < 2:
        raise StudyValidationError(
            f"the baseline needs at least 2 capability benchmarks; the catalog marks {len(chosen)}",
            source=study.name,
        )
    return chosen


def paper_baseline(
    study: BenchmarkStudy,
    capability_benchmarks: Sequence[str] | None = None,
    *,
    population: str | None = None,
) -> BaselineResult:
    """Capabilities correlations by the paper's PCA + Spearman method.

    Parameters
    ----------
    study : BenchmarkStudy
        One population (select it first with :meth:`BenchmarkStudy.select_population`):
        the paper standardises and correlates within a population.
    capability_benchmarks : sequence of str, optional
        Columns of the capability score; default :func:`capability_benchmarks_for`.
    population : str, optional
        Label for the result; default the study's single population.

    Returns
    -------
    BaselineResult

    Notes
    -----
    A capability cell that is missing enters the score as the column mean (z = 0), the
    paper's kind of ad-hoc handling; the Bayesian model needs no such step.
    """
    pops = sorted(set(study.llms["population"]))
    if population is None:
        population = pops[0] if len(pops) == 1 else "+".join(pops)
    cap = tuple(capability_benchmarks or capability_benchmarks_for(study))
    missing = [c for c in cap if c not in study.benchmarks.index]
    if missing:
        raise StudyValidationError(
            f"capability benchmark(s) {missing} are not in the study", source=study.name
        )
    wide = study.to_wide()
    z = standardize(wide)
    cap_corr = z[list(cap)].corr(method="spearman").to_numpy()
    eigenvalues, eigenvectors = np.linalg.eigh(cap_corr)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    first = eigenvectors[:, 0]
    first = first * np.sign(first[np.argmax(np.abs(first))])
    weights = pd.Series(first, index=list(cap), name="weight")
    score = pd.Series(
        z[list(cap)].fillna(0.0).to_numpy() @ first, index=wide.index, name="capability_score"
    )

    flop = np.log10(study.llms["flop"].reindex(wide.index).to_numpy(dtype=float))
    sign = study.direction_sign
    rows = []
    for key in wide.columns:
        column = wide[key].to_numpy(dtype=float)
        r, n = spearman(column, score.to_numpy())
        r_flop, n_flop = spearman(column, flop)
        rows.append(
            {
                "benchmark": key,
                "display_name": study.benchmarks.loc[key, "display_name"],
                "role": study.benchmarks.loc[key, "role"],
                "area": study.benchmarks.loc[key, "area"],
                "direction": study.benchmarks.loc[key, "direction"],
                "capabilities_correlation": r,
                "oriented_correlation": r * sign[key],
                "flop_correlation": r_flop,
                "n_llms": n,
                "n_flop": n_flop,
            }
        )
    table = pd.DataFrame(rows).set_index("benchmark")
    return BaselineResult(
        population=population,
        capability_benchmarks=cap,
        weights=weights,
        eigenvalues=eigenvalues,
        capability_score=score,
        table=table,
    )


TABLE_COLUMNS = (
    "display_name",
    "area",
    "capabilities_correlation",
    "oriented_correlation",
    "flop_correlation",
    "n_llms",
)


def baseline_table(result: BaselineResult) -> pd.DataFrame:
    """The CSV table: one row per benchmark, grouped by area (capability first)."""
    table = result.table.reset_index()
    order = {area: i for i, area in enumerate(_area_order(table["area"]))}
    table = table.assign(_area=table["area"].map(order)).sort_values(
        ["_area", "capabilities_correlation"], ascending=[True, False], kind="stable"
    )
    return table[["benchmark", *TABLE_COLUMNS]].reset_index(drop=True)


def _area_order(areas: pd.Series) -> list[str]:
    present = list(pd.unique(areas))
    return sorted(present, key=lambda a: (a != "capability", a))


def format_baseline(result: BaselineResult) -> str:
    """A readable text table of the baseline, grouped by area."""
    table = baseline_table(result)
    lines = [
        f"Safetywashing baseline (PCA + Spearman), population {result.population}: "
        f"{len(result.capability_score)} LLMs, capability score from "
        f"{len(result.capability_benchmarks)} benchmarks, variance explained "
        f"{result.variance_explained:.1%}",
        "",
    ]
    width = min(max(len(str(n)) for n in table["display_name"]), 48) + 2
    header = f"{'benchmark':<{width}}{'cap. corr':>10}{'oriented':>10}{'FLOP corr':>10}{'n':>5}"
    for area, group in table.groupby("area", sort=False):
        lines += [f"== {area} ==", header]
        for row in group.itertuples():
            lines.append(
                f"{row.display_name[: width - 2]:<{width}}{_fmt(row.capabilities_correlation):>10}"
                f"{_fmt(row.oriented_correlation):>10}{_fmt(row.flop_correlation):>10}"
                f"{row.n_llms:>5}"
            )
        lines.append("")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:+.3f}"


def oriented_baseline(study: BenchmarkStudy) -> pd.Series:
    """The paper's capabilities correlation per benchmark, oriented by the catalog.

    Computed per population on the whole study (every level, so the paper's 12 capability
    benchmarks are all there) and, for a joint study, averaged over populations (the paper
    never pools them). Raises ``StudyValidationError`` when the study has too few
    capability benchmarks for a capability score.
    """
    pops = sorted(set(study.llms["population"]))
    parts = []
    for pop in pops:
        sub = study.select_population(pop) if len(pops) > 1 else study
        parts.append(paper_baseline(sub).table["oriented_correlation"])
    return pd.concat(parts, axis=1).mean(axis=1).rename("baseline_correlation")


BASELINE_VARIABLE = "paper_baseline_correlation"
BASELINE_DESCRIPTION = (
    "the paper's capabilities correlation (Spearman with the first principal component), "
    "oriented by the catalog direction, from the whole input study; mean over populations "
    "for a joint study"
)


def store_paper_baseline(dt: xr.DataTree, study: BenchmarkStudy) -> xr.DataTree:
    """A copy of a fit with the paper's oriented baseline in ``constant_data``.

    The baseline (:func:`oriented_baseline`) is computed from the whole input study (every
    level, so the paper's 12 capability benchmarks are there even when the fit models
    aggregates only) and stored as ``constant_data.paper_baseline_correlation`` over the
    fitted benchmarks (NaN for a benchmark the study gives no value, or everywhere when the
    study has too few capability benchmarks for a capability score); its attrs record a
    description and the ``capability_benchmarks`` (JSON list) of the capability score.
    Read it back with :func:`fitted_baseline` and :func:`fitted_capability_benchmarks`.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit of ``study``.
    study : BenchmarkStudy
        The study the fit was made from (checked against the fit's ``study_sha256``).

    Returns
    -------
    xarray.DataTree
    """
    if dt.attrs.get("study_sha256") != study.sha256():
        raise ValueError(f"the fit was not made from study {study.name!r} (sha256 differs)")
    keys = benchmark_table(dt).index
    try:
        values = oriented_baseline(study).reindex(keys).to_numpy(dtype=float)
        used = capability_benchmarks_for(study)
    except StudyValidationError:  # too few capability benchmarks for a capability score
        values, used = np.full(len(keys), np.nan), ()
    out = dt.copy()
    const = out["constant_data"].to_dataset()
    const[BASELINE_VARIABLE] = xr.DataArray(
        values,
        dims="benchmark",
        attrs={
            "description": BASELINE_DESCRIPTION,
            "capability_benchmarks": json.dumps(list(used)),
        },
    )
    out["constant_data"] = xr.DataTree(const)
    return out


def fitted_baseline(dt: xr.DataTree) -> pd.Series | None:
    """The oriented paper baseline stored in a fit's ``constant_data`` (None if absent)."""
    const = dt["constant_data"]
    if BASELINE_VARIABLE not in const.data_vars:
        return None
    values = const[BASELINE_VARIABLE].to_series()
    return None if values.isna().all() else values.rename("baseline_correlation")


def describe_capability_basis(caps: Sequence[str], names: Mapping[str, str] | None = None) -> str:
    """The capability benchmarks a baseline's capability score rests on, in words.

    Parameters
    ----------
    caps : sequence of str
        The keys used (:func:`fitted_capability_benchmarks`).
    names : mapping of str to str, optional
        Display name of each key.

    Returns
    -------
    str
        ``"the paper's 12 capability benchmarks"`` for the paper's set; otherwise the study's
        own benchmarks by name (the first 12), and how many of the paper's 12 the study has
        under the paper's keys, without calling the others missing (a user's study names
        its benchmarks its own way).
    """
    if tuple(caps) == PAPER_CAPABILITY_BENCHMARKS:
        return "the paper's 12 capability benchmarks"
    names = dict(names or {})
    shown = [names.get(k, k) for k in caps[:12]]
    listed = ", ".join(shown) + (f" and {len(caps) - 12} more" if len(caps) > 12 else "")
    shared = sum(k in set(caps) for k in PAPER_CAPABILITY_BENCHMARKS)
    paper = (
        f"{shared} of the paper's 12 are among them under the paper's names"
        if shared
        else "the paper's own 12 are not used"
    )
    return (
        f"this study's {len(caps)} capability benchmark{'s' if len(caps) != 1 else ''} "
        f"({listed}; {paper}), so it is this study's baseline, not the paper's numbers"
    )


def fitted_capability_benchmarks(dt: xr.DataTree) -> tuple[str, ...]:
    """The capability benchmarks of the stored baseline's capability score (see
    :func:`store_paper_baseline`; empty when the fit stores no baseline)."""
    const = dt["constant_data"]
    if BASELINE_VARIABLE not in const.data_vars:
        return ()
    return tuple(json.loads(const[BASELINE_VARIABLE].attrs["capability_benchmarks"]))
