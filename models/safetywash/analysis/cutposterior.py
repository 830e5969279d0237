"""A new benchmark's parameters given a fit's capability draws: the "cut" posterior.

For a benchmark the fit has not seen, scored on ``n`` fitted LLMs with model-scale scores
``y`` (standardised as the model standardises a benchmark), the model says

.. math::

    y_i \\sim \\mathrm{Normal}(\\alpha + \\lambda \\theta_i, \\sigma)

with the model's prior for a safety benchmark (:class:`BenchmarkPrior`, read off each
posterior draw's hyperparameters by :func:`new_benchmark_prior`). The cut posterior holds
capability ``theta`` at each posterior draw in turn and gives the new benchmark's
``(alpha, lambda, sigma)`` given that draw, so the new benchmark never feeds back into
capability or the hyperparameters. Per draw it is computed exactly up to a fine grid in
``log sigma`` (:func:`cut_posterior`): given ``sigma`` the coefficients ``(alpha, lambda)``
have a Gaussian prior and likelihood, so they integrate out in closed form, which leaves a
one-dimensional posterior of ``log sigma`` (the model's log-normal prior times the marginal
likelihood), evaluated on a fine grid over the range that holds its mass and sampled with a
uniform jitter within its cell (:func:`sample_log_sd`); ``(alpha, lambda)`` are then drawn
from their Gaussian conditional at that ``sigma``. Everything is O(draws x grid) from five
sums per draw: well under a second for a fit of 4,000 draws.

Fits with more than one capability dimension (``ModelConfig.capability_dims`` K > 1) are
refused (:func:`check_one_capability_dimension`): there a new benchmark would load on the
further capability axes too, and the cut posterior here has the general factor only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from safetywash.analysis.latent import sample_values
from safetywash.inference.fitfile import fit_config

#: Coarse grid of ``log sigma`` on the model scale (scores have SD 1 there), sigma from
#: 0.001 to 10, that locates each draw's posterior (:func:`sample_log_sd`).
COARSE_GRID = np.linspace(np.log(1e-3), np.log(10.0), 48)
#: Cells of the fine grid over the range the coarse grid found: over at least two coarse
#: steps, so cells of at most 0.004 in ``log sigma``, far finer than its posterior SD
#: (about ``1 / sqrt(2 (n - 2))`` from ``n`` LLMs: 0.14 for 26 LLMs).
FINE_POINTS = 96
#: Drop of the log posterior below its maximum treated as no mass (exp(-25) ~ 1e-11).
NEGLIGIBLE = 25.0
LOG_2PI = float(np.log(2 * np.pi))
#: Cells of (draw x grid) evaluated at once.
CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class BenchmarkPrior:
    """Prior of a new safety benchmark's parameters on the model scale, per posterior draw.

    ``intercept ~ Normal(0, intercept_sd)``, ``loading ~ Normal(loading_loc, loading_sd)``
    and ``log(residual_sd) ~ Normal(log_sd_loc, log_sd_sd)``, independently; arrays have
    shape ``(n_samples,)``.
    """

    loading_loc: np.ndarray
    loading_sd: np.ndarray
    log_sd_loc: np.ndarray
    log_sd_sd: np.ndarray
    intercept_sd: float

    def take(self, idx: np.ndarray) -> BenchmarkPrior:
        """The prior at some draws only."""
        return BenchmarkPrior(
            self.loading_loc[idx],
            self.loading_sd[idx],
            self.log_sd_loc[idx],
            self.log_sd_sd[idx],
            self.intercept_sd,
        )


def check_one_capability_dimension(dt: xr.DataTree, what: str, instead: str | None = None) -> None:
    """Refuse a fit with more than one capability dimension.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    what : str
        What is refused, e.g. ``"scoring a new benchmark without refitting"``.
    instead : str, optional
        What else to run with such a fit (after "do it against a fit of the same study
        with --capability-dims 1, or ...").

    Raises
    ------
    ValueError
        If the fit has ``capability_dims`` above 1.
    """
    dims = fit_config(dt).capability_dims
    if dims > 1:
        raise ValueError(
            f"{what} supports fits with one capability dimension only, and this fit has "
            f"{dims} (--capability-dims {dims}): a new benchmark would load on the further "
            "capability axes too, which this cut posterior does not model yet. Do it against "
            "a fit of the same study with --capability-dims 1"
            + (f", or {instead}." if instead else ".")
        )


def _draws(post: xr.Dataset, name: str, *dims: str) -> np.ndarray:
    values = sample_values(post[name], *dims)
    return values.reshape(values.shape[0] * values.shape[1], *values.shape[2:])


def new_benchmark_prior(
    dt: xr.DataTree,
    area: str | None,
    *,
    rng: np.random.Generator,
    group: str = "posterior",
) -> BenchmarkPrior:
    """The model's prior of a new safety benchmark in ``area``, at every posterior draw.

    The loading of a safety benchmark is ``Normal(area_loading_mean[area],
    safety_loading_sd)``; in an area the fit does not have, the area mean is itself drawn
    around ``safety_loading_mean`` with SD ``area_loading_sd``, so the loading is
    ``Normal(safety_loading_mean, sqrt(area_loading_sd**2 + safety_loading_sd**2))``. A fit
    without safety benchmarks has none of these hyperparameters: they are drawn from their
    priors (the fit's :class:`~safetywash.model.config.Priors`, scaled as in the fit) with
    ``rng``. The log residual SD is ``Normal(residual_log_mean, residual_log_sd)`` and the
    intercept ``Normal(0, intercept_sd)``, as for every benchmark of the model.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    area : str or None
        The new benchmark's safety area (None: an area the fit does not have).
    rng : numpy.random.Generator
        Used only for a fit without safety benchmarks.
    group : str
        Group holding the draws.

    Returns
    -------
    BenchmarkPrior

    Raises
    ------
    ValueError
        For a fit with more than one capability dimension.
    """
    check_one_capability_dimension(
        dt,
        "a new benchmark's prior from a fit",
        f"add the benchmark to the study and refit (fit --add-scores NEW.csv "
        f"--capability-dims {fit_config(dt).capability_dims})",
    )
    post = dt[group]
    priors = fit_config(dt).scaled_priors
    n = post.sizes["chain"] * post.sizes["draw"]
    areas = (
        [str(a) for a in post["area_loading_mean"]["area"].values]
        if "area_loading_mean" in post.data_vars
        else []
    )
    if area in areas:
        loc = _draws(post, "area_loading_mean", "area")[:, areas.index(area)]
        sd = _draws(post, "safety_loading_sd")
    else:
        if "safety_loading_mean" in post.data_vars:
            top = _draws(post, "safety_loading_mean")
            spread = _draws(post, "area_loading_sd")
            within = _draws(post, "safety_loading_sd")
        else:
            top = rng.normal(0.0, priors.safety_loading_mean_scale, n)
            spread = rng.gamma(2.0, priors.area_loading_sd_scale, n)
            within = rng.gamma(2.0, priors.safety_loading_sd_scale, n)
        loc, sd = top, np.sqrt(spread**2 + within**2)
    return BenchmarkPrior(
        loading_loc=loc,
        loading_sd=sd,
        log_sd_loc=_draws(post, "residual_log_mean"),
        log_sd_sd=_draws(post, "residual_log_sd"),
        intercept_sd=float(priors.intercept_sd),
    )


def _coefficients(stats: dict, prior: BenchmarkPrior, sigma2: np.ndarray):
    """Gaussian posterior of ``(alpha, lambda)`` given ``sigma**2`` (2 x 2, closed form).

    Returns the precision's entries and determinant, the posterior mean and the quadratic
    form ``b' P^-1 b`` (arrays broadcast over draws and grid points).
    """
    va = prior.intercept_sd**2
    vl = prior.loading_sd**2
    p11 = stats["n"] / sigma2 + 1.0 / va
    p12 = stats["t"] / sigma2
    p22 = stats["tt"] / sigma2 + 1.0 / vl
    b1 = stats["y"] / sigma2
    b2 = stats["ty"] / sigma2 + prior.loading_loc / vl
    det = p11 * p22 - p12**2
    m1 = (p22 * b1 - p12 * b2) / det
    m2 = (p11 * b2 - p12 * b1) / det
    return (p11, p12, p22, det), (m1, m2), b1 * m1 + b2 * m2


def log_sd_posterior(stats: dict, prior: BenchmarkPrior, log_sd: np.ndarray) -> np.ndarray:
    """Unnormalised log posterior of ``log sigma`` with ``(alpha, lambda)`` integrated out.

    ``stats`` and ``prior`` arrays must broadcast against ``log_sd`` (e.g. draws as a
    column, grid points as a row). The marginal likelihood is
    ``N(y; X m0, sigma^2 I + X V0 X')`` with ``X = [1, theta]``, by the matrix determinant
    lemma and Woodbury's identity.
    """
    sigma2 = np.exp(2 * log_sd)
    (_, _, _, det), _, quad = _coefficients(stats, prior, sigma2)
    vl = prior.loading_sd**2
    loglik = -0.5 * (
        stats["n"] * (LOG_2PI + np.log(sigma2))
        + np.log(prior.intercept_sd**2 * vl)
        + np.log(det)
        + stats["yy"] / sigma2
        + prior.loading_loc**2 / vl
        - quad
    )
    z = (log_sd - prior.log_sd_loc) / prior.log_sd_sd
    return loglik - 0.5 * z**2 - np.log(prior.log_sd_sd)


def sufficient_statistics(theta: np.ndarray, y: np.ndarray) -> dict:
    """The five sums the likelihood needs, per draw (``theta``: ``(S, n)``, ``y``: ``(n,)``)."""
    return {
        "n": float(len(y)),
        "t": theta.sum(axis=1),
        "tt": (theta**2).sum(axis=1),
        "ty": theta @ y,
        "y": float(y.sum()),
        "yy": float(y @ y),
    }


def _take(stats: dict, prior: BenchmarkPrior, idx: np.ndarray):
    """Statistics and prior of some draws, as columns (to broadcast against grid rows)."""
    stats = {k: (v[idx, None] if isinstance(v, np.ndarray) else v) for k, v in stats.items()}
    part = prior.take(idx)
    column = BenchmarkPrior(
        part.loading_loc[:, None],
        part.loading_sd[:, None],
        part.log_sd_loc[:, None],
        part.log_sd_sd[:, None],
        part.intercept_sd,
    )
    return stats, column


def sample_log_sd(stats: dict, prior: BenchmarkPrior, rng: np.random.Generator) -> np.ndarray:
    """One draw of ``log sigma`` per posterior draw from its grid posterior.

    A coarse grid (:data:`COARSE_GRID`) finds, per draw, the range where the log posterior
    is within :data:`NEGLIGIBLE` of its maximum (widened by one coarse step on each side);
    :data:`FINE_POINTS` cells over that range carry the posterior, and a draw is a cell
    picked by its mass plus a uniform position within it.
    """
    n_draws = len(prior.loading_loc)
    coarse_step = COARSE_GRID[1] - COARSE_GRID[0]
    out = np.empty(n_draws)
    chunk = max(1, CHUNK_CELLS // FINE_POINTS)
    for start in range(0, n_draws, chunk):
        idx = np.arange(start, min(start + chunk, n_draws))
        part, column = _take(stats, prior, idx)
        lp = log_sd_posterior(part, column, COARSE_GRID[None, :])
        keep = lp >= lp.max(axis=1, keepdims=True) - NEGLIGIBLE
        lo = COARSE_GRID[keep.argmax(axis=1)] - coarse_step
        hi = COARSE_GRID[len(COARSE_GRID) - 1 - keep[:, ::-1].argmax(axis=1)] + coarse_step
        step = (hi - lo) / FINE_POINTS
        centres = lo[:, None] + step[:, None] * (np.arange(FINE_POINTS) + 0.5)
        lp = log_sd_posterior(part, column, centres)
        weights = np.exp(lp - lp.max(axis=1, keepdims=True)).cumsum(axis=1)
        u = rng.random(len(idx)) * weights[:, -1]
        cell = np.minimum((weights < u[:, None]).sum(axis=1), FINE_POINTS - 1)
        out[idx] = centres[np.arange(len(idx)), cell] + step * (rng.random(len(idx)) - 0.5)
    return out


def cut_posterior(
    theta: np.ndarray,
    y: np.ndarray,
    prior: BenchmarkPrior,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """One draw of a new benchmark's parameters per posterior draw of capability.

    Parameters
    ----------
    theta : numpy.ndarray
        Capability of the LLMs the benchmark was scored on, shape ``(S, n)`` (one row per
        posterior draw).
    y : numpy.ndarray
        The benchmark's scores on the model scale, shape ``(n,)``.
    prior : BenchmarkPrior
        Its prior at each of the ``S`` draws.
    rng : numpy.random.Generator

    Returns
    -------
    dict
        ``intercept``, ``loading``, ``residual_sd``: arrays of shape ``(S,)``.
    """
    theta = np.asarray(theta, dtype=float)
    y = np.asarray(y, dtype=float)
    stats = sufficient_statistics(theta, y)
    sigma2 = np.exp(2 * sample_log_sd(stats, prior, rng))
    (p11, p12, p22, det), (m1, m2), _ = _coefficients(stats, prior, sigma2)
    # Covariance P^-1 = [[p22, -p12], [-p12, p11]] / det, drawn through its Cholesky factor.
    c11, c21, c22 = p22 / det, -p12 / det, p11 / det
    l11 = np.sqrt(c11)
    l21 = c21 / l11
    l22 = np.sqrt(np.maximum(c22 - l21**2, 0.0))
    z1, z2 = rng.standard_normal((2, theta.shape[0]))
    return {
        "intercept": m1 + l11 * z1,
        "loading": m2 + l21 * z1 + l22 * z2,
        "residual_sd": np.sqrt(sigma2),
    }
