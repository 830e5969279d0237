"""Capability integrated out with up to three capability dimensions, written once.

Besides the general factor ``theta_i ~ N(mu_p, s_p^2)`` (LLM ``i`` in population ``p``) an
LLM may carry ``K - 1`` axis factors ``u_{i,k} ~ N(0, 1)``, independent of ``theta`` and of
each other in every population, so an observed cell ``(i, b)`` has mean

.. math::

    \\alpha_b + \\lambda_b \\theta_i + \\sum_k L_{b,k} u_{i,k}

and SD ``sigma_b``. Writing ``Lfull_b = (lambda_b, L_b)`` and
``S_p = diag(s_p^2, 1, ..., 1)``, LLM ``i``'s scores are
``N(alpha + lambda mu_p, diag(sigma^2) + Lfull S_p Lfull')``; with the ``K x K`` matrix
``M_i = S_p^{-1} + sum_b Lfull_b Lfull_b' / sigma_b^2`` the matrix determinant lemma and
Woodbury's identity give its log density in O(cells) (:func:`marginal_loglik_by_llm`) and
Gaussian conjugacy the factors' conditional ``N(m_p + M_i^{-1} q_i, M_i^{-1})``
(:func:`capability_conditional`, :func:`draw_capability`).

``K <= 3``: the determinant and inverse of ``M_i`` are closed-form cofactor expressions
over elementwise arithmetic, so the log-likelihood runs on numpy arrays with leading draw
axes and on ``pytensor.tensor`` graphs alike (no linear-algebra ``Op``: nutpie's numba
backend compiles it). This module imports neither PyMC nor PyTensor; ``xp`` is passed in.
"""

from __future__ import annotations

import numpy as np

from safetywash.model import likelihood
from safetywash.model.likelihood import segment_sum

MAX_AXES = 2


def _n_axes(axis_loading) -> int:
    """Number of axis factors ``K - 1``: the static last dimension of ``axis_loading``."""
    static = getattr(getattr(axis_loading, "type", None), "shape", None)
    n_axes = np.shape(axis_loading)[-1] if static is None else static[-1]
    if n_axes is None:
        raise ValueError("axis_loading needs a static last dimension (the number of axes)")
    if n_axes > MAX_AXES:
        raise ValueError(
            f"axis_loading has {n_axes} columns: at most {MAX_AXES} axis factors (K <= 3) "
            "are supported, the closed-form determinant stops at 3 x 3"
        )
    return int(n_axes)


def _scaled_terms(y, llm_idx, bench_idx, population_idx, params, axis_loading, xp):
    """Per-LLM sums that define ``M_i`` and ``q_i``, in coordinates with unit prior variance.

    With ``D_p = diag(s_p, 1, ..., 1)`` returns ``const_i = sum_b log(2 pi sigma_b^2) +
    r_b^2 / sigma_b^2``, ``N_i = D_p M_i D_p = I + D_p A_i D_p`` as a nested list of its
    entries and ``D_p q_i``, where ``A_i = sum_b Lfull_b Lfull_b' / sigma_b^2``,
    ``q_i = sum_b Lfull_b r_b / sigma_b^2`` and ``r_b = y_b - alpha_b - lambda_b mu_p``.
    ``log det N_i = log det S_p + log det M_i`` and ``q' M^{-1} q = (Dq)' N^{-1} (Dq)``; for
    ``K = 1`` these are :func:`safetywash.model.likelihood.marginal_loglik_by_llm`'s
    ``1 + s_p^2 a`` and ``s_p^2 q^2 / (1 + s_p^2 a)``.
    """
    intercept, loading, sigma, pop_mean, pop_sd = params
    n_llms = len(population_idx)
    cols = [loading[..., bench_idx]]
    cols += [axis_loading[..., bench_idx, k] for k in range(_n_axes(axis_loading))]
    var = sigma[..., bench_idx] ** 2
    r = y - intercept[..., bench_idx] - cols[0] * pop_mean[..., population_idx[llm_idx]]
    const = segment_sum(xp.log(2 * np.pi * var) + r**2 / var, llm_idx, n_llms, xp=xp)
    s = pop_sd[..., population_idx]
    scale = [s] + [1.0] * (len(cols) - 1)
    q = [scale[j] * segment_sum(c * r / var, llm_idx, n_llms, xp=xp) for j, c in enumerate(cols)]
    m = [[None] * len(cols) for _ in cols]
    for j, cj in enumerate(cols):
        for k in range(j, len(cols)):
            a_jk = segment_sum(cj * cols[k] / var, llm_idx, n_llms, xp=xp)
            m[j][k] = m[k][j] = scale[j] * scale[k] * a_jk + (1.0 if j == k else 0.0)
    return const, m, q, s


def _det_adjugate(m):
    """Determinant and adjugate of a symmetric 1x1, 2x2 or 3x3 matrix of elementwise entries.

    ``m`` is a nested list (``m[j][k]`` arrays or tensors); so is the adjugate, with
    ``inverse = adjugate / det``. Cofactor formulas only, so any array module works.
    """
    if len(m) == 1:
        return m[0][0], [[1.0]]
    if len(m) == 2:
        (a, b), (_, d) = m
        return a * d - b**2, [[d, -b], [-b, a]]
    (a, b, c), (_, d, e), (_, _, f) = m
    c00, c11, c22 = d * f - e**2, a * f - c**2, a * d - b**2
    c01, c02, c12 = c * e - b * f, b * e - c * d, b * c - a * e
    det = a * c00 + b * c01 + c * c02
    return det, [[c00, c01, c02], [c01, c11, c12], [c02, c12, c22]]


def marginal_loglik_by_llm(
    y,
    llm_idx,
    bench_idx,
    population_idx,
    intercept,
    loading,
    sigma,
    pop_mean,
    pop_sd,
    *,
    axis_loading=None,
    xp=np,
):
    """Log-likelihood of each LLM's observed scores with all capability factors integrated out.

    For LLM ``i`` in population ``p`` the log density of its scores is

        -1/2 [sum_b log(2 pi sigma_b^2) + sum_b r_b^2 / sigma_b^2
              + log det S_p + log det M_i - q' M_i^{-1} q]

    with ``r_b = y_b - alpha_b - lambda_b mu_p`` and ``q = sum_b Lfull_b r_b / sigma_b^2``;
    it is evaluated as ``log det N_i - (D q)' N_i^{-1} (D q)`` with ``N_i = D_p M_i D_p``,
    ``D_p = diag(s_p, 1, ..., 1)`` (the same numbers, no ``1 / s_p^2``).

    Parameters
    ----------
    y : array or tensor
        Model-scale scores of the observed cells.
    llm_idx, bench_idx, population_idx : numpy.ndarray
        LLM and benchmark of every cell; population of every LLM.
    intercept, loading, sigma : array or tensor
        Per benchmark (numpy: optionally with leading draw axes).
    pop_mean, pop_sd : array or tensor
        Per population (same leading axes).
    axis_loading : array or tensor, optional
        Loadings on the axis factors, shape ``(..., n_benchmarks, K - 1)`` with ``K - 1 <= 2``
        (a tensor needs a static last dimension). ``None``: one factor, exactly
        :func:`safetywash.model.likelihood.marginal_loglik_by_llm`.
    xp : module
        ``numpy`` or ``pytensor.tensor``.

    Returns
    -------
    array or tensor
        Per-LLM log-likelihood, shape ``(..., n_llms)``.

    Raises
    ------
    ValueError
        If ``axis_loading`` has more than two columns or no static column count.
    """
    args = (y, llm_idx, bench_idx, population_idx, intercept, loading, sigma, pop_mean, pop_sd)
    if axis_loading is None:
        return likelihood.marginal_loglik_by_llm(*args, xp=xp)
    const, m, q, _ = _scaled_terms(*args[:4], args[4:], axis_loading, xp)
    det, adj = _det_adjugate(m)
    quad = sum(adj[j][k] * q[j] * q[k] for j in range(len(q)) for k in range(len(q)))
    return -0.5 * (const + xp.log(det) - quad / det)


def capability_conditional(
    y,
    llm_idx,
    bench_idx,
    population_idx,
    intercept,
    loading,
    sigma,
    pop_mean,
    pop_sd,
    *,
    axis_loading=None,
):
    """Conditional distribution of each LLM's capability factors given the parameters (numpy).

    The factors ``f_i = (theta_i, u_{i,1}, ...)`` given the scores are
    ``N(M_i^{-1} (S_p^{-1} m_p + q'_i), M_i^{-1})`` with ``m_p = (mu_p, 0, ..., 0)`` and
    ``q'_i = sum_b Lfull_b (y_b - alpha_b) / sigma_b^2``; the mean is computed as the equal
    ``m_p + M_i^{-1} q_i`` and the covariance as ``D_p N_i^{-1} D_p``.

    Parameters
    ----------
    y, llm_idx, bench_idx, population_idx, intercept, loading, sigma, pop_mean, pop_sd
        As for :func:`marginal_loglik_by_llm` (numpy arrays, leading draw axes allowed).
    axis_loading : numpy.ndarray, optional
        Shape ``(..., n_benchmarks, K - 1)``, ``K - 1 <= 2``.

    Returns
    -------
    mean, sd : numpy.ndarray
        Without ``axis_loading``: :func:`safetywash.model.likelihood.capability_conditional`,
        each of shape ``(..., n_llms)``.
    mean, chol : numpy.ndarray
        With ``axis_loading``: shapes ``(..., n_llms, K)`` (column 0 ``theta``, then the axes)
        and ``(..., n_llms, K, K)``, the lower Cholesky factor of the covariance ``M_i^{-1}``.
    """
    args = (y, llm_idx, bench_idx, population_idx, intercept, loading, sigma, pop_mean, pop_sd)
    if axis_loading is None:
        return likelihood.capability_conditional(*args)
    _, m, q, s = _scaled_terms(*args[:4], args[4:], axis_loading, np)
    n_factors = len(q)
    n_mat = np.stack([np.stack(np.broadcast_arrays(*row), axis=-1) for row in m], axis=-2)
    n_inv = np.linalg.inv(n_mat)
    scale = np.ones((*s.shape, n_factors))
    scale[..., 0] = s
    mean = scale * np.einsum("...jk,...k->...j", n_inv, np.stack(q, axis=-1))
    mean[..., 0] += pop_mean[..., population_idx]
    chol = scale[..., :, None] * np.linalg.cholesky(n_inv)
    return mean, chol


def draw_capability(mean, chol, rng: np.random.Generator):
    """One draw of the capability factors per leading index: ``mean + chol @ z`` (numpy).

    Parameters
    ----------
    mean : numpy.ndarray
        Shape ``(..., K)``.
    chol : numpy.ndarray
        Lower Cholesky factors of the covariances, shape ``(..., K, K)``.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        Shape ``(..., K)``, with ``z ~ N(0, I)`` independent across leading indices.
    """
    z = rng.standard_normal(np.shape(mean))
    return mean + np.einsum("...jk,...k->...j", chol, z)
