"""The report's tables: separability beside the paper's baseline, and LLM capability.

:func:`report_table` puts every benchmark's separability next to the paper's baseline
(:func:`paper_baseline_of`) and flags disagreements (:func:`baseline_disagrees`);
:func:`separability_rows` and :func:`capability_rows` turn tables into rows of text;
:func:`share_blocks` is the table of every benchmark's capability / specific / noise shares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.analysis.baseline import (
    capability_benchmarks_for,
    fitted_baseline,
    fitted_capability_benchmarks,
    oriented_baseline,
)
from safetywash.analysis.intervals import CI_KIND, CI_PROB, SAMPLE_DIMS, interval_label
from safetywash.analysis.separability import (
    DEFAULT_TAU,
    format_shares,
    separability,
    separability_table,
)
from safetywash.inference.fitfile import benchmark_table, study_from_fit
from safetywash.report.render import Heading, Paragraph

#: Safety benchmarks shown against capability when none are chosen.
DEFAULT_N_BENCHMARKS = 4


def paper_baseline_of(dt: xr.DataTree) -> tuple[pd.Series | None, tuple[str, ...]]:
    """The paper's oriented capabilities correlation for the fitted study.

    Taken from the fit, which stores it computed on the whole input study (so the paper's
    12 capability benchmarks are all used even when the fit is at the aggregate level);
    for fits without it, recomputed from the fitted study
    (:func:`safetywash.inference.fitfile.study_from_fit`), which may lack some of the 12.

    Returns
    -------
    baseline : pandas.Series or None
        Oriented Spearman correlation by benchmark key (None when the baseline cannot be
        computed, e.g. with fewer than two capability benchmarks).
    capability_benchmarks : tuple of str
        The columns of the baseline's capability score.
    """
    stored = fitted_baseline(dt)
    if stored is not None:
        return stored, fitted_capability_benchmarks(dt)
    study = study_from_fit(dt)
    try:
        return oriented_baseline(study), tuple(capability_benchmarks_for(study))
    except ValueError:
        return None, ()


def baseline_disagrees(table: pd.DataFrame) -> pd.Series:
    """Whether the paper's baseline lies outside the Bayesian interval of ``rho``.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``rho_hdi_low``, ``rho_hdi_high`` and ``baseline_correlation``.

    Returns
    -------
    pandas.Series of bool
        False where the baseline is missing.
    """
    base = table["baseline_correlation"].astype(float)
    outside = (base < table["rho_hdi_low"]) | (base > table["rho_hdi_high"])
    return outside & base.notna()


def report_table(
    dt: xr.DataTree,
    *,
    tau: float = DEFAULT_TAU,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    baseline: pd.Series | None = None,
    group: str = "posterior",
) -> pd.DataFrame:
    """Separability of every benchmark beside the paper's baseline, grouped by area.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    tau, ci_prob, ci_kind : float, float, str
        Separability threshold and interval convention (see
        :func:`safetywash.analysis.separability.separability`).
    baseline : pandas.Series, optional
        Oriented baseline correlation by benchmark key (:func:`paper_baseline_of`).
    group : str
        Group holding the draws.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`safetywash.analysis.separability.separability_table` plus ``role``,
        ``loading_median`` and ``disagrees``; safety areas (alphabetical) first, capability
        benchmarks last, each area by descending ``rho_median``.
    """
    summary = separability(dt, tau=tau, ci_prob=ci_prob, ci_kind=ci_kind, group=group)
    table = separability_table(summary, baseline)
    extra = summary[["loading_median"]].reset_coords().to_dataframe()
    table = table.join(extra[["role", "loading_median"]], on="benchmark")
    table["disagrees"] = baseline_disagrees(table)
    table["_cap"] = table["role"] == "capability"
    table = table.sort_values(["_cap", "area", "rho_median"], ascending=[True, True, False])
    return table.drop(columns="_cap").reset_index(drop=True)


def default_benchmarks(
    dt: xr.DataTree, n: int = DEFAULT_N_BENCHMARKS, *, group: str = "posterior"
) -> list[str]:
    """A few safety benchmarks spanning the range of ``|rho|`` (highest to lowest)."""
    meta = benchmark_table(dt)
    keys = list(meta.index[meta["role"] == "safety"]) or list(meta.index)
    strength = np.abs(dt[group]["rho"].sel(benchmark=keys).median(SAMPLE_DIMS).values)
    ordered = [keys[i] for i in np.argsort(-strength, kind="stable")]
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(n, len(ordered))).round().astype(int))
    return [ordered[i] for i in picks]


def format_number(x: float | None, signed: bool = True) -> str:
    """A summary number to two decimals (signed by default); ``"n/a"`` when missing."""
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def separability_header(
    tau: float = DEFAULT_TAU,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    subspace: bool = False,
) -> list[str]:
    """Column names of :func:`separability_rows` (``subspace``: more than one capability
    dimension, R beside rho)."""
    label = interval_label(ci_prob, ci_kind)
    if not subspace:
        middle = [f"P(|ρ| < {tau:g})", "unexplained 1 − ρ²"]
    else:
        middle = ["R median", label, f"P(R < {tau:g})", f"P(|ρ| < {tau:g})", "unexplained 1 − R²"]
    return [
        "Benchmark",
        "ρ median",
        label,
        *middle,
        "shares cap/spec/noise",
        "paper baseline",
        f"baseline vs {ci_kind.upper()}",
    ]


def separability_rows(table: pd.DataFrame, subspace: bool = False) -> list[list[str]]:
    """Report rows of :func:`report_table`: name, rho, interval, (R, its interval,) P(sep.),
    (P(|rho| < tau),) unexplained, variance shares
    (:func:`safetywash.analysis.separability.format_shares`), paper, flags ("disagrees":
    the baseline is outside the interval; "general only": separable from the general
    factor but not from the capability subspace)."""
    rows = []
    for r in table.itertuples():
        middle = [format_number(r.p_separable, signed=False)]
        flags = ["disagrees"] if r.disagrees else []
        if subspace:
            middle = [
                format_number(r.subspace_r_median, signed=False),
                f"[{format_number(r.subspace_r_hdi_low, signed=False)}, "
                f"{format_number(r.subspace_r_hdi_high, signed=False)}]",
                *middle,
                format_number(r.p_separable_general, signed=False),
            ]
            flags += ["general only"] if r.general_only_separable else []
        rows.append(
            [
                str(r.display_name),
                format_number(r.rho_median),
                f"[{format_number(r.rho_hdi_low)}, {format_number(r.rho_hdi_high)}]",
                *middle,
                format_number(r.unexplained_median, signed=False),
                format_shares(
                    r.capability_share_median, r.specific_share_median, r.noise_share_median
                ),
                format_number(r.baseline_correlation),
                ", ".join(flags),
            ]
        )
    return rows


def capability_rows(summary: pd.DataFrame) -> list[list[str]]:
    """Rows of LLM capability: population, rank, LLM, median, interval (best first).

    ``summary`` is :func:`safetywash.report.figures.capability_summary` as a DataFrame.
    """
    rows = []
    for pop, part in summary.groupby("population", sort=True):
        part = part.sort_values("capability_median", ascending=False)
        for rank, r in enumerate(part.itertuples(), start=1):
            rows.append(
                [
                    str(pop),
                    str(rank),
                    str(r.display_name),
                    format_number(r.capability_median),
                    f"[{format_number(r.capability_hdi_low)}, "
                    f"{format_number(r.capability_hdi_high)}]",
                ]
            )
    return rows


def share_rows(table: pd.DataFrame) -> list[list[str]]:
    """Rows of every benchmark's shares: name, area, each share's median [interval], noise."""
    rows = []
    for r in table.itertuples():
        cells = [str(r.display_name), str(r.area)]
        for name in ("capability", "specific", "noise"):
            mid, low, high = (
                getattr(r, f"{name}_share_{s}") for s in ("median", "hdi_low", "hdi_high")
            )
            if not np.isfinite(mid):
                cells.append("n/a")
                continue
            cells.append(
                f"{format_number(mid, signed=False)} "
                f"[{format_number(low, signed=False)}, {format_number(high, signed=False)}]"
            )
        cells.append("known (n items)" if r.noise_known else "not separated")
        rows.append(cells)
    return rows


def share_blocks(table: pd.DataFrame, ci_prob: float = CI_PROB, ci_kind: str = CI_KIND) -> list:
    """The report's note on the variance shares shown in every area's table."""
    text = (
        "The column 'shares cap/spec/noise' splits each benchmark's variance on the model "
        "scale three ways (posterior medians; intervals in separability.csv): capability "
        "(ρ²), benchmark-specific (what it measures beyond capability: its own variance and "
        "any area factor's; the safety signal, if any) and measurement noise (sampling noise "
        "of a score over a finite set of items, known from the catalog's n_items; the three "
        "then sum to 1). 'n/a': noise not separated: give n_items (the number of scored "
        "items of a proportion score); the specific share there includes any noise. A "
        "benchmark whose unexplained share is mostly noise is separable only because it is "
        "small and noisy."
    )
    return [Heading("Variance shares: capability, benchmark-specific, noise", 3), Paragraph(text)]
