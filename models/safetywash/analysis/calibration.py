"""Statistics of simulation-based calibration (Talts et al. 2018): thinning, ranks, a test of
their uniformity, one fitted round against its truth, and the summary of an SBC run
(:func:`safetywash.analysis.sbc.run_sbc`). No sampling here."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from safetywash.analysis.intervals import SAMPLE_DIMS
from safetywash.analysis.latent import capability_dims_of
from safetywash.inference.fitfile import diagnostics_of
from safetywash.model.likelihood import capability_correlation

#: Number of posterior draws the truth is ranked among (ranks take values 0..L).
RANK_DRAWS = 99
#: Central interval probabilities whose coverage is recorded.
INTERVALS = (0.5, 0.9)


def thin_indices(n_total: int, n_keep: int = RANK_DRAWS) -> np.ndarray:
    """Evenly spaced positions of ``n_keep`` draws among ``n_total`` (all if fewer).

    Draws are counted chain after chain, so every chain contributes about
    ``n_keep / chains`` draws spaced ``n_total / n_keep`` apart, which keeps the kept
    draws close to independent when the effective sample size is at least ``n_keep``.
    """
    if n_total <= n_keep:
        return np.arange(n_total)
    return (np.arange(n_keep) * n_total) // n_keep


def sbc_rank(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rank of each truth among its draws: the number of draws below it.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape ``(n_draws, n)``.
    truth : numpy.ndarray
        Shape ``(n,)``.

    Returns
    -------
    numpy.ndarray
        Integers in ``0..n_draws`` (``-1`` where the truth is not finite). Ties (which
        have probability zero for continuous posteriors) count half.
    """
    below = (draws < truth[None, :]).sum(axis=0)
    ties = (draws == truth[None, :]).sum(axis=0)
    rank = below + ties // 2
    return np.where(np.isfinite(truth), rank, -1).astype(np.int64)


def rank_uniformity(ranks: np.ndarray, n_rank_draws: int, bins: int = 10) -> tuple[float, float]:
    """Chi-square test that ranks in ``0..n_rank_draws`` are uniform.

    Ranks are binned into ``bins`` equal-width bins of the ``n_rank_draws + 1`` possible
    values (exactly equal counts per bin when ``bins`` divides ``n_rank_draws + 1``;
    otherwise the expected counts are adjusted to the number of values per bin).

    Returns
    -------
    statistic, p_value : float
    """
    ranks = np.asarray(ranks).ravel()
    ranks = ranks[ranks >= 0]
    n_values = n_rank_draws + 1
    bins = min(bins, n_values)
    edges = np.floor(np.arange(n_values) * bins / n_values).astype(int)  # value -> bin
    observed = np.bincount(edges[ranks], minlength=bins)
    expected = np.bincount(edges, minlength=bins) / n_values * ranks.size
    result = stats.chisquare(observed, expected)
    return float(result.statistic), float(result.pvalue)


def summarize_sbc(ds: xr.Dataset, *, bins: int = 10) -> dict:
    """Calibration figures of an SBC run.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`run_sbc`.
    bins : int
        Bins of the rank histogram for the chi-square test.

    Returns
    -------
    dict
        ``coverage50``, ``coverage90``: share of (round, benchmark) pairs whose true
        ``rho`` lies in the central 50% / 90% posterior interval; ``uniformity_p``
        (and ``uniformity_chi2``): chi-square test of uniform ranks (benchmarks within
        a round share one simulated study, so they are not independent and the p-value
        is somewhat optimistic); ``mae_median``: mean absolute error of the posterior
        median; ``mean_rank``: mean rank over ``L`` (0.5 when unbiased; above 0.5 = the
        truth tends to lie above the posterior); ``n_untrusted``: rounds failing the
        convergence thresholds (after the retry of a round, if any; ``n_retried``: rounds
        retried); ``n_flipped``: rounds with a chain whose capability
        correlates negatively with the truth; the same figures for
        ``rho_true_insample`` under ``insample``, and per role under ``by_role``.
    """
    n_rank = int(ds["n_rank_draws"].min())
    if int(ds["n_rank_draws"].max()) != n_rank:
        raise ValueError("rounds were ranked among different numbers of draws")

    def figures(sub: xr.Dataset, suffix: str = "") -> dict:
        truth = sub["rho_true" + suffix]
        ranks = sub["rank" + suffix].values
        chi2, p = rank_uniformity(ranks, n_rank, bins)
        return {
            "coverage50": float(sub["covered50" + suffix].mean()),
            "coverage90": float(sub["covered90" + suffix].mean()),
            "uniformity_chi2": chi2,
            "uniformity_p": p,
            "mae_median": float(np.abs(sub["rho_median"] - truth).mean()),
            "mean_rank": float(ranks[ranks >= 0].mean() / n_rank),
        }

    out = {
        "n_rounds": int(ds.sizes["round"]),
        "n_benchmarks": int(ds.sizes["benchmark"]),
        "rank_draws": n_rank,
        "bins": bins,
        **figures(ds),
        "n_untrusted": int((~ds["trustworthy"].astype(bool)).sum()),
        "n_flipped": int((ds["min_chain_capability_corr"] < 0).sum()),
        "max_rhat": float(ds["max_rhat"].max()),
        "min_ess": float(ds["min_ess"].min()),
        "divergences": int(ds["divergences"].sum()),
        "insample": figures(ds, "_insample"),
    }
    if "retried" in ds:
        out["n_retried"] = int(ds["retried"].astype(bool).sum())
    if "compiled" in ds:
        out["n_compiles"] = int(ds["compiled"].astype(bool).sum())
        out["n_structures"] = len(np.unique(ds["structure"].values))
    if "role" in ds.coords:
        out["by_role"] = {
            str(role): figures(ds.isel(benchmark=np.flatnonzero(ds["role"].values == role)))
            for role in np.unique(ds["role"].values)
        }
    return out


def _in_interval(draws: xr.DataArray, truth: np.ndarray, prob: float) -> np.ndarray:
    q = draws.quantile([(1 - prob) / 2, (1 + prob) / 2], dim=SAMPLE_DIMS).values
    return (q[0] <= truth) & (truth <= q[1])


def _chain_capability_corr(posterior: xr.Dataset, true_capability: np.ndarray) -> np.ndarray:
    """Correlation of each chain's posterior-mean capability with the true capability."""
    means = posterior["capability"].mean("draw").transpose("chain", "llm").values
    return np.array([np.corrcoef(m, true_capability)[0, 1] for m in means])


def round_dataset(
    study, known: xr.Dataset, dt: xr.DataTree, rank_draws: int = RANK_DRAWS
) -> xr.Dataset:
    """Ranks, interval coverage, posterior summaries and diagnostics of one fitted SBC
    round: its fit ``dt`` of the simulated ``study`` against the truth ``known`` (as
    :func:`~safetywash.model.simulate.simulate` returns them).

    Returns
    -------
    xarray.Dataset
        Over ``benchmark``: ``rho_true``, ``rho_true_insample``, ``rank``,
        ``rank_insample``, ``covered50``, ``covered90`` (and ``*_insample``), ``rho_median``,
        ``rho_sd``, ``n_observed``; the fit's diagnostics (``max_rhat``,
        ``min_ess_bulk``/``_tail``, ``min_ess``, ``divergences``, ``trustworthy``,
        ``worst_rhat_variable``, ``worst_ess_variable``), ``min_chain_capability_corr``
        (< 0: a flipped chain) and ``n_rank_draws``; coordinates ``role``, ``area``.

    Raises
    ------
    ValueError
        For a fit with more than one capability dimension: the truth of a simulated study
        has one (:func:`~safetywash.model.simulate.simulate`).
    """
    dims = capability_dims_of(dt)
    if dims > 1:
        raise ValueError(
            f"an SBC round is checked against a simulated truth with one capability "
            f"dimension; this fit has {dims}: fit the round with capability_dims=1"
        )
    posterior = dt["posterior"].to_dataset()
    benchmarks = known["benchmark"].values
    rho = posterior["rho"].reindex(benchmark=benchmarks)
    rho_true = known["rho"].values
    s = float(np.std(known["capability"].values))
    rho_insample = capability_correlation(
        known["loading"].values * s, known["residual_sd"].values, known["factor_loading"].values
    )
    flat = rho.stack(sample=SAMPLE_DIMS).transpose("sample", "benchmark").values
    kept = flat[thin_indices(flat.shape[0], rank_draws)]
    diag = diagnostics_of(dt)
    chain_corr = _chain_capability_corr(posterior, known["capability"].values)
    counts = study.scores.groupby("benchmark").size().reindex(benchmarks).fillna(0)
    data = {
        "rho_true": ("benchmark", rho_true),
        "rho_true_insample": ("benchmark", rho_insample),
        "rank": ("benchmark", sbc_rank(kept, rho_true)),
        "rank_insample": ("benchmark", sbc_rank(kept, rho_insample)),
        "rho_median": ("benchmark", rho.median(SAMPLE_DIMS).values),
        "rho_sd": ("benchmark", rho.std(SAMPLE_DIMS).values),
        "n_observed": ("benchmark", counts.to_numpy()),
        "max_rhat": ((), diag.max_rhat),
        "min_ess_bulk": ((), diag.min_ess_bulk),
        "min_ess_tail": ((), diag.min_ess_tail),
        "min_ess": ((), min(diag.min_ess_bulk, diag.min_ess_tail)),
        "divergences": ((), diag.divergences),
        "trustworthy": ((), diag.trustworthy),
        "worst_rhat_variable": ((), diag.worst_rhat),
        "worst_ess_variable": ((), diag.worst_ess_bulk),
        "min_chain_capability_corr": ((), float(np.min(chain_corr))),
        "n_rank_draws": ((), kept.shape[0]),
    }
    for prob in INTERVALS:
        pct = round(100 * prob)
        data[f"covered{pct}"] = ("benchmark", _in_interval(rho, rho_true, prob))
        data[f"covered{pct}_insample"] = ("benchmark", _in_interval(rho, rho_insample, prob))
    bench = study.benchmarks.reindex(benchmarks)
    coords = {
        "benchmark": benchmarks,
        "role": ("benchmark", bench["role"].to_numpy(dtype=str)),
        "area": ("benchmark", bench["area"].to_numpy(dtype=str)),
    }
    return xr.Dataset(data, coords=coords)
