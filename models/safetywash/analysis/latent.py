"""A fit's benchmark parameters and the Gaussian posterior of one LLM's latent vector.

Every benchmark parameter of a fit (intercept ``alpha``, capability loading ``lambda``,
residual SD ``sigma``, with K > 1 capability dimensions the loadings ``L_b`` on the further
capability axes and, with area factors, the factor loading ``gamma``) is held at each
posterior draw in turn (:func:`benchmark_parameters`). Given one draw, an LLM's latent vector
``u = (theta, a_2, ..., a_K, eta_1, ..., eta_F)`` (general capability, further capability
axes, area factors; a fit has axes or area factors, never both) has a Gaussian prior,

* ``theta ~ Normal(m_p, s_p)``, the capability distribution of the LLM's population in that
  draw (0 and 1 for a single population, ``population_mean`` and
  ``exp(population_log_sd)`` otherwise; see :func:`capability_prior`),
* ``a_k ~ Normal(0, 1)`` (the model's prior on the axis scores, independent of ``theta``),
* ``eta_f ~ Normal(0, 1)`` (the model's prior on area factors),

and its scores on the model scale are ``y_b = alpha_b + W_b u + sigma_b e_b`` with
``W_b = (lambda_b, L_b, gamma_b [b in area f])``. The likelihood is Gaussian in ``u``, so
its posterior given the draw is Gaussian in closed form (:func:`gaussian_latent_posterior`),
and so is ``log p(y)`` with ``u`` integrated out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from safetywash.analysis.intervals import SAMPLE_DIMS
from safetywash.inference.fitfile import benchmark_table, llm_table
from safetywash.model.axes import AXIS_DIM

LOG_2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True)
class BenchmarkParameters:
    """Posterior draws of every benchmark parameter, stacked over ``(chain, draw)``.

    Attributes
    ----------
    benchmarks : list of str
        Benchmark keys, in the fit's order.
    intercept, loading, residual_sd, factor_loading : numpy.ndarray
        Shape ``(n_samples, n_benchmarks)`` on the model (standardised) scale;
        ``factor_loading`` is 0 for benchmarks outside factor areas.
    factor_of : numpy.ndarray
        Index of each benchmark's area factor (-1: none), shape ``(n_benchmarks,)``.
    factors : list of str
        Areas with a factor of their own.
    capability : numpy.ndarray
        Fitted capabilities, shape ``(n_samples, n_llms)``.
    chains, draws : int
        Sizes of the sample dimensions.
    axes : list of str
        The further capability axes (``axis_2`` ... ``axis_K``; empty with one capability
        dimension).
    axis_loading : numpy.ndarray or None
        Loadings on them, shape ``(n_samples, n_benchmarks, len(axes))``; None with one
        capability dimension.
    """

    benchmarks: list[str]
    intercept: np.ndarray
    loading: np.ndarray
    residual_sd: np.ndarray
    factor_loading: np.ndarray
    factor_of: np.ndarray
    factors: list[str]
    capability: np.ndarray
    chains: int
    draws: int
    axes: list[str] = field(default_factory=list)
    axis_loading: np.ndarray | None = None

    @property
    def n_latent(self) -> int:
        """Size of the latent vector: capability, one per further axis, one per area factor."""
        return 1 + len(self.axes) + len(self.factors)

    @property
    def axis_columns(self) -> slice:
        """Columns of the latent vector holding the further capability axes."""
        return slice(1, 1 + len(self.axes))

    @property
    def factor_columns(self) -> slice:
        """Columns of the latent vector holding the area factors."""
        return slice(1 + len(self.axes), self.n_latent)

    def design(self, benchmark_idx: np.ndarray) -> np.ndarray:
        """Loadings of the latent vector, shape ``(n_samples, len(benchmark_idx), n_latent)``."""
        n = self.intercept.shape[0]
        w = np.zeros((n, len(benchmark_idx), self.n_latent))
        w[:, :, 0] = self.loading[:, benchmark_idx]
        if self.axes:
            w[:, :, self.axis_columns] = self.axis_loading[:, benchmark_idx, :]
        first_factor = self.factor_columns.start
        for j, b in enumerate(benchmark_idx):
            f = self.factor_of[b]
            if f >= 0:
                w[:, j, first_factor + f] = self.factor_loading[:, b]
        return w


def capability_dims_of(dt: xr.DataTree, *, group: str = "posterior") -> int:
    """A fit's number K of capability dimensions, read off its draws (the general factor
    plus one per further axis of ``axis_loading``)."""
    post = dt[group]
    return 1 + (post.sizes[AXIS_DIM] if "axis_loading" in post.data_vars else 0)


def sample_values(da: xr.DataArray, *dims: str) -> np.ndarray:
    """Draws of a posterior variable as an array over ``(chain, draw, *dims)``."""
    return np.asarray(da.transpose(*SAMPLE_DIMS, *dims).values, dtype=float)


def _stack(da: xr.DataArray, dim: str | None = None) -> np.ndarray:
    """Draws as ``(chain * draw[, dim])``, chain-major (as ``stack(sample=(chain, draw))``)."""
    values = sample_values(da, *([dim] if dim else []))
    return values.reshape(values.shape[0] * values.shape[1], *values.shape[2:])


def area_factor_loadings(dt: xr.DataTree, *, group: str = "posterior"):
    """Every benchmark's loading on its area factor, and which factor that is.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    group : str
        Group holding the draws.

    Returns
    -------
    gamma : numpy.ndarray
        Shape ``(chain, draw, n_benchmarks)`` in the fit's benchmark order; 0 for
        benchmarks outside factor areas (all 0 without area factors).
    factor_of : numpy.ndarray of int
        Index of each benchmark's area factor into ``factors`` (-1: none).
    factors : list of str
        Areas with a factor of their own.
    """
    post = dt[group]
    keys = [str(b) for b in post["benchmark"].values]
    gamma = np.zeros((post.sizes["chain"], post.sizes["draw"], len(keys)))
    factor_of = np.full(len(keys), -1, dtype=np.int64)
    if "factor_loading" not in post.data_vars:
        return gamma, factor_of, []
    factors = [str(f) for f in post["area_factor"]["factor"].values]
    area = benchmark_table(dt)["area"]
    values = sample_values(post["factor_loading"], "factor_benchmark")
    for j, key in enumerate(np.asarray(post["factor_loading"]["factor_benchmark"].values, str)):
        b = keys.index(key)
        gamma[..., b] = values[..., j]
        factor_of[b] = factors.index(area[key])
    return gamma, factor_of, factors


def benchmark_parameters(dt: xr.DataTree, *, group: str = "posterior") -> BenchmarkParameters:
    """Posterior draws of the benchmark parameters of a fit.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit from :func:`safetywash.inference.sampling.fit` (or
        :func:`safetywash.inference.fitfile.load_fit`).
    group : str
        Group holding the draws.

    Returns
    -------
    BenchmarkParameters
    """
    post = dt[group]
    gamma, factor_of, factors = area_factor_loadings(dt, group=group)
    axes, axis_loading = [], None
    if "axis_loading" in post.data_vars:
        axes = [str(a) for a in post["axis_loading"][AXIS_DIM].values]
        values = sample_values(post["axis_loading"], "benchmark", AXIS_DIM)
        axis_loading = values.reshape(-1, *values.shape[2:])
    return BenchmarkParameters(
        benchmarks=[str(b) for b in post["benchmark"].values],
        intercept=_stack(post["intercept"], "benchmark"),
        loading=_stack(post["loading"], "benchmark"),
        residual_sd=_stack(post["residual_sd"], "benchmark"),
        factor_loading=gamma.reshape(-1, gamma.shape[-1]),
        factor_of=factor_of,
        factors=factors,
        capability=_stack(post["capability"], "llm"),
        chains=post.sizes["chain"],
        draws=post.sizes["draw"],
        axes=axes,
        axis_loading=axis_loading,
    )


def capability_prior(dt: xr.DataTree, population: str, *, group: str = "posterior"):
    """Per-draw mean and SD of the capability distribution of one population.

    ``population_mean`` and ``exp(population_log_sd)`` when the fit has several
    populations, else 0 and 1: the model's population distribution of capability. (With
    sampled capability the fitted capabilities are normalised to exactly these moments
    within each population; with marginal capability they are the prior's parameters.)

    Returns
    -------
    mean, sd : numpy.ndarray
        Shape ``(n_samples,)``.
    """
    known = sorted(set(llm_table(dt)["population"]))
    if population not in known:
        raise ValueError(f"unknown population {population!r}; the fit has {known}")
    post = dt[group]
    n = post.sizes["chain"] * post.sizes["draw"]
    if "population_mean" in post.data_vars:
        pops = [str(p) for p in post["population_mean"]["population"].values]
        j = pops.index(population)
        mean = _stack(post["population_mean"], "population")[:, j]
        sd = np.exp(_stack(post["population_log_sd"], "population")[:, j])
        return mean, sd
    if len(known) > 1:
        raise ValueError("the fit has several populations but no population parameters")
    return np.zeros(n), np.ones(n)


def default_population(dt: xr.DataTree) -> str:
    """The fit's only population; raises if it has several."""
    labels = sorted(set(llm_table(dt)["population"]))
    if len(labels) != 1:
        raise ValueError(f"the fit has several populations {labels}: say which one the LLM is in")
    return str(labels[0])


def gaussian_latent_posterior(
    y: np.ndarray,
    intercept: np.ndarray,
    design: np.ndarray,
    residual_sd: np.ndarray,
    prior_mean: np.ndarray,
    prior_sd: np.ndarray,
):
    """Conjugate posterior of a Gaussian latent vector, one problem per posterior draw.

    Model: ``u ~ Normal(prior_mean, diag(prior_sd^2))`` and
    ``y_j ~ Normal(intercept_j + design_j @ u, residual_sd_j)`` independently.

    Parameters
    ----------
    y : numpy.ndarray
        Observations, shape ``(n,)`` or ``(S, n)``.
    intercept, residual_sd : numpy.ndarray
        Shape ``(S, n)``.
    design : numpy.ndarray
        Shape ``(S, n, k)``.
    prior_mean, prior_sd : numpy.ndarray
        Shape ``(S, k)``.

    Returns
    -------
    mean : numpy.ndarray
        Posterior mean of ``u``, shape ``(S, k)``.
    cov : numpy.ndarray
        Posterior covariance, shape ``(S, k, k)``.
    log_marginal : numpy.ndarray
        ``log p(y)`` with ``u`` integrated out, shape ``(S,)``.
    """
    resid = y - intercept
    prec_y = 1.0 / residual_sd**2
    prior_prec = 1.0 / prior_sd**2
    weighted = design * prec_y[..., None]
    precision = np.einsum("snk,snl->skl", weighted, design)
    k = design.shape[-1]
    precision[:, np.arange(k), np.arange(k)] += prior_prec
    rhs = prior_mean * prior_prec + np.einsum("snk,sn->sk", weighted, resid)
    chol = np.linalg.cholesky(precision)
    mean = np.linalg.solve(precision, rhs[..., None])[..., 0]
    eye = np.broadcast_to(np.eye(k), precision.shape)
    cov = np.linalg.solve(precision, eye)
    logdet_precision = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    # log p(y) = log p(y | u*) + log p(u*) - log p(u* | y) at the posterior mean u*.
    fitted = intercept + np.einsum("snk,sk->sn", design, mean)
    loglik = -0.5 * (LOG_2PI + np.log(residual_sd**2) + (y - fitted) ** 2 * prec_y).sum(-1)
    logprior = -0.5 * (LOG_2PI + np.log(prior_sd**2) + (mean - prior_mean) ** 2 * prior_prec)
    log_post_at_mean = -0.5 * k * LOG_2PI + 0.5 * logdet_precision
    return mean, cov, loglik + logprior.sum(-1) - log_post_at_mean


def latent_prior(params: BenchmarkParameters, mean: np.ndarray, sd: np.ndarray):
    """Prior mean and SD of the latent vector ``(theta, a..., eta...)``, shape ``(S, k)``:
    ``mean`` and ``sd`` for ``theta``, ``Normal(0, 1)`` for every axis and area factor."""
    n = params.intercept.shape[0]
    prior_mean = np.zeros((n, params.n_latent))
    prior_sd = np.ones((n, params.n_latent))
    prior_mean[:, 0] = mean
    prior_sd[:, 0] = sd
    return prior_mean, prior_sd
