"""Benchmark designs within one fit: which benchmark is less entangled with capability?

:func:`compare_benchmarks` works on the joint posterior of the benchmarks' capability
correlations ``rho``: the posterior of ``|rho_A| - |rho_B|``, the probability
``P(|rho_A| < |rho_B|)``, and for more benchmarks a ranking by posterior mean ``|rho|``
with the matrix of pairwise probabilities. Because all ``rho`` come from one joint
posterior, the comparison accounts for their correlation (shared capability scores).
"""

from __future__ import annotations

import itertools
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
    interval_label,
)
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
        the diagonal). Coordinates ``display_name``, ``area``, ``role``; attrs ``tau``,
        ``ci_prob``, ``ci_kind``, ``n_draws``.
    """
    if not 0 < tau < 1:
        raise ValueError("tau must be between 0 and 1")
    check_interval(ci_prob, ci_kind)
    keys = check_benchmarks(dt, benchmarks, group=group)
    rho = np.abs(dt[group]["rho"].sel(benchmark=keys))
    other = rho.rename(benchmark="other")
    diff = rho - other
    mask = xr.DataArray(~np.eye(len(keys), dtype=bool), dims=("benchmark", "other"))
    low, high = interval_bounds(diff, ci_prob=ci_prob, ci_kind=ci_kind)
    mean = rho.mean(SAMPLE_DIMS)
    out = xr.Dataset(
        {
            "abs_rho_mean": mean,
            "abs_rho_median": rho.median(SAMPLE_DIMS),
            "p_separable": (rho < tau).mean(SAMPLE_DIMS),
            "rank": ("benchmark", _ranks(mean.values)),
            "prob_less_entangled": (rho < other).mean(SAMPLE_DIMS).where(mask),
            "difference_median": diff.median(SAMPLE_DIMS).where(mask),
            "difference_hdi_low": low.where(mask),
            "difference_hdi_high": high.where(mask),
        }
    )
    names = _benchmark_names(dt, keys)
    out = out.assign_coords(
        benchmark=keys,
        other=keys,
        **{name: ("benchmark", values) for name, values in names.items()},
    )
    out["rho_median"] = dt[group]["rho"].sel(benchmark=keys).median(SAMPLE_DIMS)
    n_draws = int(dt[group].sizes["chain"] * dt[group].sizes["draw"])
    out.attrs.update(tau=tau, ci_prob=ci_prob, ci_kind=ci_kind, n_draws=n_draws)
    return out


def _name(ds: xr.Dataset, key: str) -> str:
    return str(ds["display_name"].sel(benchmark=key).item())


def _interval(ds: xr.Dataset) -> str:
    return interval_label(ds.attrs["ci_prob"], ds.attrs["ci_kind"])


def describe_pair(ds: xr.Dataset, first: str, second: str) -> str:
    """A plain sentence: which of two benchmarks is less capability-entangled, how surely.

    The benchmark more probably less entangled is named first.
    """
    p = float(ds["prob_less_entangled"].sel(benchmark=first, other=second))
    a, b = (first, second) if p >= 0.5 else (second, first)
    prob = p if p >= 0.5 else 1 - p
    diff = ds.sel(benchmark=a, other=b)
    return (
        f"{_name(ds, a)} is less capability-entangled than {_name(ds, b)} with probability "
        f"{format_probability(prob, ds.attrs['n_draws'])} (|rho| difference "
        f"{float(diff.difference_median):+.2f}, {_interval(ds)} "
        f"[{float(diff.difference_hdi_low):+.2f}, {float(diff.difference_hdi_high):+.2f}])."
    )


def format_probability(p: float, n_draws: int | None = None) -> str:
    """A posterior probability to two decimals, without rounding a near-certainty to 1.

    With ``n_draws`` draws, 1 (0) means that every (no) draw agreed: shown as
    ``"> 0.99 (all N draws)"`` (``"< 0.01 (no draw of N)"``).
    """
    if n_draws and p >= 1.0:
        return f"> 0.99 (all {n_draws} draws)"
    if n_draws and p <= 0.0:
        return f"< 0.01 (no draw of {n_draws})"
    if 0.99 < p < 1.0:
        return "> 0.99"
    if 0.0 < p < 0.01:
        return "< 0.01"
    return f"{p:.2f}"


def _every_draw_note(p: float, n_draws: int | None) -> str:
    if n_draws and p in (0.0, 1.0):
        return f" ({'every' if p else 'no'} one of the {n_draws} draws)"
    return ""


def _ranked(ds: xr.Dataset) -> list[str]:
    keys = [str(k) for k in ds["benchmark"].values]
    return sorted(keys, key=lambda k: int(ds["rank"].sel(benchmark=k)))


def _pair_lines(ds: xr.Dataset, a: str, b: str) -> list[str]:
    d = ds.sel(benchmark=a, other=b)
    return [
        f"|rho| of {_name(ds, a)} ({a}) minus |rho| of {_name(ds, b)} ({b}):",
        f"  median {float(d.difference_median):+.3f}, {_interval(ds)} "
        f"[{float(d.difference_hdi_low):+.3f}, {float(d.difference_hdi_high):+.3f}]",
        f"  P(|rho_{a}| < |rho_{b}|) = {float(d.prob_less_entangled):.3f}"
        + _every_draw_note(float(d.prob_less_entangled), ds.attrs["n_draws"]),
        "",
    ]


def _ranking_lines(ds: xr.Dataset) -> list[str]:
    ranked = _ranked(ds)
    tau = ds.attrs["tau"]
    width = min(max(len(_name(ds, k)) for k in ranked), 48) + 2
    lines = [
        "Ranking (least capability-entangled first):",
        f"  {'#':>2}  {'benchmark':<{width}}{'rho':>7}{'mean |rho|':>11}{f'P(|rho|<{tau:g})':>15}",
    ]
    for k in ranked:
        r = ds.sel(benchmark=k)
        lines.append(
            f"  {int(r['rank']):>2}  {_name(ds, k)[: width - 2]:<{width}}"
            f"{float(r.rho_median):>+7.2f}{float(r.abs_rho_mean):>11.2f}{float(r.p_separable):>15.2f}"
        )
    return lines


def _matrix_lines(ds: xr.Dataset) -> list[str]:
    ranked = _ranked(ds)
    col = max(max(len(k) for k in ranked), 6) + 1
    lines = [
        "",
        "P(|rho_row| < |rho_column|):",
        " " * (col + 2) + "".join(f"{k[: col - 1]:>{col}}" for k in ranked),
    ]
    for k in ranked:
        cells = []
        for j in ranked:
            v = float(ds["prob_less_entangled"].sel(benchmark=k, other=j))
            cells.append(f"{'-' if np.isnan(v) else f'{v:.2f}':>{col}}")
        lines.append(f"  {k[: col - 1]:<{col}}" + "".join(cells))
    return lines


def format_benchmark_comparison(ds: xr.Dataset) -> str:
    """Readable report of :func:`compare_benchmarks`: pair sentence or ranking and matrix."""
    keys = [str(k) for k in ds["benchmark"].values]
    lines = _pair_lines(ds, *keys) if len(keys) == 2 else []
    lines += _ranking_lines(ds)
    if len(keys) > 2:
        lines += _matrix_lines(ds)
    lines.append("")
    if len(keys) == 2:
        lines.append(describe_pair(ds, *keys))
    else:
        lines += [describe_pair(ds, a, b) for a, b in itertools.pairwise(_ranked(ds))]
    return "\n".join(lines)


def _nan_to_none(value: float):
    return None if not np.isfinite(value) else float(value)


def benchmark_comparison_json(ds: xr.Dataset) -> dict:
    """JSON-ready dictionary of :func:`compare_benchmarks`.

    With two benchmarks ``A, B``: ``benchmarks``, ``prob_first_less_entangled``
    (``P(|rho_A| < |rho_B|)``), ``difference_median`` and ``difference_hdi`` (the
    ``ci_kind`` interval) of ``|rho_A| - |rho_B|``, and ``sentence``; always ``ci_prob``,
    ``ci_kind``, ``tau``, ``ranking`` and ``pairwise_prob_less_entangled``
    (``matrix[i][j] = P(|rho_i| < |rho_j|)`` in the order of ``benchmarks``).
    """
    keys = [str(k) for k in ds["benchmark"].values]
    out: dict = {"benchmarks": keys}
    if len(keys) == 2:
        a, b = keys
        d = ds.sel(benchmark=a, other=b)
        out.update(
            prob_first_less_entangled=float(d.prob_less_entangled),
            difference_median=float(d.difference_median),
            difference_hdi=[float(d.difference_hdi_low), float(d.difference_hdi_high)],
            sentence=describe_pair(ds, a, b),
        )
    out.update(
        ci_prob=float(ds.attrs["ci_prob"]),
        ci_kind=str(ds.attrs["ci_kind"]),
        tau=float(ds.attrs["tau"]),
        n_draws=int(ds.attrs["n_draws"]),
    )
    out["ranking"] = [
        {
            "rank": int(ds["rank"].sel(benchmark=k)),
            "benchmark": k,
            "display_name": _name(ds, k),
            "rho_median": float(ds["rho_median"].sel(benchmark=k)),
            "abs_rho_mean": float(ds["abs_rho_mean"].sel(benchmark=k)),
            "p_separable": float(ds["p_separable"].sel(benchmark=k)),
        }
        for k in _ranked(ds)
    ]
    matrix = ds["prob_less_entangled"].sel(benchmark=keys, other=keys).values
    out["pairwise_prob_less_entangled"] = {
        "benchmarks": keys,
        "matrix": [[_nan_to_none(v) for v in row] for row in matrix],
    }
    return out
