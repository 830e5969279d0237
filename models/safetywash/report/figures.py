"""Figures of a fit: rho forest, capability ranking, scores vs capability, PPC, loadings.

Every function takes a fit (an :class:`xarray.DataTree` from
:func:`safetywash.inference.sampling.fit` or :func:`safetywash.inference.fitfile.load_fit`)
or a summary built from one, and returns a
:class:`matplotlib.figure.Figure` (the forest also exists as an ArviZ ``PlotCollection``).
Labels use display names; safety areas get the same colour in every figure
(:data:`AREA_COLORS`). The functions never choose a matplotlib backend: scripts pick
``Agg``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import arviz as az
import matplotlib
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from safetywash.analysis.separability import DEFAULT_CI_PROB, DEFAULT_TAU

SAMPLE_DIMS = ("chain", "draw")

#: One fixed colour per area, used by every figure (and the HTML report's area headings).
AREA_COLORS: dict[str, str] = {
    "capability": "#4d4d4d",
    "alignment": "#1f77b4",
    "scalable_oversight": "#0e8c9a",
    "truthfulness": "#2ca02c",
    "machine_ethics": "#9467bd",
    "bias": "#ff7f0e",
    "calibration": "#8c564b",
    "adversarial_robustness": "#d62728",
    "weaponization": "#e377c2",
}
#: Colour of an area missing from :data:`AREA_COLORS`.
OTHER_AREA_COLOR = "#999999"
#: Colours of LLM populations (capability ranking).
POPULATION_COLORS: dict[str, str] = {"base": "#3b6ea5", "chat": "#c0504d"}
#: Longest label drawn before it is shortened with an ellipsis.
MAX_LABEL = 48


def area_color(area: str) -> str:
    """The fixed colour of a safety area (or ``"capability"``)."""
    return AREA_COLORS.get(str(area), OTHER_AREA_COLOR)


def area_label(area: str) -> str:
    """Readable name of an area key: ``"machine_ethics"`` -> ``"Machine ethics"``."""
    text = str(area).replace("_", " ")
    return text[:1].upper() + text[1:]


def population_color(population: str, index: int = 0) -> str:
    """Colour of an LLM population (a tab10 colour for unknown labels)."""
    if population in POPULATION_COLORS:
        return POPULATION_COLORS[population]
    return matplotlib.colors.to_hex(matplotlib.colormaps["tab10"](index % 10))


def shorten(text: str, width: int = MAX_LABEL) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    text = str(text)
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def benchmark_metadata(dt: xr.DataTree) -> pd.DataFrame:
    """Per-benchmark metadata of a fit (``constant_data`` ``benchmark_*`` variables).

    Returns
    -------
    pandas.DataFrame
        Indexed by benchmark key; columns without the ``benchmark_`` prefix
        (``display_name``, ``role``, ``area``, ``direction``, ...).
    """
    const = dt["constant_data"].to_dataset()
    names = [v for v in const.data_vars if const[v].dims == ("benchmark",)]
    frame = const[names].to_dataframe()
    frame.columns = [c.removeprefix("benchmark_") for c in frame.columns]
    frame.index = frame.index.astype(str)
    return frame


def llm_metadata(dt: xr.DataTree) -> pd.DataFrame:
    """Per-LLM metadata of a fit: ``display_name`` and ``population``, indexed by LLM key."""
    const = dt["constant_data"]
    return pd.DataFrame(
        {
            "display_name": const["llm_name"].values.astype(str),
            "population": const["population_label"].values.astype(str),
        },
        index=pd.Index(const["llm"].values.astype(str), name="llm"),
    )


def _hdi(da: xr.DataArray, ci_prob: float) -> tuple[np.ndarray, np.ndarray]:
    bounds = az.hdi(da, prob=ci_prob)
    return (
        bounds.sel(ci_bound="lower").values,
        bounds.sel(ci_bound="upper").values,
    )


def _figure(width: float, height: float, **kwargs) -> Figure:
    return Figure(figsize=(width, height), layout="constrained", **kwargs)


def area_legend_handles(areas: Sequence[str]) -> list[Patch]:
    """Legend patches for ``areas`` in their fixed colours."""
    return [Patch(color=area_color(a), label=area_label(a)) for a in areas]


# --------------------------------------------------------------------------- forest


def plot_rho_forest(
    dt: xr.DataTree,
    *,
    tau: float = DEFAULT_TAU,
    ci_prob: float = DEFAULT_CI_PROB,
    baseline: pd.Series | None = None,
    include_capability: bool = False,
    group: str = "posterior",
):
    """Forest plot of every safety benchmark's capability correlation, grouped by area.

    Drawn with :func:`arviz.plot_forest` (median, 50% and ``ci_prob`` HDIs), one colour per
    area, the separable region ``|rho| < tau`` shaded and the paper baseline marked.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit with ``rho`` in ``group``.
    tau : float
        Separability threshold, marked at ``-tau`` and ``+tau``.
    ci_prob : float
        Probability of the outer interval.
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
    meta = benchmark_metadata(dt)
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
    rho = rho.sel(benchmark=list(meta.index)).assign_coords(benchmark=labels)
    colors = [area_color(a) for a in meta["area"]]
    n = len(labels)
    pc = az.plot_forest(
        xr.Dataset({"rho": rho}),
        var_names=["rho"],
        combined=True,
        ci_kind="hdi",
        ci_probs=(0.5, ci_prob),
        point_estimate="median",
        labels=["benchmark"],
        aes={"color": ["benchmark"]},
        color=colors,
        aes_by_visuals={"labels": ["color"]},
        figure_kwargs={"figsize": (11.0, 1.6 + 0.24 * n), "width_ratios": [1.15, 2.0]},
    )
    fig = pc.viz["figure"].item()
    forest = pc.viz["plot"].sel(column="forest").item()
    label_ax = pc.viz["plot"].sel(column="labels").item()
    label_ax.set_xlabel("")
    label_ax.set_xticks([])
    for spine in label_ax.spines.values():
        spine.set_visible(False)
    height = float(fig.get_size_inches()[1])
    fig.subplots_adjust(
        left=0.01, right=0.98, top=1 - 0.75 / height, bottom=1.45 / height, wspace=0.02
    )
    y_of = _forest_y(pc, labels)
    forest.axvspan(-tau, tau, color="#e8e8e8", zorder=0)
    for x in (-tau, tau):
        forest.axvline(x, color="#555555", linestyle="--", linewidth=0.9, zorder=1)
    forest.axvline(0, color="#bbbbbb", linewidth=0.6, zorder=0)
    # Separators between areas.
    areas = list(meta["area"])
    for i in range(1, n):
        if areas[i] != areas[i - 1]:
            mid = (y_of[i] + y_of[i - 1]) / 2
            forest.axhline(mid, color="#cccccc", linewidth=0.6, zorder=0)
            label_ax.axhline(mid, color="#cccccc", linewidth=0.6, zorder=0)
    handles = area_legend_handles(list(dict.fromkeys(areas)))
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
    handles.append(Patch(color="#e8e8e8", label=f"separable: |ρ| < {tau:g}"))
    forest.set_xlim(-1.02, 1.02)
    forest.set_ylim(min(y_of) - 0.8, max(y_of) + 0.8)
    forest.set_xlabel(f"capability correlation ρ (median, 50% and {ci_prob:.0%} HDI)", fontsize=10)
    forest.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.06),
        ncol=min(4, len(handles)),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(f"{_study_name(dt)}: capability correlation of safety benchmarks by area")
    return pc


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


def _study_name(dt: xr.DataTree) -> str:
    return str(dt.attrs.get("study_name", "fit"))


# --------------------------------------------------------------------------- capability


def capability_summary(
    dt: xr.DataTree, *, ci_prob: float = DEFAULT_CI_PROB, group: str = "posterior"
) -> xr.Dataset:
    """Posterior median and HDI of every LLM's latent capability.

    Returns
    -------
    xarray.Dataset
        Over ``llm``: ``capability_median``, ``capability_hdi_low``/``_high``; coordinates
        ``display_name`` and ``population``.
    """
    theta = dt[group]["capability"]
    low, high = _hdi(theta, ci_prob)
    meta = llm_metadata(dt).reindex(theta["llm"].values.astype(str))
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
        attrs={"ci_prob": ci_prob},
    )


def plot_capability_ranking(
    dt: xr.DataTree, *, ci_prob: float = DEFAULT_CI_PROB, group: str = "posterior"
) -> Figure:
    """LLMs ranked by posterior capability (median and HDI), one panel per population."""
    summary = capability_summary(dt, ci_prob=ci_prob, group=group).to_dataframe()
    pops = sorted(summary["population"].unique())
    n_max = max(int((summary["population"] == p).sum()) for p in pops)
    fig = _figure(5.2 * len(pops) + 1.0, 1.2 + 0.24 * n_max)
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
        ax.set_xlabel(f"latent capability θ (median, {ci_prob:.0%} HDI)")
    fig.suptitle(f"{_study_name(dt)}: LLM capability ranking")
    return fig


# --------------------------------------------------------------------------- scores


def plot_scores_vs_capability(
    dt: xr.DataTree,
    benchmarks: Sequence[str],
    *,
    ci_prob: float = DEFAULT_CI_PROB,
    group: str = "posterior",
    n_grid: int = 60,
) -> Figure:
    """Standardised oriented scores against posterior capability, with the fitted line.

    Each panel shows one benchmark: observed scores (the model's ``score``, oriented so
    higher = better/safer and standardised) at each LLM's posterior median capability
    (its HDI as a grey bar), and the posterior median and ``ci_prob`` band of the
    capability line ``intercept + loading * theta`` (area factors, which have mean zero,
    left out).
    """
    meta = benchmark_metadata(dt)
    unknown = [b for b in benchmarks if b not in meta.index]
    if unknown:
        raise KeyError(f"benchmark(s) {unknown} are not in this fit")
    post = dt[group]
    const = dt["constant_data"]
    theta = capability_summary(dt, ci_prob=ci_prob, group=group)
    theta_med = theta["capability_median"].values
    bench_keys = const["benchmark"].values.astype(str)
    b_idx = const["benchmark_index"].values
    l_idx = const["llm_index"].values
    y_obs = dt["observed_data"]["score"].values
    lo_x, hi_x = float(theta["capability_hdi_low"].min()), float(theta["capability_hdi_high"].max())
    grid = np.linspace(lo_x, hi_x, n_grid)
    tail = (1 - ci_prob) / 2

    n = len(benchmarks)
    ncols = min(n, 2) if n <= 4 else 3
    nrows = int(np.ceil(n / ncols))
    fig = _figure(4.6 * ncols, 3.6 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
    for ax, key in zip(axes, benchmarks, strict=False):
        color = area_color(meta.loc[key, "area"])
        b = int(np.flatnonzero(bench_keys == key)[0])
        cells = b_idx == b
        lines = post["intercept"].sel(benchmark=key).values.reshape(-1, 1) + post["loading"].sel(
            benchmark=key
        ).values.reshape(-1, 1) * grid.reshape(1, -1)
        band = np.quantile(lines, [tail, 0.5, 1 - tail], axis=0)
        ax.fill_between(grid, band[0], band[2], color=color, alpha=0.22, lw=0)
        ax.plot(grid, band[1], color=color, lw=1.8)
        llms = l_idx[cells]
        ax.hlines(
            y_obs[cells],
            theta["capability_hdi_low"].values[llms],
            theta["capability_hdi_high"].values[llms],
            color="#bbbbbb",
            lw=0.8,
            zorder=1,
        )
        ax.scatter(theta_med[llms], y_obs[cells], color=color, s=18, zorder=3, edgecolor="white")
        rho = post["rho"].sel(benchmark=key)
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
    for ax in axes[n:]:
        ax.set_visible(False)
    for k, ax in enumerate(axes[:n]):
        if k + ncols < n:  # another panel below shares this x axis
            ax.set_xlabel("")
    fig.suptitle(
        f"{_study_name(dt)}: scores against capability "
        f"(line: intercept + loading·θ, {ci_prob:.0%} band)"
    )
    return fig


# --------------------------------------------------------------------------- PPC


def plot_correlation_ppc(ppc: xr.Dataset, dt: xr.DataTree | None = None) -> Figure:
    """Observed against replicated benchmark correlations (from :func:`correlation_ppc`).

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

    fig = _figure(11.0, 5.0)
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
            label=f"{label} the {ci_prob:.0%} interval ({int(mask.sum())})",
        )
    ax.plot([-1, 1], [-1, 1], color="black", lw=0.8)
    ax.set_xlim(-1.02, 1.02)
    ax.set_ylim(-1.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("observed correlation (pairwise complete)")
    ax.set_ylabel(f"replicated correlation (mean and {ci_prob:.0%} interval)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(color="#eeeeee")
    ax.set_axisbelow(True)
    hx.hist(p, bins=np.linspace(0, 1, 21), color="#4d78a8", edgecolor="white")
    hx.axhline(len(p) / 20, color="black", lw=0.8, ls="--", label="uniform")
    hx.set_xlabel("P(replicated ≥ observed) per benchmark pair")
    hx.set_ylabel("benchmark pairs")
    hx.legend(fontsize=8)
    name = _study_name(dt) if dt is not None else str(ppc.attrs.get("study_name", "fit"))
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
        meta = benchmark_metadata(dt)
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
    meta = benchmark_metadata(dt).reindex(loads["benchmark"].values)
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
    fig = _figure(3.4 + 1.0 * len(factors) + 1.2, 2.0 + 0.22 * n)
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
    fig.suptitle(f"{_study_name(dt)}: loadings on capability and area factors")
    return fig


# --------------------------------------------------------------------------- saving


def save_figure(figure, stem: str | Path, *, dpi: int = 130) -> tuple[Path, Path]:
    """Write a figure (or ArviZ ``PlotCollection``) as ``<stem>.png`` and ``<stem>.svg``.

    The figure is closed afterwards when pyplot manages it.

    Returns
    -------
    png, svg : pathlib.Path
    """
    fig = figure.viz["figure"].item() if hasattr(figure, "viz") else figure
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = Path(f"{stem}.png"), Path(f"{stem}.svg")
    fig.savefig(png, dpi=dpi)
    fig.savefig(svg)
    if hasattr(figure, "viz"):
        import matplotlib.pyplot as plt

        plt.close(fig)
    return png, svg
