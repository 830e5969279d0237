"""Benchmark designs within one fit: which benchmark is less entangled with capability?

:func:`compare_benchmarks` works on the joint posterior of the benchmarks' capability
correlations ``rho``: the posterior of ``|rho_A| - |rho_B|``, the probability
``P(|rho_A| < |rho_B|)``, and for more benchmarks a ranking by posterior mean ``|rho|``
with the matrix of pairwise probabilities. Because all ``rho`` come from one joint
posterior, the comparison accounts for their correlation (shared capability scores).

With K > 1 capability dimensions (``ModelConfig.capability_dims``) ``rho`` is the
correlation with the general factor only; the same comparison of the subspace ``R``
(``subspace_r``: the multiple correlation with all K dimensions, what the fit's
separability verdict reads) is made beside it, and reported next to every ``|rho|``
result: a benchmark can be free of the general factor yet load on a further capability
axis. The comparison's readable text and JSON are in :mod:`safetywash.analysis.design_text`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from safetywash.analysis.fits import aggregate_of
from safetywash.analysis.intervals import (
    CI_KIND,
    CI_PROB,
    SAMPLE_DIMS,
    check_interval,
    interval_bounds,
)
from safetywash.analysis.latent import capability_dims_of
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.data.names import close_matches
from safetywash.inference.fitfile import benchmark_table, excluded_benchmarks, fit_config


class BenchmarkNotInFitError(ValueError):
    """A benchmark key asked for is not a benchmark of the fit."""


def check_benchmarks(
    dt: xr.DataTree, keys: Sequence[str], *, group: str = "posterior"
) -> list[str]:
    """Validate benchmark keys against a fit.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    keys : sequence of str
        Benchmark keys (at least two, all different).
    group : str
        Group holding ``rho``.

    Returns
    -------
    list of str

    Raises
    ------
    BenchmarkNotInFitError
        For a key that is not in the fit, with close matches; a key the fit left out (a
        part of an aggregate at the default aggregate level, or excluded) says so, with
        its aggregate when the fit's catalog names one
        (:func:`safetywash.analysis.fits.aggregate_of`).
    ValueError
        For fewer than two keys or repeated keys.
    """
    keys = [str(k) for k in keys]
    if len(keys) < 2:
        raise ValueError("give at least two benchmarks to compare")
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"benchmark(s) {repeated} given more than once")
    known = [str(b) for b in dt[group]["benchmark"].values]
    excluded = set(excluded_benchmarks(dt))
    for key in keys:
        if key in known:
            continue
        close = close_matches(key, known, n=5, cutoff=0.5)
        if key in excluded:
            level = fit_config(dt).level
            parent = aggregate_of(dt, key)
            hint = f" (its aggregate is {parent!r})" if parent else ""
            raise BenchmarkNotInFitError(
                f"benchmark {key!r} is not in this fit: the fit is at the {level!r} level "
                f"and {key!r} was left out of it (a part of an aggregate, or excluded by "
                f"the catalog){hint}. Compare its aggregate, or refit "
                f"with --level parts{close}"
            )
        raise BenchmarkNotInFitError(
            f"benchmark {key!r} is not in this fit ({len(known)} benchmarks){close}"
        )
    return keys


def abs_rho_difference(
    dt: xr.DataTree, first: str, second: str, *, group: str = "posterior"
) -> xr.DataArray:
    """Posterior draws of ``|rho_first| - |rho_second|``.

    Negative values mean the first benchmark is less capability-entangled.

    Returns
    -------
    xarray.DataArray
        Over ``(chain, draw)``.
    """
    check_benchmarks(dt, [first, second], group=group)
    rho = np.abs(dt[group]["rho"])
    diff = rho.sel(benchmark=first, drop=True) - rho.sel(benchmark=second, drop=True)
    return diff.rename("abs_rho_difference")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank 1 = smallest value (ties in order)."""
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(1, len(values) + 1)
    return rank


def _benchmark_names(dt: xr.DataTree, keys: list[str]) -> dict[str, np.ndarray]:
    """``display_name``, ``area`` and ``role`` of ``keys`` from the fit's metadata."""
    meta = benchmark_table(dt).loc[keys]
    return {name: meta[name].to_numpy() for name in ("display_name", "area", "role")}


#: Names of the comparison's variables: by ``|rho|``, and by the subspace ``R``.
ABS_RHO_NAMES = (
    "abs_rho_mean",
    "abs_rho_median",
    "p_separable",
    "prob_less_entangled",
    "difference_median",
    "difference_hdi_low",
    "difference_hdi_high",
)
SUBSPACE_NAMES = (
    "subspace_r_mean",
    "subspace_r_median",
    "p_separable_subspace",
    "prob_less_entangled_subspace",
    "subspace_difference_median",
    "subspace_difference_hdi_low",
    "subspace_difference_hdi_high",
)


def _entanglement(values: xr.DataArray, names, tau: float, ci_prob, ci_kind) -> dict:
    """Mean, median, P(< tau) of ``values`` per benchmark; over ``(benchmark, other)`` the
    probability of being lower and the posterior of the difference (NaN on the diagonal)."""
    other = values.rename(benchmark="other")
    diff = values - other
    mask = xr.DataArray(~np.eye(values.sizes["benchmark"], dtype=bool), dims=("benchmark", "other"))
    low, high = interval_bounds(diff, ci_prob=ci_prob, ci_kind=ci_kind)
    parts = (
        values.mean(SAMPLE_DIMS),
        values.median(SAMPLE_DIMS),
        (values < tau).mean(SAMPLE_DIMS),
        (values < other).mean(SAMPLE_DIMS).where(mask),
        diff.median(SAMPLE_DIMS).where(mask),
        low.where(mask),
        high.where(mask),
    )
    return dict(zip(names, parts, strict=True))


def compare_benchmarks(
    dt: xr.DataTree,
    benchmarks: Sequence[str],
    *,
    tau: float = DEFAULT_TAU,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    group: str = "posterior",
) -> xr.Dataset:
    """Compare the capability entanglement of benchmarks of one fit.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit with ``rho`` (``benchmark``) in ``group``.
    benchmarks : sequence of str
        Two or more benchmark keys of the fit.
    tau : float
        Separability threshold: ``P(separable) = P(|rho| < tau)``.
    ci_prob, ci_kind : float, str
        Mass and kind of the intervals of the differences.
    group : str
        Group holding the draws.

    Returns
    -------
    xarray.Dataset
        Over ``benchmark`` (in the order given): ``abs_rho_mean``, ``abs_rho_median``,
        ``p_separable`` and ``rank`` (1 = least entangled, by posterior mean ``|rho|``);
        over ``(benchmark, other)``: ``prob_less_entangled`` = ``P(|rho_i| < |rho_j|)``,
        and the posterior ``difference_median``, ``difference_hdi_low`` and
        ``difference_hdi_high`` (the ``ci_kind`` interval) of ``|rho_i| - |rho_j|`` (NaN on
        the diagonal). With K > 1 capability dimensions also the same of the subspace
        ``R``: ``subspace_r_mean``, ``subspace_r_median``, ``p_separable_subspace``
        (``P(R < tau)``), ``prob_less_entangled_subspace`` (``P(R_i < R_j)``),
        ``subspace_difference_median``, ``subspace_difference_hdi_low``,
        ``subspace_difference_hdi_high``. Coordinates ``display_name``, ``area``, ``role``;
        attrs ``tau``, ``ci_prob``, ``ci_kind``, ``n_draws``, ``capability_dims``.
    """
    if not 0 < tau < 1:
        raise ValueError("tau must be between 0 and 1")
    check_interval(ci_prob, ci_kind)
    keys = check_benchmarks(dt, benchmarks, group=group)
    post = dt[group]
    rho = np.abs(post["rho"].sel(benchmark=keys))
    parts = _entanglement(rho, ABS_RHO_NAMES, tau, ci_prob, ci_kind)
    parts["rank"] = ("benchmark", _ranks(parts["abs_rho_mean"].values))
    if "subspace_r" in post.data_vars:
        r = post["subspace_r"].sel(benchmark=keys)
        parts.update(_entanglement(r, SUBSPACE_NAMES, tau, ci_prob, ci_kind))
    out = xr.Dataset(parts)
    names = _benchmark_names(dt, keys)
    out = out.assign_coords(
        benchmark=keys,
        other=keys,
        **{name: ("benchmark", values) for name, values in names.items()},
    )
    out["rho_median"] = dt[group]["rho"].sel(benchmark=keys).median(SAMPLE_DIMS)
    n_draws = int(dt[group].sizes["chain"] * dt[group].sizes["draw"])
    out.attrs.update(tau=tau, ci_prob=ci_prob, ci_kind=ci_kind, n_draws=n_draws)
    out.attrs["capability_dims"] = capability_dims_of(dt, group=group)
    return out
