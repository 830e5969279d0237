"""Posterior separability of every benchmark from the capability factor.

On the standardised scale a benchmark's capability correlation is

    rho = lambda / sqrt(lambda^2 + gamma^2 + sigma^2)

(``gamma`` its loading on an area factor, if any; ``sigma^2`` = measurement noise +
benchmark-specific variance), its unexplained share ``1 - rho^2``, and it is *separable* at
threshold ``tau`` when ``|rho| < tau``. With K capability dimensions
(``ModelConfig.capability_dims``) ``rho`` is the correlation with the general factor and
``R`` (``subspace_r``) the multiple correlation with the whole capability subspace
(``sqrt(lambda^2 + |L_b|^2)`` over the same total, ``L_b`` its loadings on the further
axes); separable then means ``R < tau`` (no capability direction explains a quarter of the
variance at the default), and ``P(|rho| < tau)`` is kept beside it: a benchmark separable
from the general factor but not from the subspace is flagged (``general_only_separable``),
since capability on another axis (coding, say) can be sold as safety too. With one dimension
``R = |rho|``. The default ``tau = 0.5`` means capability explains less than a quarter of
the benchmark's variance. The unexplained share splits into the benchmark-specific share
(what it measures beyond capability) and the noise share, so a benchmark that looks
separable only because it is small and noisy is told apart from one that measures something
else (:func:`variance_share_draws`). The noise is known only where the score is a proportion
of a known number of items (the catalog's ``n_items``); elsewhere the model has no separate
noise term and the noise share is NaN (``noise_known`` False).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.analysis.intervals import (
    CI_KIND,
    CI_PROB,
    SAMPLE_DIMS,
    interval_bounds,
    interval_label,
)
from safetywash.data.catalog import proportion_items
from safetywash.inference.fitfile import benchmark_table, cell_index, fitted_transform
from safetywash.model.axes import AXIS_DIM
from safetywash.model.likelihood import variance_shares

DEFAULT_TAU = 0.5
#: The three parts of a benchmark's variance (:func:`variance_shares`).
SHARES = ("capability", "specific", "noise")


def separability(
    dt: xr.DataTree,
    *,
    tau: float = DEFAULT_TAU,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    group: str = "posterior",
    shares: bool = True,
) -> xr.Dataset:
    """Per-benchmark posterior summaries of capability entanglement.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit with ``rho`` in ``group`` and benchmark metadata in ``constant_data``.
    tau : float
        Separability threshold on ``|rho|`` (0 < tau < 1).
    ci_prob : float
        Probability mass of the intervals.
    ci_kind : {"hdi", "eti"}
        Kind of the intervals (the variables keep the ``hdi`` names).
    group : str
        Group holding the draws.
    shares : bool
        Add the variance shares and ``noise_known`` (they need the fit's stored scores).

    Returns
    -------
    xarray.Dataset
        Over ``benchmark``: ``rho_median``, ``rho_hdi_low``, ``rho_hdi_high``,
        ``subspace_r_median``, ``subspace_r_hdi_low``, ``subspace_r_hdi_high``,
        ``p_separable`` = P(R < tau | data) (P(|rho| < tau | data) with one capability
        dimension), ``p_separable_general`` = P(|rho| < tau | data),
        ``general_only_separable`` (P(|rho| < tau) at least 1/2 but P(R < tau) below it),
        ``unexplained_median`` (1 - R^2),
        ``loading_median``, the variance shares ``{capability,specific,noise}_share_median``
        / ``_hdi_low`` / ``_hdi_high`` (:func:`variance_share_draws`) and ``noise_known``
        (False: noise not separated, its share NaN); coordinates ``display_name``, ``role``,
        ``area``.
    """
    if not 0 < tau < 1:
        raise ValueError("tau must be between 0 and 1")
    rho = dt[group]["rho"]
    r = dt[group]["subspace_r"] if "subspace_r" in dt[group].data_vars else np.abs(rho)
    low, high = interval_bounds(rho, ci_prob=ci_prob, ci_kind=ci_kind)
    r_low, r_high = interval_bounds(r, ci_prob=ci_prob, ci_kind=ci_kind)
    p_general = (np.abs(rho) < tau).mean(SAMPLE_DIMS)
    p_subspace = (r < tau).mean(SAMPLE_DIMS)
    out = xr.Dataset(
        {
            "rho_median": rho.median(SAMPLE_DIMS),
            "rho_hdi_low": low,
            "rho_hdi_high": high,
            "subspace_r_median": r.median(SAMPLE_DIMS),
            "subspace_r_hdi_low": r_low,
            "subspace_r_hdi_high": r_high,
            "p_separable": p_subspace,
            "p_separable_general": p_general,
            "general_only_separable": (p_general >= 0.5) & (p_subspace < 0.5),
            "unexplained_median": (1 - r**2).median(SAMPLE_DIMS),
            "loading_median": dt[group]["loading"].median(SAMPLE_DIMS),
        }
    )
    if shares:
        draws = variance_share_draws(dt, group=group)
        for name in SHARES:
            low, high = interval_bounds(draws[name], ci_prob=ci_prob, ci_kind=ci_kind)
            out[f"{name}_share_median"] = draws[name].median(SAMPLE_DIMS)
            out[f"{name}_share_hdi_low"], out[f"{name}_share_hdi_high"] = low, high
        out["noise_known"] = np.isfinite(noise_sd(dt).sel(benchmark=rho["benchmark"]))
    meta = benchmark_table(dt).loc[rho["benchmark"].values.astype(str)]
    out = out.assign_coords(
        {name: ("benchmark", meta[name].to_numpy()) for name in ("display_name", "role", "area")}
    )
    out.attrs.update(tau=tau, ci_prob=ci_prob, ci_kind=ci_kind)
    return out


def noise_sd(dt: xr.DataTree) -> xr.DataArray:
    """Model-scale measurement-noise SD of every fitted benchmark (NaN: not separated).

    Known where the benchmark's score is a proportion of a known number of items
    (:func:`safetywash.data.catalog.proportion_items`), from the fit's stored scores through
    its score transform
    (:meth:`safetywash.model.transform.ScoreTransform.noise_variance`): the noise the
    model put under that benchmark's residual.
    """
    meta = benchmark_table(dt)
    if "raw_value" not in dt["constant_data"].data_vars:  # a tree without its scores
        return xr.DataArray(np.full(len(meta), np.nan), coords={"benchmark": meta.index})
    _, bench_idx = cell_index(dt)
    raw = np.asarray(dt["constant_data"]["raw_value"].values, dtype=float)
    variance = fitted_transform(dt).noise_variance(raw, bench_idx, proportion_items(meta))
    return xr.DataArray(np.sqrt(variance), coords={"benchmark": meta.index.to_numpy()})


def variance_share_draws(dt: xr.DataTree, *, group: str = "posterior") -> xr.Dataset:
    """Posterior draws of each benchmark's capability, specific and noise variance shares.

    From ``loading``, ``residual_sd``, (with area factors) ``factor_loading`` and the known
    noise (:func:`noise_sd`) through :func:`safetywash.model.likelihood.variance_shares`:
    the capability share is ``R**2`` (``rho**2`` with one capability dimension; further
    axes' ``axis_loading`` counted) and the specific share counts area-factor variance.
    Where the noise is not separated the noise share is NaN and the specific share is
    everything capability does not explain (any noise included).

    A tree whose posterior holds ``rho`` but no ``residual_sd`` gets ``rho**2``, the rest
    as specific, and no noise share.

    Returns
    -------
    xarray.Dataset
        ``capability``, ``specific``, ``noise`` over (chain, draw, benchmark); where the
        noise is known the three sum to 1 in every draw.
    """
    post = dt[group]
    if "residual_sd" not in post.data_vars:  # rho only: capability and the rest
        rho2 = post["rho"] ** 2
        return xr.Dataset({"capability": rho2, "specific": 1 - rho2, "noise": rho2 * np.nan})
    loading = post["loading"]
    factor = None
    if "factor_loading" in post.data_vars:
        factor = post["factor_loading"].rename(factor_benchmark="benchmark")
        factor = factor.reindex(benchmark=loading["benchmark"], fill_value=0.0)
    noise = noise_sd(dt).sel(benchmark=loading["benchmark"])
    axes = None
    if "axis_loading" in post.data_vars:
        axes = post["axis_loading"].transpose(..., "benchmark", AXIS_DIM)
    parts = variance_shares(loading, post["residual_sd"], noise.fillna(0.0), factor, axes)
    shares = xr.Dataset(dict(zip(SHARES, parts, strict=True)))
    shares["noise"] = shares["noise"].where(np.isfinite(noise))
    return shares


def area_loadings(
    dt: xr.DataTree,
    *,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    group: str = "posterior",
) -> xr.Dataset:
    """Posterior of each safety area's mean capability loading.

    Returns
    -------
    xarray.Dataset
        Over ``area``: ``mean_loading_median``, ``mean_loading_hdi_low``/``_high`` and
        ``p_positive`` = P(area mean loading > 0).
    """
    if "area_loading_mean" not in dt[group].data_vars:
        return xr.Dataset()
    mean = dt[group]["area_loading_mean"]
    low, high = interval_bounds(mean, ci_prob=ci_prob, ci_kind=ci_kind)
    return xr.Dataset(
        {
            "mean_loading_median": mean.median(SAMPLE_DIMS),
            "mean_loading_hdi_low": low,
            "mean_loading_hdi_high": high,
            "p_positive": (mean > 0).mean(SAMPLE_DIMS),
        },
        attrs={"ci_prob": ci_prob, "ci_kind": ci_kind},
    )


SEPARABILITY_COLUMNS = (
    "benchmark",
    "display_name",
    "area",
    "rho_median",
    "rho_hdi_low",
    "rho_hdi_high",
    "subspace_r_median",
    "subspace_r_hdi_low",
    "subspace_r_hdi_high",
    "p_separable",
    "p_separable_general",
    "general_only_separable",
    "unexplained_median",
    "capability_share_median",
    "capability_share_hdi_low",
    "capability_share_hdi_high",
    "specific_share_median",
    "specific_share_hdi_low",
    "specific_share_hdi_high",
    "noise_share_median",
    "noise_share_hdi_low",
    "noise_share_hdi_high",
    "noise_known",
    "baseline_correlation",
)


def separability_table(
    summary: xr.Dataset, baseline: pd.Series | None = None, *, safety_only: bool = False
) -> pd.DataFrame:
    """The separability summary as a table, grouped by area (capability first).

    Parameters
    ----------
    summary : xarray.Dataset
        From :func:`separability`.
    baseline : pandas.Series, optional
        The paper's capabilities correlation by benchmark key, oriented by the catalog
        direction so it is comparable with ``rho`` (NaN where absent).
    safety_only : bool
        Keep safety benchmarks only.
    """
    frame = summary.reset_coords().to_dataframe().reset_index()
    frame["baseline_correlation"] = (
        frame["benchmark"].map(baseline) if baseline is not None else np.nan
    )
    if safety_only:
        frame = frame[frame["role"] == "safety"]
    frame["_cap"] = frame["area"] != "capability"
    frame = frame.sort_values(["_cap", "area", "rho_median"], ascending=[True, True, False])
    return frame[list(SEPARABILITY_COLUMNS)].reset_index(drop=True)


#: Footnote of the text table's shares.
NOISE_NOTE = (
    "cap/spec/noise: medians of the shares of a benchmark's variance explained by capability "
    "(rho^2),\nspecific to the benchmark (area factors included) and measurement noise.\n"
    "n/a: noise not separated: give n_items (the number of scored items of a proportion "
    "score);\nspec there includes any noise."
)


def format_shares(capability: float, specific: float, noise: float) -> str:
    """``cap/spec/noise`` medians as text, ``n/a`` for a noise that is not separated."""
    noise_text = f"{noise:.2f}" if np.isfinite(noise) else "n/a"
    return f"{capability:.2f}/{specific:.2f}/{noise_text}"


#: Footnote of the text table's subspace columns (more than one capability dimension).
SUBSPACE_NOTE = (
    "R: multiple correlation with all capability dimensions (rho: with the general factor "
    "alone);\nP(sep.) is P(R < tau). *: separable from the general factor but not from the "
    "capability subspace."
)


def format_separability(
    table: pd.DataFrame,
    tau: float,
    *,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    subspace: bool = False,
) -> str:
    """Readable text of :func:`separability_table`, grouped by area.

    ``subspace``: the fit has more than one capability dimension; show ``R`` and its
    interval beside ``rho`` and mark the benchmarks separable from the general factor only.
    """
    width = min(int(table["display_name"].str.len().max()), 44) + 2
    label = interval_label(ci_prob, ci_kind)
    head = f"{'benchmark':<{width}}{'rho':>7}{label:>17}"
    if subspace:
        head += f"{'R':>7}{label:>17}{f'P(R<{tau:g})':>11}{f'P(|rho|<{tau:g})':>14}"
    else:
        head += f"{f'P(|rho|<{tau:g})':>14}"
    head += f"{'unexpl.':>9}{'cap/spec/noise':>17}{'paper':>8}"
    lines = []
    for area, group in table.groupby("area", sort=False):
        lines += [f"== {area} ==", head]
        for r in group.itertuples():
            base = (
                "   n/a"
                if not np.isfinite(r.baseline_correlation)
                else (f"{r.baseline_correlation:+.2f}")
            )
            shares = format_shares(
                r.capability_share_median, r.specific_share_median, r.noise_share_median
            )
            row = (
                f"{r.display_name[: width - 2]:<{width}}{r.rho_median:>+7.2f}"
                f"   [{r.rho_hdi_low:+.2f}, {r.rho_hdi_high:+.2f}]"
            )
            if subspace:
                row += (
                    f"{r.subspace_r_median:>7.2f}"
                    f"    [{r.subspace_r_hdi_low:.2f}, {r.subspace_r_hdi_high:.2f}]"
                    f"{r.p_separable:>11.2f}{r.p_separable_general:>14.2f}"
                )
            else:
                row += f"{r.p_separable:>14.2f}"
            row += f"{r.unexplained_median:>9.2f}{shares:>17}{base:>8}"
            lines.append(row + (" *" if subspace and r.general_only_separable else ""))
        lines.append("")
    lines.append(NOISE_NOTE)
    if subspace:
        lines.append(SUBSPACE_NOTE)
    return "\n".join(lines)
