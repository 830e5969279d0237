"""Posterior separability of every benchmark from the capability factor.

On the standardised scale a benchmark's capability correlation is

    rho = lambda / sqrt(lambda^2 + gamma^2 + sigma^2)

(``gamma`` its loading on an area factor, if any), its unexplained share ``1 - rho^2``,
and it is *separable* at threshold ``tau`` when ``|rho| < tau``. The default
``tau = 0.5`` means capability explains less than a quarter of the benchmark's variance.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

DEFAULT_TAU = 0.5
#: The interval convention of every summary and label (arviz-stats names): probability
#: mass ``ci_prob`` of an interval of kind ``ci_kind``.
DEFAULT_CI_PROB = 0.94
DEFAULT_CI_KIND = "hdi"
#: Interval kinds: highest-density and equal-tailed.
CI_KINDS = {"hdi": "highest-density", "eti": "equal-tailed"}
SAMPLE_DIMS = ("chain", "draw")


def percent(prob: float) -> str:
    """A probability as a percentage: ``0.94`` -> ``"94%"``."""
    return f"{100 * prob:g}%"


def interval_label(
    ci_prob: float = DEFAULT_CI_PROB, ci_kind: str = DEFAULT_CI_KIND, *, long: bool = False
) -> str:
    """Label of an interval: ``"94% HDI"`` (``long``: ``"94% highest-density interval"``)."""
    check_interval(ci_prob, ci_kind)
    if long:
        return f"{percent(ci_prob)} {CI_KINDS[ci_kind]} interval"
    return f"{percent(ci_prob)} {ci_kind.upper()}"


def check_interval(ci_prob: float, ci_kind: str) -> None:
    """Raise ``ValueError`` unless ``0 < ci_prob < 1`` and ``ci_kind`` is a known kind."""
    if not 0 < ci_prob < 1:
        raise ValueError("ci_prob must be between 0 and 1")
    if ci_kind not in CI_KINDS:
        raise ValueError(f"ci_kind must be one of {list(CI_KINDS)}, not {ci_kind!r}")


def credible_interval(
    da: xr.DataArray, *, ci_prob: float = DEFAULT_CI_PROB, ci_kind: str = DEFAULT_CI_KIND
) -> tuple[xr.DataArray, xr.DataArray]:
    """Lower and upper bounds of the ``ci_kind`` interval of mass ``ci_prob`` over draws.

    Parameters
    ----------
    da : xarray.DataArray
        Draws over ``(chain, draw)`` and any other dims.
    ci_prob : float
        Probability mass of the interval.
    ci_kind : {"hdi", "eti"}
        Highest-density (:func:`arviz.hdi`) or equal-tailed (:func:`arviz.eti`).

    Returns
    -------
    low, high : xarray.DataArray
        Over the other dims of ``da``.
    """
    check_interval(ci_prob, ci_kind)
    bounds = (az.hdi if ci_kind == "hdi" else az.eti)(da, prob=ci_prob)
    return bounds.sel(ci_bound="lower", drop=True), bounds.sel(ci_bound="upper", drop=True)


def separability(
    dt: xr.DataTree,
    *,
    tau: float = DEFAULT_TAU,
    ci_prob: float = DEFAULT_CI_PROB,
    ci_kind: str = DEFAULT_CI_KIND,
    group: str = "posterior",
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

    Returns
    -------
    xarray.Dataset
        Over ``benchmark``: ``rho_median``, ``rho_hdi_low``, ``rho_hdi_high``,
        ``p_separable`` = P(|rho| < tau | data), ``unexplained_median`` (1 - rho^2),
        ``loading_median``; coordinates ``display_name``, ``role``, ``area``.
    """
    if not 0 < tau < 1:
        raise ValueError("tau must be between 0 and 1")
    rho = dt[group]["rho"]
    low, high = credible_interval(rho, ci_prob=ci_prob, ci_kind=ci_kind)
    out = xr.Dataset(
        {
            "rho_median": rho.median(SAMPLE_DIMS),
            "rho_hdi_low": low,
            "rho_hdi_high": high,
            "p_separable": (np.abs(rho) < tau).mean(SAMPLE_DIMS),
            "unexplained_median": (1 - rho**2).median(SAMPLE_DIMS),
            "loading_median": dt[group]["loading"].median(SAMPLE_DIMS),
        }
    )
    const = dt["constant_data"]
    for name in ("display_name", "role", "area"):
        out = out.assign_coords({name: ("benchmark", const[f"benchmark_{name}"].values)})
    out.attrs.update(tau=tau, ci_prob=ci_prob, ci_kind=ci_kind)
    return out


def area_loadings(
    dt: xr.DataTree,
    *,
    ci_prob: float = DEFAULT_CI_PROB,
    ci_kind: str = DEFAULT_CI_KIND,
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
    low, high = credible_interval(mean, ci_prob=ci_prob, ci_kind=ci_kind)
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
    "p_separable",
    "unexplained_median",
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


def format_separability(
    table: pd.DataFrame,
    tau: float,
    *,
    ci_prob: float = DEFAULT_CI_PROB,
    ci_kind: str = DEFAULT_CI_KIND,
) -> str:
    """Readable text of :func:`separability_table`, grouped by area."""
    width = min(int(table["display_name"].str.len().max()), 44) + 2
    head = (
        f"{'benchmark':<{width}}{'rho':>7}{interval_label(ci_prob, ci_kind):>17}"
        f"{f'P(|rho|<{tau:g})':>14}"
        f"{'unexpl.':>9}{'paper':>8}"
    )
    lines = []
    for area, group in table.groupby("area", sort=False):
        lines += [f"== {area} ==", head]
        for r in group.itertuples():
            base = (
                "   n/a"
                if not np.isfinite(r.baseline_correlation)
                else (f"{r.baseline_correlation:+.2f}")
            )
            lines.append(
                f"{r.display_name[: width - 2]:<{width}}{r.rho_median:>+7.2f}"
                f"   [{r.rho_hdi_low:+.2f}, {r.rho_hdi_high:+.2f}]{r.p_separable:>14.2f}"
                f"{r.unexplained_median:>9.2f}{base:>8}"
            )
        lines.append("")
    return "\n".join(lines)
