"""The likelihood and predictive distribution of the latent-factor model, written once.

Every function takes ``xp``, the array module: ``numpy`` (posterior draws, with leading
draw axes) or ``pytensor.tensor`` (the model graph built by :mod:`safetywash.model.build`,
1-D parameters). This module imports neither PyMC nor PyTensor, so modules that read saved
fits can predict with it.

For an observed cell ``c = (i, b)`` (LLM ``i``, benchmark ``b``) on the model scale,

.. math::

    y_c \\sim \\mathrm{Normal}(\\alpha_b + \\lambda_b \\theta_i + \\gamma_b \\eta_{i,f(b)},
    \\sigma_b)

(:func:`cell_mean`, :func:`cell_sd`, :func:`log_density`, :func:`predictive_draws`), and a
benchmark's capability correlation is ``lambda / sqrt(lambda^2 + gamma^2 + sigma^2)``
(:func:`capability_correlation`), ``sigma^2`` being measurement noise plus benchmark-specific
variance (:func:`residual_sd`, :func:`variance_shares`). With capability integrated out
(one factor), :func:`marginal_loglik_by_llm` gives each LLM's log-likelihood and
:func:`capability_conditional` the conditional posterior of its capability.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.special import ndtr

LOG_2PI = float(np.log(2 * np.pi))


def _take(values, idx, xp):
    """``values[..., idx]`` (numpy, leading draw axes allowed) or ``values[idx]`` (tensor)."""
    return values[..., idx] if xp is np else values[idx]


def cell_mean(
    intercept,
    loading,
    capability,
    llm_idx,
    benchmark_idx,
    *,
    factor_loading=None,
    area_factor=None,
    cell_factor=None,
    axis_loading=None,
    axis_score=None,
    xp=np,
):
    """Mean of every cell: ``alpha_b + lambda_b * theta_i`` (+ ``gamma_b * eta_{i,f(b)}``)
    (+ ``sum_k L_{b,k} u_{i,k}`` on further capability axes).

    Parameters
    ----------
    intercept, loading : array or tensor
        Per benchmark, shape ``(..., n_benchmarks)``.
    capability : array or tensor
        Per LLM, shape ``(..., n_llms)``.
    llm_idx, benchmark_idx : array or tensor of int
        LLM and benchmark of every cell.
    factor_loading : array or tensor, optional
        Per benchmark loading on its area factor (0 outside factor areas).
    area_factor : array or tensor, optional
        Shape ``(..., n_llms, n_factors)``.
    cell_factor : numpy.ndarray of int, optional
        Area factor of every cell's benchmark (any value where the loading is 0).
    axis_loading, axis_score : array or tensor, optional
        Loadings on the further capability axes, shape ``(..., n_benchmarks, n_axes)``,
        and every LLM's position on them, ``(..., n_llms, n_axes)``.
    xp : module
        ``numpy`` or ``pytensor.tensor``.

    Returns
    -------
    array or tensor
        Shape ``(..., n_cells)``.
    """
    mu = _take(intercept, benchmark_idx, xp) + _take(loading, benchmark_idx, xp) * _take(
        capability, llm_idx, xp
    )
    if factor_loading is not None:
        if xp is np:
            eta = area_factor[..., llm_idx, cell_factor]
        else:
            eta = area_factor[llm_idx, cell_factor]
        mu = mu + _take(factor_loading, benchmark_idx, xp) * eta
    if axis_loading is not None:
        if xp is np:
            on_axes = axis_loading[..., benchmark_idx, :] * axis_score[..., llm_idx, :]
        else:
            on_axes = axis_loading[benchmark_idx] * axis_score[llm_idx]
        mu = mu + on_axes.sum(axis=-1)
    return mu


def cell_sd(residual_sd, benchmark_idx, *, xp=np):
    """Residual SD of every cell: ``sigma_b``, shape ``(..., n_cells)``."""
    return _take(residual_sd, benchmark_idx, xp)


def residual_sd(noise_sd, specific_sd, *, xp=np):
    """Residual SD of a benchmark: ``sqrt(noise^2 + specific^2)``.

    Measurement noise (the sampling variance of a score over a finite set of items) and
    benchmark-specific variance are independent, so their variances add; a residual can
    therefore never fall below the benchmark's noise.
    """
    return xp.sqrt(noise_sd**2 + specific_sd**2)


def axis_variance(axis_loading):
    """Variance a benchmark gets from the further capability axes: ``sum_k L_{b,k}^2``
    (unit-variance axes), shape ``(..., n_benchmarks)``; 0 without axes."""
    return 0.0 if axis_loading is None else (axis_loading**2).sum(axis=-1)


def variance_shares(loading, residual_sd, noise_sd, factor_loading=None, axis_loading=None):
    """Each benchmark's variance split into capability, benchmark-specific and noise.

    With unit capability variance a benchmark's model-scale variance is
    ``lambda^2 + |L_b|^2 + gamma^2 + sigma^2`` and ``sigma^2 = noise^2 + specific^2``
    (``L_b`` its loadings on further capability axes, if any). The shares are
    ``lambda^2 + |L_b|^2`` (capability, every direction of it: ``subspace_r^2``, which is
    ``rho^2`` with one capability dimension), ``specific^2 + gamma^2`` (what the
    benchmark measures beyond capability, area factors included) and ``noise^2``, each
    over the total; they sum to 1 (numpy arrays of any matching shape).

    Returns
    -------
    capability, specific, noise : numpy.ndarray
    """
    other = np.zeros_like(loading) if factor_loading is None else factor_loading**2
    capability = loading**2 + axis_variance(axis_loading)
    total = capability + other + residual_sd**2
    noise = noise_sd**2
    return capability / total, (residual_sd**2 - noise + other) / total, noise / total


def capability_correlation(loading, residual_sd, factor_loading=None, axis_loading=None, *, xp=np):
    """Capability correlation ``rho`` of every benchmark on the model scale.

    ``lambda / sqrt(lambda^2 + |L_b|^2 + sigma^2 + gamma^2)``: the correlation of a
    benchmark's scores with (general) capability when capability has unit variance (area
    factors and further capability axes, unit variance too, count in its variance).
    """
    other = residual_sd**2 + axis_variance(axis_loading)
    if factor_loading is not None:
        other = other + factor_loading**2
    return loading / xp.sqrt(loading**2 + other)


def subspace_correlation(loading, residual_sd, factor_loading=None, axis_loading=None, *, xp=np):
    """Multiple correlation ``R`` of every benchmark with the whole capability subspace.

    ``sqrt(lambda^2 + |L_b|^2) / sqrt(lambda^2 + |L_b|^2 + sigma^2 + gamma^2)``: the
    correlation of its scores with the best linear combination of the K capability
    dimensions (``|rho|`` when K = 1). Never negative.
    """
    explained = loading**2 + axis_variance(axis_loading)
    other = residual_sd**2
    if factor_loading is not None:
        other = other + factor_loading**2
    return xp.sqrt(explained / (explained + other))


def log_density(y, mu, sd, *, xp=np):
    """Normal log density of each cell: ``log N(y | mu, sd)``."""
    z = (y - mu) / sd
    return -0.5 * z**2 - xp.log(sd) - 0.5 * LOG_2PI


def predictive_cdf(y, mu, sd):
    """Normal CDF of each cell's value under its predictive ``N(mu, sd)`` (numpy)."""
    return ndtr((np.asarray(y) - mu) / sd)


def predictive_draws(mu, sd, rng: np.random.Generator):
    """One replicated score per cell and draw: ``mu + sd * e`` with ``e ~ N(0, 1)`` (numpy)."""
    return mu + sd * rng.standard_normal(np.shape(mu))


def marginal_loglik_by_llm(
    y, llm_idx, bench_idx, population_idx, intercept, loading, sigma, pop_mean, pop_sd, *, xp=np
):
    """Log-likelihood of each LLM's observed scores with capability integrated out.

    For LLM ``i`` in population ``p`` with observed benchmarks ``b``, the scores are
    ``N(alpha_b + lambda_b * mu_p, diag(sigma_b^2) + s_p^2 * lambda lambda')``; by the matrix
    determinant lemma and Woodbury's identity its log density is

        -1/2 [sum_b log(2 pi sigma_b^2) + sum_b r_b^2 / sigma_b^2
              + log(1 + s_p^2 a) - s_p^2 q^2 / (1 + s_p^2 a)]

    with ``r_b = y_b - alpha_b - lambda_b mu_p``, ``a = sum_b lambda_b^2 / sigma_b^2`` and
    ``q = sum_b lambda_b r_b / sigma_b^2``: O(cells), no matrix per LLM.

    Parameters
    ----------
    y : array
        Model-scale scores of the observed cells.
    llm_idx, bench_idx, population_idx : numpy.ndarray
        LLM and benchmark of every cell; population of every LLM.
    intercept, loading, sigma : array or tensor
        Per benchmark (numpy: optionally with leading draw axes).
    pop_mean, pop_sd : array or tensor
        Per population (same leading axes).
    xp : module
        ``numpy`` or ``pytensor.tensor``.

    Returns
    -------
    array or tensor
        Per-LLM log-likelihood, shape ``(..., n_llms)``.
    """
    n_llms = len(population_idx)
    lam = loading[..., bench_idx]
    var = sigma[..., bench_idx] ** 2
    mu = pop_mean[..., population_idx[llm_idx]]
    r = y - intercept[..., bench_idx] - lam * mu
    per_cell = [xp.log(2 * np.pi * var) + r**2 / var, lam**2 / var, lam * r / var]
    a_const, a, q = (segment_sum(v, llm_idx, n_llms, xp=xp) for v in per_cell)
    s2 = pop_sd[..., population_idx] ** 2
    denom = 1 + s2 * a
    return -0.5 * (a_const + xp.log(denom) - s2 * q**2 / denom)


def capability_conditional(
    y, llm_idx, bench_idx, population_idx, intercept, loading, sigma, pop_mean, pop_sd
):
    """Mean and SD of each LLM's capability given benchmark parameters (numpy).

    ``theta_i | y, params ~ N(m_i, v_i)`` with ``v_i = 1 / (1/s_p^2 + a_i)`` and
    ``m_i = v_i (mu_p / s_p^2 + sum_b lambda_b (y_b - alpha_b) / sigma_b^2)``. Arrays may
    carry leading draw axes; returns ``(mean, sd)`` of shape ``(..., n_llms)``.
    """
    n_llms = len(population_idx)
    lam = loading[..., bench_idx]
    var = sigma[..., bench_idx] ** 2
    a = segment_sum(lam**2 / var, llm_idx, n_llms)
    q = segment_sum(lam * (y - intercept[..., bench_idx]) / var, llm_idx, n_llms)
    prior_var = pop_sd[..., population_idx] ** 2
    post_var = 1.0 / (1.0 / prior_var + a)
    mean = post_var * (pop_mean[..., population_idx] / prior_var + q)
    return mean, np.sqrt(post_var)


def segment_sum(values, idx, n: int, *, xp=np):
    """Sum the last axis of ``values`` into ``n`` bins given by ``idx``."""
    if xp is np:
        lead = values.shape[:-1]
        flat = values.reshape(-1, values.shape[-1])
        cells = flat.shape[-1]
        to_group = sparse.csr_matrix((np.ones(cells), (np.arange(cells), idx)), shape=(cells, n))
        return np.asarray(flat @ to_group).reshape(*lead, n)
    return xp.zeros(n)[idx].inc(values)
