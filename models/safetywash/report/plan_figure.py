"""The figure of an evaluation plan: interval width and decisive verdicts by LLMs evaluated."""

from __future__ import annotations

import xarray as xr
from matplotlib.figure import Figure

from safetywash.analysis.intervals import interval_label
from safetywash.report.style import new_figure

#: Colours of the two designs of :func:`safetywash.analysis.plan.plan_evaluation`.
DESIGN_COLORS = {"chosen": "#1f77b4", "random": "#999999"}
DESIGN_LABELS = {"chosen": "spread over capability", "random": "random LLMs"}


def plot_plan(result: xr.Dataset, *, title: str | None = None) -> Figure:
    """Expected interval width (with +/- 2 standard errors) and P(decisive verdict) against
    the number of LLMs evaluated, one line per design.

    Parameters
    ----------
    result : xarray.Dataset
        From :func:`safetywash.analysis.plan.plan_evaluation`.
    title : str, optional
        Figure title.
    """
    fig = new_figure(9.0, 3.6)
    width_ax, decisive_ax = fig.subplots(1, 2)
    ns = result["n"].values
    for design in result["design"].values:
        r = result.sel(design=design)
        style = {"color": DESIGN_COLORS.get(str(design), "black"), "marker": "o"}
        label = DESIGN_LABELS.get(str(design), str(design))
        mean, se = r["expected_width"].values, r["width_se"].values
        width_ax.plot(ns, mean, label=label, **style)
        width_ax.fill_between(ns, mean - 2 * se, mean + 2 * se, color=style["color"], alpha=0.2)
        decisive_ax.plot(ns, r["p_decisive"].values, label=label, **style)
    label = interval_label(result.attrs["ci_prob"], result.attrs["ci_kind"])
    width_ax.set(xlabel="LLMs evaluated", ylabel=f"expected width of rho's {label}")
    lo, hi = result.attrs["decisive"]
    decisive_ax.set(
        xlabel="LLMs evaluated",
        ylabel=f"P(decisive): P(|rho|<{result.attrs['tau']:g}) < {lo:g} or > {hi:g}",
        ylim=(0, 1),
    )
    for ax in (width_ax, decisive_ax):
        ax.set_xticks(ns)
    width_ax.legend(frameon=False)
    fig.suptitle(title or f"Planning a new benchmark ({result.attrs['prior']})", fontsize=10)
    return fig
