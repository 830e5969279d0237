"""The forest plot of every safety benchmark's capability correlation, grouped by area."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from safetywash.analysis.intervals import CI_KIND, CI_PROB, SAMPLE_DIMS, interval_label
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.inference.fitfile import benchmark_table
from safetywash.report.style import area_color, area_legend_handles, shorten, study_name

#: Figure height in inches: base plus one row per benchmark, at least the minimum (the
#: margins above and below the forest are fixed in inches).
FOREST_BASE_HEIGHT = 1.6
FOREST_ROW_INCHES = 0.24
FOREST_MIN_HEIGHT = 3.0
FOREST_MARGIN_INCHES = (0.75, 1.45)  # top, bottom
#: Smallest gap between the forest's x axis and the legend below it.
LEGEND_DROP_INCHES = 0.6
SEPARABLE_COLOR = "#e8e8e8"


def _forest_rows(
    dt: xr.DataTree, include_capability: bool, group: str
) -> tuple[pd.DataFrame, xr.DataArray]:
    """Benchmarks shown (safety, by area then median ``rho``) and their draws, by label."""
    meta = benchmark_table(dt)
    keep = meta["role"] == "safety"
    if include_capability or not keep.any():
        keep |= meta["role"] == "capability"
    meta = meta[keep]
    rho = dt[group]["rho"].sel(benchmark=list(meta.index))
    meta = meta.assign(
        _median=rho.median(SAMPLE_DIMS).values, _cap=(meta["role"] == "capability").values
    )
    meta = meta.sort_values(["_cap", "area", "_median"], ascending=[True, True, False])
    labels = _unique_labels([shorten(n) for n in meta["display_name"]])
    return meta, rho.sel(benchmark=list(meta.index)).assign_coords(benchmark=labels)


def _unique_labels(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def _forest_y(pc, labels: list[str]) -> list[float]:
    """y position of every row of an ArviZ forest plot."""
    y = pc.get_aes_as_dataset("y")
    if "rho" in y.data_vars and "benchmark" in y["rho"].dims:
        da = y["rho"]
        if "column" in da.dims:
            da = da.isel(column=0)
        return [float(da.sel(benchmark=label)) for label in labels]
    return [float(len(labels) - 1 - i) for i in range(len(labels))]  # pragma: no cover


def _layout(pc) -> float:
    """Margins in inches whatever the number of rows; returns the forest's height (inches)."""
    fig = pc.viz["figure"].item()
    label_ax = pc.viz["plot"].sel(column="labels").item()
    label_ax.set_xlabel("")
    label_ax.set_xticks([])
    for spine in label_ax.spines.values():
        spine.set_visible(False)
    height = float(fig.get_size_inches()[1])
    top, bottom = FOREST_MARGIN_INCHES
    fig.subplots_adjust(
        left=0.01, right=0.98, top=1 - top / height, bottom=bottom / height, wspace=0.02
    )
    return height - top - bottom


def _mark_regions(pc, tau: float, areas: list[str], y_of: list[float]) -> None:
    """The separable band, zero, and lines between areas."""
    forest = pc.viz["plot"].sel(column="forest").item()
    label_ax = pc.viz["plot"].sel(column="labels").item()
    forest.axvspan(-tau, tau, color=SEPARABLE_COLOR, zorder=0)
    for x in (-tau, tau):
        forest.axvline(x, color="#555555", linestyle="--", linewidth=0.9, zorder=1)
    forest.axvline(0, color="#bbbbbb", linewidth=0.6, zorder=0)
    for i in range(1, len(areas)):
        if areas[i] != areas[i - 1]:
            mid = (y_of[i] + y_of[i - 1]) / 2
            forest.axhline(mid, color="#cccccc", linewidth=0.6, zorder=0)
            label_ax.axhline(mid, color="#cccccc", linewidth=0.6, zorder=0)


def _legend(forest, meta, baseline, y_of, tau: float, axes_height: float) -> None:
    """Area colours, the baseline's crosses (drawn here) and the separable band."""
    handles = area_legend_handles(list(dict.fromkeys(meta["area"])))
    if baseline is not None:
        values = baseline.reindex(meta.index).to_numpy(dtype=float)
        finite = np.isfinite(values)
        forest.scatter(
            values[finite],
            np.asarray(y_of)[finite],
            marker="x",
            color="black",
            s=22,
            linewidths=1.1,
            zorder=5,
        )
        handles.append(
            Line2D([], [], marker="x", color="black", linestyle="", label="paper baseline")
        )
    handles.append(Patch(color=SEPARABLE_COLOR, label=f"separable: |ρ| < {tau:g}"))
    forest.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -max(0.06, LEGEND_DROP_INCHES / axes_height)),
        ncol=min(4, len(handles)),
        fontsize=8,
        frameon=False,
    )


def plot_rho_forest(
    dt: xr.DataTree,
    *,
    tau: float = DEFAULT_TAU,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    baseline: pd.Series | None = None,
    include_capability: bool = False,
    group: str = "posterior",
):
    """Forest plot of every safety benchmark's capability correlation, grouped by area.

    Drawn with :func:`arviz.plot_forest` (median, 50% and ``ci_prob`` intervals of kind
    ``ci_kind``), one colour per area, the separable region ``|rho| < tau`` shaded and the
    paper baseline marked.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit with ``rho`` in ``group``.
    tau : float
        Separability threshold, marked at ``-tau`` and ``+tau``.
    ci_prob, ci_kind : float, str
        Probability and kind of the outer interval.
    baseline : pandas.Series, optional
        The paper's oriented correlation by benchmark key, drawn as crosses.
    include_capability : bool
        Also show the capability benchmarks (as the last group).
    group : str
        Group holding the draws.

    Returns
    -------
    arviz_plots.PlotCollection
        Its figure is ``pc.viz["figure"].item()``.
    """
    meta, rho = _forest_rows(dt, include_capability, group)
    labels = list(rho["benchmark"].values)
    n = len(labels)
    height = max(FOREST_MIN_HEIGHT, FOREST_BASE_HEIGHT + FOREST_ROW_INCHES * n)
    pc = az.plot_forest(
        xr.Dataset({"rho": rho}),
        var_names=["rho"],
        combined=True,
        ci_kind=ci_kind,
        ci_probs=(0.5, ci_prob),
        point_estimate="median",
        labels=["benchmark"],
        aes={"color": ["benchmark"]},
        color=[area_color(a) for a in meta["area"]],
        aes_by_visuals={"labels": ["color"]},
        figure_kwargs={"figsize": (11.0, height), "width_ratios": [1.15, 2.0]},
    )
    axes_height = _layout(pc)
    y_of = _forest_y(pc, labels)
    _mark_regions(pc, tau, list(meta["area"]), y_of)
    forest = pc.viz["plot"].sel(column="forest").item()
    _legend(forest, meta, baseline, y_of, tau, axes_height)
    forest.set_xlim(-1.02, 1.02)
    forest.set_ylim(min(y_of) - 0.8, max(y_of) + 0.8)
    forest.set_xlabel(
        f"capability correlation ρ (median, 50% and {interval_label(ci_prob, ci_kind)})",
        fontsize=10,
    )
    pc.viz["figure"].item().suptitle(
        f"{study_name(dt)}: capability correlation of safety benchmarks by area"
    )
    return pc
