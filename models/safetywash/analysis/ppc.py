"""Posterior predictive check of the benchmark correlation matrix.

The statistic is the pairwise-complete Pearson correlation matrix of the standardised
scores (LLMs x benchmarks, observed cells only): :func:`correlation_ppc` computes it on the
observed data and on every replicated dataset (the fit's ``posterior_predictive`` group, or
replicates simulated from the posterior by :func:`replicate_scores`) and reports, per pair
of benchmarks, where the observed value falls in its replicated distribution.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from safetywash.analysis.intervals import CI_PROB, SAMPLE_DIMS
from safetywash.analysis.predictive import cell_parameters
from safetywash.inference.fitfile import benchmark_table, cell_index, fit_info, llm_table
from safetywash.model.likelihood import predictive_draws

#: Fewest LLMs two benchmarks must share for their correlation to be checked.
MIN_PAIRS = 5
#: Most posterior draws used for the correlation PPC (evenly thinned).
DEFAULT_MAX_DRAWS = 1000
#: Draws whose correlation matrices are computed at once (bounds the temporaries).
CHUNK_DRAWS = 100


def pairwise_correlation(
    values: np.ndarray, observed: np.ndarray, *, min_pairs: int = MIN_PAIRS
) -> np.ndarray:
    """Pearson correlations between columns over the rows both observe.

    Parameters
    ----------
    values : numpy.ndarray
        Shape ``(..., n_rows, n_columns)``; entries outside ``observed`` are ignored.
    observed : numpy.ndarray of bool
        Shape ``(n_rows, n_columns)``, shared by every leading index.
    min_pairs : int
        Pairs of columns sharing fewer rows get NaN.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., n_columns, n_columns)``; NaN where undefined.
    """
    observed = np.asarray(observed, dtype=bool)
    m = observed.astype(float)
    x = np.where(observed, np.asarray(values, dtype=float), 0.0)
    xt = np.swapaxes(x, -1, -2)
    n = m.T @ m
    sx = xt @ m  # [a, b]: sum of column a over the rows that observe b (and a)
    sxx = (xt * xt) @ m
    sxy = xt @ x
    sy, syy = np.swapaxes(sx, -1, -2), np.swapaxes(sxx, -1, -2)
    var_x = n * sxx - sx**2
    var_y = n * syy - sy**2
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (n * sxy - sx * sy) / np.sqrt(var_x * var_y)
    tiny = 1e-12 * np.maximum(n, 1) ** 2
    r = np.where((n >= min_pairs) & (var_x > tiny) & (var_y > tiny), r, np.nan)
    return np.clip(r, -1.0, 1.0)


def _thin(n_total: int, max_draws: int | None) -> np.ndarray:
    if max_draws is None or n_total <= max_draws:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, max_draws).round().astype(int))


def replicate_scores(
    dt: xr.DataTree,
    *,
    max_draws: int | None = DEFAULT_MAX_DRAWS,
    seed: int | None = None,
    group: str = "posterior",
) -> xr.DataArray:
    """Replicated standardised scores of the observed cells, simulated from the posterior.

    One replicate per posterior draw from the model's predictive distribution
    (:func:`safetywash.analysis.predictive.cell_parameters`: ``intercept + loading *
    capability``, ``+ factor_loading * area_factor`` with area factors,
    ``+ sum_k axis_loading_k * axis_score_k`` with K > 1 capability dimensions, plus
    ``Normal(0, residual_sd)`` noise).

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    max_draws : int, optional
        Use at most this many draws (evenly thinned); None for all.
    seed : int, optional
        Seed of the residual noise; default the fit's seed + 2.
    group : str
        Group holding the draws.

    Returns
    -------
    xarray.DataArray
        Dims ``("sample", "cell")``, with ``llm`` and ``benchmark`` coordinates on ``cell``.
    """
    mu, sd = cell_parameters(dt, group=group)
    n_cells = mu.sizes["cell"]
    keep = _thin(mu.sizes["chain"] * mu.sizes["draw"], max_draws)
    # samples in (chain, draw) order, as stack(sample=("chain", "draw"))
    mu_kept = mu.values.reshape(-1, n_cells)[keep]
    sd_kept = sd.values.reshape(-1, n_cells)[keep]
    if seed is None:
        seed = fit_info(dt).seed + 2
    y = predictive_draws(mu_kept, sd_kept, np.random.default_rng(seed))
    return xr.DataArray(y, dims=("sample", "cell"), coords=mu["cell"].coords)


def _score_grid(dt: xr.DataTree, var_name: str) -> tuple[np.ndarray, np.ndarray, list]:
    """The observed cells as an LLM x benchmark mask, the scores on that grid, and keys."""
    llm_idx, bench_idx = cell_index(dt)
    keys = list(benchmark_table(dt).index)
    observed = np.zeros((len(llm_table(dt)), len(keys)), dtype=bool)
    observed[llm_idx, bench_idx] = True
    y_obs = np.zeros(observed.shape)
    y_obs[llm_idx, bench_idx] = dt["observed_data"][var_name].values
    return observed, y_obs, keys


def _replicates(dt, group, var_name, max_draws, seed) -> tuple[np.ndarray, str]:
    """Replicated cells ``(sample, cell)``: the fit's ``group`` if present, else simulated."""
    if group in dt.children and var_name in dt[group].data_vars:
        rep = dt[group][var_name].stack(sample=SAMPLE_DIMS).transpose("sample", "cell")
        return rep.isel(sample=_thin(rep.sizes["sample"], max_draws)).values, group
    rep = replicate_scores(dt, max_draws=max_draws, seed=seed).values
    return rep, "simulated from the posterior"


def _replicated_correlations(
    dt: xr.DataTree, rep: np.ndarray, observed: np.ndarray, min_pairs: int
) -> np.ndarray:
    """Correlation matrix of every replicate, shape ``(sample, benchmark, benchmark)``."""
    llm_idx, bench_idx = cell_index(dt)
    n_bench = observed.shape[1]
    y_rep = np.zeros((rep.shape[0], *observed.shape))
    y_rep[:, llm_idx, bench_idx] = rep
    r_rep = np.empty((len(y_rep), n_bench, n_bench))
    for start in range(0, len(y_rep), CHUNK_DRAWS):
        chunk = y_rep[start : start + CHUNK_DRAWS]
        r_rep[start : start + CHUNK_DRAWS] = pairwise_correlation(
            chunk, observed, min_pairs=min_pairs
        )
    return r_rep


def correlation_ppc(
    dt: xr.DataTree,
    *,
    group: str = "posterior_predictive",
    var_name: str = "score",
    ci_prob: float = CI_PROB,
    max_draws: int | None = DEFAULT_MAX_DRAWS,
    min_pairs: int = MIN_PAIRS,
    seed: int | None = None,
) -> xr.Dataset:
    """Posterior predictive check of the benchmark correlation matrix.

    Replicates keep the observed pattern of missing cells.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    group, var_name : str
        Where the replicated scores are, when the fit has them.
    ci_prob : float
        Probability of the equal-tailed predictive interval of each correlation.
    max_draws : int, optional
        Use at most this many draws (evenly thinned).
    min_pairs : int
        Pairs of benchmarks sharing fewer LLMs are not checked.
    seed : int, optional
        Seed of simulated replicates.

    Returns
    -------
    xarray.Dataset
        Dims ``(benchmark_a, benchmark_b)``: ``observed``, ``replicated_mean``,
        ``replicated_low``, ``replicated_high``, ``p_greater`` = P(replicated >= observed),
        ``inside`` and ``checked`` (each pair once, a < b, with a defined observed value).
        Attrs ``share_inside`` (the share of checked pairs inside their interval),
        ``n_pairs``, ``n_draws``, ``ci_prob``, ``source``.
    """
    observed, y_obs, keys = _score_grid(dt, var_name)
    rep, source = _replicates(dt, group, var_name, max_draws, seed)
    r_obs = pairwise_correlation(y_obs, observed, min_pairs=min_pairs)
    r_rep = _replicated_correlations(dt, rep, observed, min_pairs)
    tail = (1 - ci_prob) / 2
    with warnings.catch_warnings():  # pairs never defined (too few shared LLMs) give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(r_rep, [tail, 1 - tail], axis=0)
        mean = np.nanmean(r_rep, axis=0)
    upper = np.triu(np.ones((len(keys), len(keys)), dtype=bool), k=1)
    checked = upper & np.isfinite(r_obs) & np.isfinite(low)
    inside = (r_obs >= low) & (r_obs <= high)
    n_pairs = int(checked.sum())
    dims = ("benchmark_a", "benchmark_b")
    return xr.Dataset(
        {
            "observed": (dims, r_obs),
            "replicated_mean": (dims, mean),
            "replicated_low": (dims, low),
            "replicated_high": (dims, high),
            "p_greater": (dims, np.mean(r_rep >= r_obs, axis=0)),
            "inside": (dims, inside & checked),
            "checked": (dims, checked),
        },
        coords={"benchmark_a": keys, "benchmark_b": keys},
        attrs={
            "share_inside": float(inside[checked].mean()) if n_pairs else float("nan"),
            "n_pairs": n_pairs,
            "n_draws": int(rep.shape[0]),
            "ci_prob": ci_prob,
            "source": source,
            "min_pairs": min_pairs,
            "study_name": fit_info(dt).study_name,
        },
    )
