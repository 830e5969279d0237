"""Figures of a fit: capability ranking, scores vs capability, the correlation PPC, loadings.

Every function takes a fit (an :class:`xarray.DataTree` from
:func:`safetywash.inference.sampling.fit` or :func:`safetywash.inference.fitfile.load_fit`)
or a summary built from one, and returns a :class:`matplotlib.figure.Figure`. The forest
plot of ``rho`` is in :mod:`safetywash.report.forest`; colours, labels and saving in
:mod:`safetywash.report.style`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from safetywash.analysis.intervals import (
    CI_KIND,
    CI_PROB,
    SAMPLE_DIMS,
    interval_bounds,
    interval_label,
    percent,
)
from safetywash.inference.fitfile import benchmark_table, cell_index, llm_table
from safetywash.report.style import (
    area_color,
    area_label,
    area_legend_handles,
    new_figure,
    population_color,
    shorten,
    study_name,
)

# --------------------------------------------------------------------------- capability


def capability_summary(
    dt: xr.DataTree,
    *,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    group: str = "posterior",
) -> xr.Dataset:
    """Posterior median and interval of every LLM's latent capability.

    Returns
    -------
    xarray.Dataset
        Over ``llm``: ``capability_median``, ``capability_hdi_low``/``_high`` (the
        ``ci_kind`` interval); coordinates ``display_name`` and ``population``.
    """
    theta = dt[group]["capability"]
    low, high = (b.values for b in interval_bounds(theta, ci_prob=ci_prob, ci_kind=ci_kind))
    meta = llm_table(dt).reindex(theta["llm"].values.astype(str))
    return xr.Dataset(
        {
            "capability_median": ("llm", theta.median(SAMPLE_DIMS).values),
            "capability_hdi_low": ("llm", low),
            "capability_hdi_high": ("llm", high),
        },
        coords={
            "llm": theta["llm"].values,
            "display_name": ("llm", meta["display_name"].to_numpy()),
            "population": ("llm", meta["population"].to_numpy()),
        },
        attrs={"ci_prob": ci_prob, "ci_kind": ci_kind},
    )


def plot_capability_ranking(
    dt: xr.DataTree,
    *,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    group: str = "posterior",
) -> Figure:
    """LLMs ranked by posterior capability (median and interval), one panel per population."""
    summary = capability_summary(dt, ci_prob=ci_prob, ci_kind=ci_kind, group=group)
    summary = summary.to_dataframe()
    pops = sorted(summary["population"].unique())
    n_max = max(int((summary["population"] == p).sum()) for p in pops)
    fig = new_figure(5.2 * len(pops) + 1.0, 1.2 + 0.24 * n_max)
    axes = fig.subplots(1, len(pops), sharex=True, squeeze=False)[0]
    for k, (ax, pop) in enumerate(zip(axes, pops, strict=True)):
        part = summary[summary["population"] == pop].sort_values("capability_median")
        y = np.arange(len(part))
        color = population_color(pop, k)
        ax.hlines(y, part["capability_hdi_low"], part["capability_hdi_high"], color=color, lw=1.6)
        ax.plot(part["capability_median"], y, "o", color=color, mfc="white", ms=5)
        ax.set_yticks(y, [shorten(n, 34) for n in part["display_name"]], fontsize=8)
        ax.set_ylim(-0.8, n_max - 0.2)
        ax.grid(axis="x", color="#e5e5e5")
        ax.set_axisbelow(True)
        ax.set_title(f"{pop} ({len(part)} LLMs)", fontsize=10)
        ax.set_xlabel(f"latent capability θ (median, {interval_label(ci_prob, ci_kind)})")
    fig.suptitle(f"{study_name(dt)}: LLM capability ranking")
    return fig


# --------------------------------------------------------------------------- scores


def _line_band(dt, key: str, grid: np.ndarray, ci_prob: float, group: str) -> np.ndarray:
    """Lower, median and upper quantile of ``intercept + loading * theta`` on ``grid``."""
    post = dt[group]
    lines = post["intercept"].sel(benchmark=key).values.reshape(-1, 1) + post["loading"].sel(
        benchmark=key
    ).values.reshape(-1, 1) * grid.reshape(1, -1)
    tail = (1 - ci_prob) / 2
    return np.quantile(lines, [tail, 0.5, 1 - tail], axis=0)


def _scores_panel(ax, dt, key: str, theta: xr.Dataset, band, grid, meta, group: str) -> None:
    """One benchmark's observed scores against capability, with the fitted line."""
    llm_idx, bench_idx = cell_index(dt)
    color = area_color(meta.loc[key, "area"])
    cells = bench_idx == meta.index.get_loc(key)
    y_obs = dt["observed_data"]["score"].values[cells]
    ax.fill_between(grid, band[0], band[2], color=color, alpha=0.22, lw=0)
    ax.plot(grid, band[1], color=color, lw=1.8)
    llms = llm_idx[cells]
    ax.hlines(
        y_obs,
        theta["capability_hdi_low"].values[llms],
        theta["capability_hdi_high"].values[llms],
        color="#bbbbbb",
        lw=0.8,
        zorder=1,
    )
    median = theta["capability_median"].values[llms]
    ax.scatter(median, y_obs, color=color, s=18, zorder=3, edgecolor="white")
    rho = dt[group]["rho"].sel(benchmark=key)
    title = "\n".join(textwrap.wrap(str(meta.loc[key, "display_name"]), 44))
    ax.set_title(
        f"{title}\n{area_label(meta.loc[key, 'area'])}: ρ = {float(rho.median()):+.2f}, "
        f"{int(cells.sum())} LLMs",
        fontsize=9,
    )
    ax.set_xlabel("posterior capability θ")
    ax.set_ylabel("standardised oriented score")
    ax.grid(color="#eeeeee")
    ax.set_axisbelow(True)


def plot_scores_vs_capability(
    dt: xr.DataTree,
    benchmarks: Sequence[str],
    *,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    group: str = "posterior",
    n_grid: int = 60,
) -> Figure:
    """Standardised oriented scores against posterior capability, with the fitted line.

    Each panel shows one benchmark: observed scores (the model's ``score``, oriented so
    higher = better/safer and standardised) at each LLM's posterior median capability
    (its ``ci_kind`` interval as a grey bar), and the posterior median and equal-tailed
    ``ci_prob`` band of the capability line ``intercept + loading * theta`` (area factors,
    which have mean zero, left out).
    """
    meta = benchmark_table(dt)
    unknown = [b for b in benchmarks if b not in meta.index]
    if unknown:
        raise KeyError(f"benchmark(s) {unknown} are not in this fit")
    theta = capability_summary(dt, ci_prob=ci_prob, ci_kind=ci_kind, group=group)
    lo_x, hi_x = float(theta["capability_hdi_low"].min()), float(theta["capability_hdi_high"].max())
    grid = np.linspace(lo_x, hi_x, n_grid)
    n = len(benchmarks)
    ncols = min(n, 2) if n <= 4 else 3
    nrows = int(np.ceil(n / ncols))
    fig = new_figure(4.6 * ncols, 3.6 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
    for ax, key in zip(axes, benchmarks, strict=False):
        band = _line_band(dt, key, grid, ci_prob, group)
        _scores_panel(ax, dt, key, theta, band, grid, meta, group)
    for ax in axes[n:]:
        ax.set_visible(False)
    for k, ax in enumerate(axes[:n]):
        if k + ncols < n:  # another panel below shares this x axis
            ax.set_xlabel("")
    fig.suptitle(
        f"{study_name(dt)}: scores against capability "
        f"(line: intercept + loading·θ, {percent(ci_prob)} band)"
    )
    return fig


# --------------------------------------------------------------------------- PPC


def plot_correlation_ppc(ppc: xr.Dataset, dt: xr.DataTree | None = None) -> Figure:
    """Observed against replicated benchmark correlations, from a correlation PPC.

    ``ppc`` is a result of :func:`safetywash.analysis.ppc.correlation_ppc`.
    Left: every checked benchmark pair's observed correlation against the mean of its
    replicated correlation, with the predictive interval; pairs outside it in red. Right:
    the posterior predictive p-values P(replicated >= observed) of all pairs (near uniform
    when the model reproduces the correlation structure).
    """
    checked = ppc["checked"].values
    obs = ppc["observed"].values[checked]
    mean = ppc["replicated_mean"].values[checked]
    low = ppc["replicated_low"].values[checked]
    high = ppc["replicated_high"].values[checked]
    inside = ppc["inside"].values[checked]
    p = ppc["p_greater"].values[checked]
    ci_prob = float(ppc.attrs["ci_prob"])

    fig = new_figure(11.0, 5.0)
    ax, hx = fig.subplots(1, 2, width_ratios=[1.5, 1.0])
    for mask, color, label in (
        (inside, "#4d78a8", "inside"),
        (~inside, "#d62728", "outside"),
    ):
        ax.vlines(obs[mask], low[mask], high[mask], color=color, alpha=0.18, lw=0.8)
        ax.scatter(
            obs[mask],
            mean[mask],
            s=7,
            color=color,
            alpha=0.7,
            label=f"{label} the {percent(ci_prob)} interval ({int(mask.sum())})",
        )
    ax.plot([-1, 1], [-1, 1], color="black", lw=0.8)
    ax.set_xlim(-1.02, 1.02)
    ax.set_ylim(-1.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("observed correlation (pairwise complete)")
    ax.set_ylabel(f"replicated correlation (mean and {percent(ci_prob)} interval)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(color="#eeeeee")
    ax.set_axisbelow(True)
    hx.hist(p, bins=np.linspace(0, 1, 21), color="#4d78a8", edgecolor="white")
    hx.axhline(len(p) / 20, color="black", lw=0.8, ls="--", label="uniform")
    hx.set_xlabel("P(replicated ≥ observed) per benchmark pair")
    hx.set_ylabel("benchmark pairs")
    hx.legend(fontsize=8)
    name = study_name(dt) if dt is not None else str(ppc.attrs.get("study_name", "fit"))
    fig.suptitle(
        f"{name}: posterior predictive check of the benchmark correlation matrix — "
        f"{float(ppc.attrs['share_inside']):.0%} of {int(ppc.attrs['n_pairs'])} pairs inside "
        f"({ppc.attrs['source']}, {int(ppc.attrs['n_draws'])} draws)",
        fontsize=10,
    )
    return fig


# --------------------------------------------------------------------------- loadings


def loadings_summary(dt: xr.DataTree, *, group: str = "posterior") -> xr.DataArray:
    """Posterior median loading of every benchmark on capability and on each area factor.

    Returns
    -------
    xarray.DataArray
        Dims ``(benchmark, factor)``; factor ``"capability"`` first, then the fit's area
        factors; NaN where a benchmark does not load on a factor (the model fixes it at 0).
    """
    post = dt[group]
    keys = post["benchmark"].values.astype(str)
    factors = ["capability"]
    if "factor" in post.coords:
        factors += list(post["factor"].values.astype(str))
    out = np.full((len(keys), len(factors)), np.nan)
    out[:, 0] = post["loading"].median(SAMPLE_DIMS).values
    if "factor_loading" in post.data_vars:
        meta = benchmark_table(dt)
        gamma = post["factor_loading"].median(SAMPLE_DIMS)
        pos = {k: i for i, k in enumerate(keys)}
        for key, value in zip(
            gamma["factor_benchmark"].values.astype(str), gamma.values, strict=True
        ):
            out[pos[key], factors.index(meta.loc[key, "area"])] = value
    return xr.DataArray(
        out,
        dims=("benchmark", "factor"),
        coords={"benchmark": keys, "factor": factors},
        name="loading_median",
    )


def plot_loadings_heatmap(dt: xr.DataTree, *, group: str = "posterior") -> Figure:
    """Heatmap of posterior median loadings on capability and the area factors.

    Rows are benchmarks (display names, coloured by area, grouped by area); blank cells
    are loadings the model fixes at zero.
    """
    loads = loadings_summary(dt, group=group)
    meta = benchmark_table(dt).reindex(loads["benchmark"].values)
    factors = list(loads["factor"].values)
    in_factor = meta["area"].isin(factors[1:])
    meta = meta.assign(
        _cap=(meta["role"] == "capability").to_numpy(),
        _f=~in_factor.to_numpy(),
        _l=loads.sel(factor="capability").values,
    ).sort_values(["_cap", "_f", "area", "_l"], ascending=[True, True, True, False])
    values = loads.sel(benchmark=list(meta.index)).values
    limit = float(np.nanmax(np.abs(values))) or 1.0
    n = len(meta)
    fig = new_figure(3.4 + 1.0 * len(factors) + 1.2, 2.0 + 0.22 * n)
    ax = fig.subplots()
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#f4f4f4")
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap=cmap, vmin=-limit, vmax=limit, aspect="auto"
    )
    for i in range(n):
        for j in range(len(factors)):
            if np.isfinite(values[i, j]):
                ax.text(
                    j,
                    i,
                    f"{values[i, j]:+.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(values[i, j]) > 0.6 * limit else "black",
                )
    ax.set_xticks(range(len(factors)), [area_label(f).replace(" ", "\n") for f in factors])
    for tick, f in zip(ax.get_xticklabels(), factors, strict=True):
        tick.set_color(area_color(f))
    ax.set_yticks(range(n), [shorten(name, 40) for name in meta["display_name"]], fontsize=7)
    for tick, area in zip(ax.get_yticklabels(), meta["area"], strict=True):
        tick.set_color(area_color(area))
    ax.xaxis.tick_top()
    fig.colorbar(image, ax=ax, shrink=min(1.0, 8.0 / n + 0.2), label="posterior median loading")
    fig.legend(
        handles=area_legend_handles(list(dict.fromkeys(meta["area"]))),
        loc="outside lower center",
        ncol=3,
        fontsize=7,
        frameon=False,
    )
    fig.suptitle(f"{study_name(dt)}: loadings on capability and area factors")
    return fig
