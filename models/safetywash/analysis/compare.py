"""Comparisons: benchmark designs within one fit, and model structures across fits.

Benchmark designs
    Which of two (or more) benchmarks of the same study is less entangled with capability?
    :func:`compare_benchmarks` works on the joint posterior of their capability
    correlations ``rho``: the posterior of ``|rho_A| - |rho_B|``, the probability
    ``P(|rho_A| < |rho_B|)``, and for more benchmarks a ranking by posterior mean ``|rho|``
    with the matrix of pairwise probabilities. Because all ``rho`` come from one joint
    posterior, the comparison accounts for their correlation (shared capability scores).

Model structures
    Is a separate factor for a safety area supported by the data? :func:`compare_structures`
    compares fits of the same study with different ``factors`` by their expected log
    predictive density (PSIS-LOO, :func:`arviz.loo`), at one of three levels:

    * ``"cell"``: leave one score out (the stored pointwise log-likelihood);
    * ``"llm"``: leave one LLM out, summing the stored log-likelihood of an LLM's cells
      before PSIS (the LLM's latent variables stay conditioned on its own scores, so the
      importance ratios are extreme and Pareto k are usually high);
    * ``"llm-marginal"``: leave one LLM out with its latent capability (and area factors)
      integrated out in closed form given each draw's benchmark parameters (the model is
      Gaussian in them; see :mod:`safetywash.analysis.newllm`), i.e. ``log p(y_i | benchmarks)``.
      This predicts a new LLM's whole score vector and usually has far better Pareto k.

    ``"auto"`` computes all three and uses the one with the smallest share of Pareto k
    above the PSIS threshold (ties: ``llm-marginal``, then ``cell``, then ``llm``). Fits with
    ``capability="marginal"`` store a per-LLM log-likelihood only: with them, only
    ``"llm-marginal"`` is available.
"""

from __future__ import annotations

import difflib
import itertools
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from safetywash.analysis.separability import DEFAULT_CI_PROB, DEFAULT_TAU
from safetywash.inference.fitfile import FitMismatchError, fit_config, load_fit

SAMPLE_DIMS = ("chain", "draw")
LOO_METHODS = ("auto", "cell", "llm", "llm-marginal")
#: Order of preference between LOO levels with equally many high Pareto k.
LOO_PREFERENCE = ("llm-marginal", "cell", "llm")
DEFAULT_SE_MULTIPLE = 2.0


class BenchmarkNotInFitError(ValueError):
    """A benchmark key asked for is not a benchmark of the fit."""


def open_fit(path: str | Path, **kwargs) -> xr.DataTree:
    """Load a fit from a run folder (its ``posterior.nc``) or a ``.nc`` file.

    Parameters
    ----------
    path : str or pathlib.Path
        A folder written by ``scripts/fit.py`` or a NetCDF fit file.
    **kwargs
        Passed to :func:`safetywash.inference.fitfile.load_fit`.

    Returns
    -------
    xarray.DataTree
    """
    path = Path(path)
    if path.is_dir():
        path = path / "posterior.nc"
    return load_fit(path, **kwargs)


# =========================================================================== benchmark designs


def _parent_hint(dt: xr.DataTree, key: str) -> str:
    """Best-effort parent aggregate of a left-out key, from the dataset's shipped catalog."""
    try:
        from safetywash.data.catalog import load_catalog

        catalog = load_catalog(str(dt.attrs.get("study_name", "")).split("-")[0])
        parent = str(catalog.loc[key, "parent"]) if key in catalog.index else ""
    except Exception:  # no shipped catalog for this study: no hint
        return ""
    return f" (its aggregate is {parent!r})" if parent else ""


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
        part of an aggregate at the default aggregate level, or excluded) says so.
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
    excluded = set(json.loads(dt.attrs.get("excluded_benchmarks", "[]")))
    level = json.loads(dt.attrs.get("model_config", "{}")).get("level", "aggregate")
    for key in keys:
        if key in known:
            continue
        near = difflib.get_close_matches(key, known, n=5, cutoff=0.5)
        close = f"; close matches: {near}" if near else ""
        if key in excluded:
            raise BenchmarkNotInFitError(
                f"benchmark {key!r} is not in this fit: the fit is at the {level!r} level "
                f"and {key!r} was left out of it (a part of an aggregate, or excluded by "
                f"the catalog){_parent_hint(dt, key)}. Compare its aggregate, or refit "
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


def compare_benchmarks(
    dt: xr.DataTree,
    benchmarks: Sequence[str],
    *,
    tau: float = DEFAULT_TAU,
    ci_prob: float = DEFAULT_CI_PROB,
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
    ci_prob : float
        Mass of the highest-density intervals of the differences.
    group : str
        Group holding the draws.

    Returns
    -------
    xarray.Dataset
        Over ``benchmark`` (in the order given): ``abs_rho_mean``, ``abs_rho_median``,
        ``p_separable`` and ``rank`` (1 = least entangled, by posterior mean ``|rho|``);
        over ``(benchmark, other)``: ``prob_less_entangled`` = ``P(|rho_i| < |rho_j|)``,
        and the posterior ``difference_median``, ``difference_hdi_low`` and
        ``difference_hdi_high`` of ``|rho_i| - |rho_j|`` (NaN on the diagonal).
        Coordinates ``display_name``, ``area``, ``role``; attrs ``tau``, ``ci_prob``.
    """
    if not 0 < tau < 1:
        raise ValueError("tau must be between 0 and 1")
    if not 0 < ci_prob < 1:
        raise ValueError("ci_prob must be between 0 and 1")
    keys = check_benchmarks(dt, benchmarks, group=group)
    rho = np.abs(dt[group]["rho"].sel(benchmark=keys))
    other = rho.rename(benchmark="other")
    diff = rho - other
    n = len(keys)
    off = ~np.eye(n, dtype=bool)
    mask = xr.DataArray(off, dims=("benchmark", "other"))
    prob = (rho < other).mean(SAMPLE_DIMS).where(mask)
    bounds = az.hdi(diff, prob=ci_prob)
    mean = rho.mean(SAMPLE_DIMS)
    order = np.argsort(mean.values, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    out = xr.Dataset(
        {
            "abs_rho_mean": mean,
            "abs_rho_median": rho.median(SAMPLE_DIMS),
            "p_separable": (rho < tau).mean(SAMPLE_DIMS),
            "rank": ("benchmark", rank),
            "prob_less_entangled": prob,
            "difference_median": diff.median(SAMPLE_DIMS).where(mask),
            "difference_hdi_low": bounds.sel(ci_bound="lower", drop=True).where(mask),
            "difference_hdi_high": bounds.sel(ci_bound="upper", drop=True).where(mask),
        }
    )
    const = dt["constant_data"]
    names = {}
    for name in ("display_name", "area", "role"):
        values = pd.Series(
            np.asarray(const[f"benchmark_{name}"].values, dtype=str),
            index=np.asarray(const["benchmark"].values, dtype=str),
        )
        names[name] = values.loc[keys].to_numpy()
    out = out.assign_coords(
        benchmark=keys,
        other=keys,
        display_name=("benchmark", names["display_name"]),
        area=("benchmark", names["area"]),
        role=("benchmark", names["role"]),
    )
    out["rho_median"] = dt[group]["rho"].sel(benchmark=keys).median(SAMPLE_DIMS)
    n_draws = int(dt[group].sizes["chain"] * dt[group].sizes["draw"])
    out.attrs.update(tau=tau, ci_prob=ci_prob, n_draws=n_draws)
    return out


def _name(ds: xr.Dataset, key: str) -> str:
    return str(ds["display_name"].sel(benchmark=key).item())


def describe_pair(ds: xr.Dataset, first: str, second: str) -> str:
    """A plain sentence: which of two benchmarks is less capability-entangled, how surely.

    The benchmark more probably less entangled is named first.
    """
    p = float(ds["prob_less_entangled"].sel(benchmark=first, other=second))
    a, b = (first, second) if p >= 0.5 else (second, first)
    prob = p if p >= 0.5 else 1 - p
    diff = ds.sel(benchmark=a, other=b)
    pct = f"{100 * ds.attrs['ci_prob']:g}%"
    return (
        f"{_name(ds, a)} is less capability-entangled than {_name(ds, b)} with probability "
        f"{format_probability(prob, ds.attrs.get('n_draws'))} (|rho| difference "
        f"{float(diff.difference_median):+.2f}, {pct} HDI "
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


def format_benchmark_comparison(ds: xr.Dataset) -> str:
    """Readable report of :func:`compare_benchmarks`: pair sentence or ranking and matrix."""
    keys = [str(k) for k in ds["benchmark"].values]
    tau = ds.attrs["tau"]
    lines = []
    if len(keys) == 2:
        a, b = keys
        d = ds.sel(benchmark=a, other=b)
        pct = f"{100 * ds.attrs['ci_prob']:g}%"
        lines += [
            f"|rho| of {_name(ds, a)} ({a}) minus |rho| of {_name(ds, b)} ({b}):",
            f"  median {float(d.difference_median):+.3f}, {pct} HDI "
            f"[{float(d.difference_hdi_low):+.3f}, {float(d.difference_hdi_high):+.3f}]",
            f"  P(|rho_{a}| < |rho_{b}|) = {float(d.prob_less_entangled):.3f}"
            + _every_draw_note(float(d.prob_less_entangled), ds.attrs.get("n_draws")),
            "",
        ]
    ranked = sorted(keys, key=lambda k: int(ds["rank"].sel(benchmark=k)))
    width = min(max(len(_name(ds, k)) for k in keys), 48) + 2
    lines += [
        "Ranking (least capability-entangled first):",
        f"  {'#':>2}  {'benchmark':<{width}}{'rho':>7}{'mean |rho|':>11}{f'P(|rho|<{tau:g})':>15}",
    ]
    for k in ranked:
        r = ds.sel(benchmark=k)
        lines.append(
            f"  {int(r['rank']):>2}  {_name(ds, k)[: width - 2]:<{width}}"
            f"{float(r.rho_median):>+7.2f}{float(r.abs_rho_mean):>11.2f}{float(r.p_separable):>15.2f}"
        )
    if len(keys) > 2:
        col = max(max(len(k) for k in ranked), 6) + 1
        lines += [
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
    lines.append("")
    if len(keys) == 2:
        lines.append(describe_pair(ds, *keys))
    else:
        lines += [describe_pair(ds, a, b) for a, b in itertools.pairwise(ranked)]
    return "\n".join(lines)


def _every_draw_note(p: float, n_draws: int | None) -> str:
    if n_draws and p in (0.0, 1.0):
        return f" ({'every' if p else 'no'} one of the {n_draws} draws)"
    return ""


def _nan_to_none(value: float):
    return None if not np.isfinite(value) else float(value)


def benchmark_comparison_json(ds: xr.Dataset) -> dict:
    """JSON-ready dictionary of :func:`compare_benchmarks`.

    With two benchmarks ``A, B``: ``benchmarks``, ``prob_first_less_entangled``
    (``P(|rho_A| < |rho_B|)``), ``difference_median`` and ``difference_hdi`` of
    ``|rho_A| - |rho_B|``, and ``sentence``; always ``ci_prob``, ``tau``, ``ranking`` and
    ``pairwise_prob_less_entangled`` (``matrix[i][j] = P(|rho_i| < |rho_j|)`` in the order
    of ``benchmarks``).
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
        tau=float(ds.attrs["tau"]),
        n_draws=int(ds.attrs.get("n_draws", 0)),
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
        for k in sorted(keys, key=lambda k: int(ds["rank"].sel(benchmark=k)))
    ]
    matrix = ds["prob_less_entangled"].sel(benchmark=keys, other=keys).values
    out["pairwise_prob_less_entangled"] = {
        "benchmarks": keys,
        "matrix": [[_nan_to_none(v) for v in row] for row in matrix],
    }
    return out


# =========================================================================== model structures


def llm_log_likelihood(dt: xr.DataTree, *, var_name: str = "score") -> xr.DataArray:
    """The stored pointwise log-likelihood summed over each LLM's cells.

    Returns
    -------
    xarray.DataArray
        Over ``(chain, draw, llm)`` (cells mapped to LLMs by ``constant_data.llm_index``).
    """
    ll = dt["log_likelihood"][var_name].astype("float64")
    const = dt["constant_data"]
    llms = np.asarray(const["llm"].values, dtype=str)
    idx = np.asarray(const["llm_index"].values, dtype=np.int64)
    onehot = np.zeros((len(idx), len(llms)))
    onehot[np.arange(len(idx)), idx] = 1.0
    summed = xr.dot(ll, xr.DataArray(onehot, dims=("cell", "llm")), dim="cell")
    return summed.assign_coords(llm=llms).transpose("chain", "draw", "llm").rename(var_name)


def marginal_llm_log_likelihood(
    dt: xr.DataTree, *, group: str = "posterior", var_name: str = "score"
) -> xr.DataArray:
    """Per-draw ``log p(y_i | benchmark parameters)`` with each LLM's latents integrated out.

    For each draw and LLM ``i`` the scores ``y_i`` are jointly Gaussian once capability
    (prior: its population's distribution, :func:`safetywash.analysis.newllm.capability_prior`) and
    area factors (prior ``Normal(0, 1)``) are integrated out; see
    :func:`safetywash.analysis.newllm.gaussian_latent_posterior`. For a one-factor fit this is the
    log-likelihood a ``capability="marginal"`` fit stores.

    Returns
    -------
    xarray.DataArray
        Over ``(chain, draw, llm)``.
    """
    from safetywash.analysis.newllm import (
        benchmark_parameters,
        capability_prior,
        gaussian_latent_posterior,
        latent_prior,
    )

    params = benchmark_parameters(dt, group=group)
    const = dt["constant_data"]
    llms = np.asarray(const["llm"].values, dtype=str)
    pops = np.asarray(const["population_label"].values, dtype=str)
    llm_idx = np.asarray(const["llm_index"].values, dtype=np.int64)
    bench_idx = np.asarray(const["benchmark_index"].values, dtype=np.int64)
    y_all = np.asarray(dt["observed_data"][var_name].values, dtype=float)
    priors = {p: latent_prior(params, *capability_prior(dt, p, group=group)) for p in set(pops)}
    out = np.empty((params.intercept.shape[0], len(llms)))
    for i in range(len(llms)):
        cells = np.flatnonzero(llm_idx == i)
        b = bench_idx[cells]
        _, _, logp = gaussian_latent_posterior(
            y_all[cells],
            params.intercept[:, b],
            params.design(b),
            params.residual_sd[:, b],
            *priors[pops[i]],
        )
        out[:, i] = logp
    return xr.DataArray(
        out.reshape(params.chains, params.draws, len(llms)),
        dims=("chain", "draw", "llm"),
        coords={
            "chain": dt[group]["chain"].values,
            "draw": dt[group]["draw"].values,
            "llm": llms,
        },
        name=var_name,
    )


def relative_efficiency(dt: xr.DataTree, *, group: str = "posterior") -> float:
    """Mean relative ESS of the posterior, as :func:`arviz.loo` computes it by default."""
    post = dt[group].to_dataset()
    n = post.sizes["chain"] * post.sizes["draw"]
    if post.sizes["chain"] == 1:
        return 1.0
    ess = az.ess(post, method="mean")
    values = np.hstack([np.asarray(ess[v].values).ravel() for v in ess.data_vars])
    return float(np.nanmean(values) / n)


def available_loo_methods(dt: xr.DataTree) -> list[str]:
    """LOO levels a fit supports, in :data:`LOO_PREFERENCE` order.

    A fit with ``capability="marginal"`` stores a per-LLM log-likelihood with capability
    already integrated out, so only ``llm-marginal`` applies to it.
    """
    if "llm" in dt["log_likelihood"]["score"].dims:
        return ["llm-marginal"]
    return list(LOO_PREFERENCE)


def pointwise_log_likelihood(dt: xr.DataTree, method: str) -> xr.DataArray:
    """The log-likelihood PSIS-LOO uses at one level (``cell``, ``llm``, ``llm-marginal``)."""
    if method in ("cell", "llm") and method not in available_loo_methods(dt):
        raise ValueError(
            f"LOO level {method!r} needs the per-score log-likelihood, but this fit integrates "
            "capability out (capability='marginal') and stores it per LLM: use 'llm-marginal'"
        )
    if method == "cell":
        return dt["log_likelihood"]["score"].astype("float64")
    if method == "llm":
        return llm_log_likelihood(dt)
    if method == "llm-marginal":
        return marginal_llm_log_likelihood(dt)
    raise ValueError(f"LOO level must be one of {LOO_METHODS[1:]}, not {method!r}")


def loo_of(dt: xr.DataTree, method: str = "cell", *, reff: float | None = None):
    """PSIS-LOO of a fit at one level (pointwise results kept).

    Parameters
    ----------
    dt : xarray.DataTree
        A fit with ``posterior``, ``log_likelihood``, ``observed_data``, ``constant_data``.
    method : {"cell", "llm", "llm-marginal"}
        What is left out: one score, or one LLM (summed or integrated log-likelihood).
    reff : float, optional
        Relative efficiency (default: :func:`relative_efficiency`).

    Returns
    -------
    arviz_stats.ELPDData
        With ``elpd``, ``se``, ``p``, ``elpd_i``, ``pareto_k`` and ``good_k``.
    """
    ll = pointwise_log_likelihood(dt, method)
    reff = relative_efficiency(dt) if reff is None else reff
    tree = xr.DataTree.from_dict(
        {
            "posterior": dt["posterior"].to_dataset()[["loading"]],
            "log_likelihood": xr.Dataset({"score": ll}),
        }
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Pareto.*")
        return az.loo(tree, pointwise=True, reff=reff)


def check_same_study(fits: Mapping[str, xr.DataTree]) -> None:
    """Raise :class:`FitMismatchError` unless the fits share study, transform and level."""
    names = list(fits)
    ref = fits[names[0]]
    ref_config = fit_config(ref)
    for name in names[1:]:
        dt = fits[name]
        if dt.attrs["study_sha256"] != ref.attrs["study_sha256"]:
            raise FitMismatchError(
                f"fits {names[0]!r} and {name!r} are of different studies (study_sha256 "
                f"{ref.attrs['study_sha256'][:12]}... vs {dt.attrs['study_sha256'][:12]}...): "
                "predictive densities are only comparable on the same data"
            )
        config = fit_config(dt)
        for field in ("transform", "level"):
            if getattr(config, field) != getattr(ref_config, field):
                raise FitMismatchError(
                    f"fits {names[0]!r} and {name!r} differ in {field} "
                    f"({getattr(ref_config, field)!r} vs {getattr(config, field)!r}): their "
                    "log-likelihoods are on different scales and cannot be compared"
                )
        if dt["observed_data"].sizes["cell"] != ref["observed_data"].sizes["cell"]:
            raise FitMismatchError(f"fits {names[0]!r} and {name!r} have different cells")


def _elpd_difference(a, b) -> tuple[float, float]:
    """ELPD of ``a`` minus ``b`` and the SE of the difference, from pointwise values."""
    d = (
        np.asarray(a.elpd_i.values, dtype=float).ravel()
        - np.asarray(b.elpd_i.values, dtype=float).ravel()
    )
    return float(d.sum()), float(np.sqrt(len(d) * d.var(ddof=1)))


def _high_k(loo) -> int:
    return int((np.asarray(loo.pareto_k.values) > loo.good_k).sum())


def compare_structures(
    fits: Mapping[str, xr.DataTree],
    *,
    method: str = "auto",
    se_multiple: float = DEFAULT_SE_MULTIPLE,
) -> xr.Dataset:
    """Compare fits of the same study with different factor structures by PSIS-LOO.

    Parameters
    ----------
    fits : mapping of str -> xarray.DataTree
        Two or more fits of the same study (same ``study_sha256``, transform and level),
        named.
    method : {"auto", "cell", "llm", "llm-marginal"}
        Level of the leave-one-out (see the module docstring).
    se_multiple : float
        A richer structure is *supported* when its ELPD exceeds the simpler one's by more
        than ``se_multiple`` standard errors of the difference.

    Returns
    -------
    xarray.Dataset
        Over ``(fit, loo_method)`` for every computed level: ``elpd``, ``se``, ``p``,
        ``n_high_k`` (Pareto k above ``good_k``) and over ``loo_method``: ``n_points``,
        ``good_k``; over ``(fit, other)`` for the level used: ``elpd_diff`` (fit minus
        other) and ``elpd_diff_se`` (and over ``(fit, other, loo_method)`` for every level:
        ``elpd_diff_by_level``, ``elpd_diff_se_by_level``); ``weight`` (fit): stacking
        weights of
        :func:`arviz.compare`. Coordinate ``factors`` (fit, comma-separated areas). Attrs
        ``method`` (the level used), ``method_requested``, ``se_multiple``,
        ``study_sha256``.
    """
    if method not in LOO_METHODS:
        raise ValueError(f"method must be one of {LOO_METHODS}, not {method!r}")
    if len(fits) < 2:
        raise ValueError("give at least two fits to compare")
    check_same_study(fits)
    names = list(fits)
    common = [
        m for m in LOO_PREFERENCE if all(m in available_loo_methods(dt) for dt in fits.values())
    ]
    if method != "auto" and method not in common:
        raise ValueError(
            f"LOO level {method!r} is not available for every fit (available for all: "
            f"{common}); fits with capability='marginal' support 'llm-marginal' only"
        )
    methods = common if method == "auto" else [method]
    loos: dict[str, dict[str, object]] = {m: {} for m in methods}
    for name, dt in fits.items():
        reff = relative_efficiency(dt)
        for m in methods:
            loos[m][name] = loo_of(dt, m, reff=reff)
    if method == "auto":

        def badness(m: str) -> tuple[float, int]:
            share = max(
                _high_k(loos[m][n]) / len(loos[m][n].pareto_k.values.ravel()) for n in names
            )
            return share, LOO_PREFERENCE.index(m)

        used = min(methods, key=badness)
    else:
        used = method

    shape = (len(names), len(methods))
    elpd, se, p, high = (np.zeros(shape) for _ in range(4))
    for j, m in enumerate(methods):
        for i, n in enumerate(names):
            loo = loos[m][n]
            elpd[i, j], se[i, j], p[i, j], high[i, j] = loo.elpd, loo.se, loo.p, _high_k(loo)
    diff = np.zeros((len(names), len(names), len(methods)))
    diff_se = np.zeros_like(diff)
    for k, m in enumerate(methods):
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if i != j:
                    diff[i, j, k], diff_se[i, j, k] = _elpd_difference(loos[m][a], loos[m][b])
    u = methods.index(used)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(dict(loos[used]), round_to="none")
    factors = [",".join(fit_config(fits[n]).factors) for n in names]
    out = xr.Dataset(
        {
            "elpd": (("fit", "loo_method"), elpd),
            "se": (("fit", "loo_method"), se),
            "p": (("fit", "loo_method"), p),
            "n_high_k": (("fit", "loo_method"), high.astype(np.int64)),
            "n_points": (
                "loo_method",
                [len(loos[m][names[0]].pareto_k.values.ravel()) for m in methods],
            ),
            "good_k": ("loo_method", [float(loos[m][names[0]].good_k) for m in methods]),
            "elpd_diff": (("fit", "other"), diff[:, :, u]),
            "elpd_diff_se": (("fit", "other"), diff_se[:, :, u]),
            "elpd_diff_by_level": (("fit", "other", "loo_method"), diff),
            "elpd_diff_se_by_level": (("fit", "other", "loo_method"), diff_se),
            "weight": ("fit", table["weight"].reindex(names).to_numpy(dtype=float)),
        },
        coords={
            "fit": names,
            "other": names,
            "loo_method": methods,
            "factors": ("fit", factors),
        },
        attrs={
            "method": used,
            "method_requested": method,
            "se_multiple": se_multiple,
            "study_sha256": next(iter(fits.values())).attrs["study_sha256"],
        },
    )
    return out


def _factor_set(ds: xr.Dataset, name: str) -> frozenset[str]:
    text = str(ds["factors"].sel(fit=name).item())
    return frozenset(a for a in text.split(",") if a)


def structure_verdicts(ds: xr.Dataset) -> list[dict]:
    """Plain-language verdicts on each area factor of the richer fits.

    For every fit and every area ``X`` among its factors, the simpler fit compared with is
    the one whose factors are those of the fit without ``X``; when no such fit was given,
    the fit with the largest proper subset of its factors (the verdict is then joint for
    all areas the two differ by). Supported when the ELPD gain exceeds
    ``se_multiple`` standard errors of the difference.

    Returns
    -------
    list of dict
        Keys ``area``, ``richer``, ``simpler``, ``joint_with`` (other areas the two fits
        differ by), ``elpd_diff``, ``elpd_diff_se``, ``other_levels`` (the difference and
        its SE at the other computed LOO levels), ``supported``, ``reliable`` (no
        Pareto k above the threshold in either fit), ``sentence``.
    """
    names = [str(n) for n in ds["fit"].values]
    used = ds.attrs["method"]
    k_mult = float(ds.attrs["se_multiple"])
    high = ds["n_high_k"].sel(loo_method=used)
    n_points = int(ds["n_points"].sel(loo_method=used))
    unit = "cells" if used == "cell" else "LLMs"
    verdicts = []
    for richer in names:
        mine = _factor_set(ds, richer)
        for area in sorted(mine):
            exact = [n for n in names if _factor_set(ds, n) == mine - {area}]
            subsets = [n for n in names if _factor_set(ds, n) < mine]
            if exact:
                simpler = exact[0]
            elif subsets:
                simpler = max(subsets, key=lambda n: len(_factor_set(ds, n)))
            else:
                continue
            joint = sorted(mine - _factor_set(ds, simpler) - {area})
            d = float(ds["elpd_diff"].sel(fit=richer, other=simpler))
            s = float(ds["elpd_diff_se"].sel(fit=richer, other=simpler))
            supported = d > k_mult * s
            bad = {n: int(high.sel(fit=n)) for n in (richer, simpler) if int(high.sel(fit=n))}
            together = f" (jointly with {', '.join(joint)}: the fits differ by all of them)"
            sentence = (
                f"A separate factor for area {area} is {'' if supported else 'not '}supported"
                f"{together if joint else ''}: ELPD {richer!r} - {simpler!r} = {d:+.1f} "
                f"(SE {s:.1f}; supported needs > {k_mult:g} SE)"
            )
            if not supported and d < -k_mult * s:
                sentence += "; the simpler structure predicts better"
            sentence += "."
            others = {
                str(m): (
                    float(ds["elpd_diff_by_level"].sel(fit=richer, other=simpler, loo_method=m)),
                    float(ds["elpd_diff_se_by_level"].sel(fit=richer, other=simpler, loo_method=m)),
                )
                for m in ds["loo_method"].values
                if m != used
            }
            if others:
                sentence += (
                    " Other LOO levels: "
                    + ", ".join(f"{m} {od:+.1f} (SE {os_:.1f})" for m, (od, os_) in others.items())
                    + "."
                )
            if bad:
                which = ", ".join(f"{v} of {n_points} {unit} in {n!r}" for n, v in bad.items())
                threshold = float(ds["good_k"].sel(loo_method=used))
                sentence += (
                    f" Warning: unreliable, Pareto k > {threshold:.2g} for {which}; consider "
                    "k-fold cross-validation (arviz.loo_kfold)."
                )
            verdicts.append(
                {
                    "area": area,
                    "richer": richer,
                    "simpler": simpler,
                    "joint_with": joint,
                    "elpd_diff": d,
                    "elpd_diff_se": s,
                    "other_levels": {m: {"elpd_diff": v[0], "se": v[1]} for m, v in others.items()},
                    "supported": bool(supported),
                    "reliable": not bad,
                    "sentence": sentence,
                }
            )
    return verdicts


METHOD_LABELS = {
    "cell": "leave-one-score-out (per cell)",
    "llm": "leave-one-LLM-out (summed log-likelihood per LLM)",
    "llm-marginal": "leave-one-LLM-out with the LLM's latent scores integrated out",
}


def format_structures(ds: xr.Dataset) -> str:
    """Readable report of :func:`compare_structures` with the verdicts."""
    used = ds.attrs["method"]
    names = [str(n) for n in ds["fit"].values]
    width = max(max(len(n) for n in names), 4) + 2
    lines = [
        f"PSIS-LOO used: {METHOD_LABELS[used]} [{used}]"
        + (
            " (chosen automatically: fewest high Pareto k)"
            if ds.attrs["method_requested"] == "auto"
            else ""
        ),
        "",
        f"{'fit':<{width}}{'factors':<28}{'level':<14}{'elpd':>10}{'SE':>8}{'p_loo':>8}"
        f"{f'k>{float(ds.good_k.max()):.2f}':>12}",
    ]
    for m in [str(v) for v in ds["loo_method"].values]:
        n_points = int(ds["n_points"].sel(loo_method=m))
        for n in names:
            r = ds.sel(fit=n, loo_method=m)
            marker = " *" if m == used else ""
            lines.append(
                f"{n:<{width}}{(str(r.factors.item()) or '-'):<28}{m + marker:<14}"
                f"{float(r.elpd):>10.1f}{float(r.se):>8.1f}{float(r.p):>8.1f}"
                f"{f'{int(r.n_high_k)}/{n_points}':>12}"
            )
    lines += [
        "",
        f"Stacking weights ({used}): "
        + ", ".join(f"{n} {float(ds.weight.sel(fit=n)):.2f}" for n in names),
        "",
    ]
    verdicts = structure_verdicts(ds)
    if verdicts:
        lines += [v["sentence"] for v in verdicts]
    else:
        lines.append(
            "No fit's factors extend another's: no verdict on area factors (compare a fit "
            "with area factors against one without them)."
        )
    return "\n".join(lines)


def structures_json(ds: xr.Dataset) -> dict:
    """JSON-ready dictionary of :func:`compare_structures` with the verdicts."""
    names = [str(n) for n in ds["fit"].values]
    methods = [str(m) for m in ds["loo_method"].values]
    return {
        "loo_method": ds.attrs["method"],
        "loo_method_requested": ds.attrs["method_requested"],
        "se_multiple": float(ds.attrs["se_multiple"]),
        "study_sha256": ds.attrs["study_sha256"],
        "fits": [
            {
                "name": n,
                "factors": sorted(_factor_set(ds, n)),
                "weight": float(ds["weight"].sel(fit=n)),
                "loo": {
                    m: {
                        "elpd": float(ds["elpd"].sel(fit=n, loo_method=m)),
                        "se": float(ds["se"].sel(fit=n, loo_method=m)),
                        "p": float(ds["p"].sel(fit=n, loo_method=m)),
                        "n_high_pareto_k": int(ds["n_high_k"].sel(fit=n, loo_method=m)),
                        "n_points": int(ds["n_points"].sel(loo_method=m)),
                        "pareto_k_threshold": float(ds["good_k"].sel(loo_method=m)),
                    }
                    for m in methods
                },
            }
            for n in names
        ],
        "verdicts": structure_verdicts(ds),
    }
