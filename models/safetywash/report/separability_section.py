"""The report's separability section: the intro, one table per safety area (with R beside
rho when the fit has more than one capability dimension), the variance shares and the
forest plot of rho."""

from __future__ import annotations

import pandas as pd
import xarray as xr

from safetywash.analysis.baseline import describe_capability_basis
from safetywash.analysis.intervals import interval_label
from safetywash.analysis.separability import area_loadings
from safetywash.inference.fitfile import benchmark_table, fit_config
from safetywash.report.forest import plot_rho_forest
from safetywash.report.render import Heading, Paragraph, Table
from safetywash.report.style import area_label
from safetywash.report.tables import (
    format_number,
    separability_header,
    separability_rows,
    share_blocks,
)


def _baseline_basis(baseline, caps: tuple[str, ...], meta: pd.DataFrame) -> str:
    """Which capability benchmarks the recomputed baseline rests on, in words."""
    if baseline is None:
        return "capability benchmarks (not computable for this study)"
    return describe_capability_basis(caps, meta["display_name"].to_dict())


def _separability_intro(table: pd.DataFrame, basis: str, tau, ci_prob, ci_kind) -> list:
    safety = table[table["role"] == "safety"]
    n_base = int(safety["baseline_correlation"].notna().sum())
    return [
        Heading("Separability by safety area"),
        Paragraph(
            "ρ is a benchmark's correlation with latent capability on the standardised, "
            "oriented scale (higher = safer); P(separable) = P(|ρ| < "
            f"{tau:g} | data); unexplained = 1 − ρ², the share of variance capability does "
            "not explain (posterior median). Intervals are "
            f"{interval_label(ci_prob, ci_kind, long=True)}s. The paper baseline is the "
            "oriented Spearman correlation with the first principal component of "
            + basis
            + f"; 'disagrees' marks a baseline outside the {ci_kind.upper()}."
        ),
        Paragraph(
            f"{len(safety)} safety benchmarks: {int((safety['p_separable'] > 0.5).sum())} "
            f"more likely separable than not, {int((safety['p_separable'] < 0.05).sum())} "
            f"confidently entangled with capability (P(separable) < 0.05); the baseline "
            f"disagrees with the posterior for {int(safety['disagrees'].sum())} of {n_base}."
        ),
    ]


def _subspace_paragraph(table: pd.DataFrame, dims: int, tau: float) -> Paragraph:
    """What R is, with K capability dimensions, and which benchmarks it changes."""
    safety = table[table["role"] == "safety"]
    general_only = safety.loc[safety["general_only_separable"].astype(bool), "display_name"]
    named = ", ".join(map(str, general_only)) if len(general_only) else "none"
    return Paragraph(
        f"This fit has {dims} capability dimensions: a general factor (ρ, what the paper's "
        f"first principal component approximates) and {dims - 1} further capability "
        f"axis(es). R is a benchmark's multiple correlation with all of them, the share of "
        f"its variance any capability direction explains being R²; P(separable) = P(R < "
        f"{tau:g} | data), with P(|ρ| < {tau:g}) beside it. Separable from the general "
        f"factor but not from the capability subspace ('general only'): {named}."
    )


def _area_sections(
    table: pd.DataFrame, areas: xr.Dataset, header: list[str], subspace: bool
) -> list:
    blocks: list = []
    align = "l" + "r" * (len(header) - 2) + "l"
    for area, part in table.groupby("area", sort=False):
        capability = bool((part["role"] == "capability").all())
        label = "Capability benchmarks (reference)" if capability else area_label(area)
        blocks.append(Heading(label, 3, area=str(area)))
        facts = [f"{len(part)} benchmarks"]
        if areas.data_vars and str(area) in areas["area"].values:
            a = areas.sel(area=str(area))
            facts.append(
                f"area mean capability loading {format_number(float(a.mean_loading_median))} "
                f"[{format_number(float(a.mean_loading_hdi_low))}, "
                f"{format_number(float(a.mean_loading_hdi_high))}]"
            )
        facts.append(f"{int((part['p_separable'] > 0.5).sum())} with P(separable) > 0.5")
        blocks.append(Paragraph("; ".join(facts) + "."))
        rows = separability_rows(part, subspace)
        blocks.append(Table(header, rows, flag_column=len(header) - 1, align=align))
    return blocks


def separability_section(dt, table, baseline, caps, figures, tau, ci_prob, ci_kind) -> list:
    """The section's blocks; ``figures`` writes the forest plot (``.block(fig, name,
    caption)``)."""
    basis = _baseline_basis(baseline, caps, benchmark_table(dt))
    blocks = _separability_intro(table, basis, tau, ci_prob, ci_kind)
    dims = fit_config(dt).capability_dims
    if dims > 1:
        blocks.append(_subspace_paragraph(table, dims, tau))
    areas = area_loadings(dt, ci_prob=ci_prob, ci_kind=ci_kind)
    header = separability_header(tau, ci_prob, ci_kind, subspace=dims > 1)
    blocks += _area_sections(table, areas, header, dims > 1)
    blocks += share_blocks(table, ci_prob, ci_kind)
    forest = plot_rho_forest(dt, tau=tau, ci_prob=ci_prob, ci_kind=ci_kind, baseline=baseline)
    caption = (
        f"Capability correlation ρ of every safety benchmark by area (median, 50% and "
        f"{interval_label(ci_prob, ci_kind)}); grey band: separable region |ρ| < {tau:g}; "
        "crosses: paper baseline."
    )
    blocks.append(figures.block(forest, "rho_forest_by_area", caption))
    return blocks
