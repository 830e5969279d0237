"""Further capability axes: their names, data-driven starts and the orientation of draws.

With ``ModelConfig(capability_dims=K)``, K > 1, a cell's mean is

.. math::

    \\alpha_b + \\lambda_b \\theta_i + \\sum_{k=1}^{K-1} L_{b,k} u_{i,k}

``theta`` is the general capability factor (positive loadings on every capability
benchmark, as in the one-factor model) and ``u`` the LLMs' positions on K - 1 further
capability axes (unit variance, independent of ``theta``). Identification:

- General factor against the axes: the capability benchmarks' axis loadings are orthogonal
  to their general loadings (``sum_b lambda_b L_{b,k} = 0`` over capability benchmarks,
  imposed by projection in :mod:`safetywash.model.hierarchy`). Then ``lambda`` is an
  eigenvector of the capability benchmarks' shared covariance ``lambda lambda' + L L'``,
  the one with positive entries: the principal direction the paper's first principal
  component estimates, with no rotation left between it and the axes.
- Among the axes: the prior and likelihood are unchanged by any rotation or reflection of
  the axes (``L R``, ``u R``, ``R`` orthogonal), so the sampler is left free there and
  every draw is turned afterwards to agree best with a fixed target read off the data
  (:func:`axis_start`, :func:`orient_axes`): orthogonal Procrustes, which removes the
  reflections and permutations that would otherwise differ between chains and seeds.
  Everything the package reports from the axes (``subspace_r``, variance shares,
  predictions) is unchanged by the turn.

No PyMC here.
"""

from __future__ import annotations

import numpy as np

#: Dimension of the further capability axes.
AXIS_DIM = "capability_axis"


def axis_names(capability_dims: int) -> list[str]:
    """Coordinates of the further axes: ``axis_2`` ... ``axis_K`` (the general factor is
    the first capability dimension)."""
    return [f"axis_{k}" for k in range(2, capability_dims + 1)]


def ledermann_minimum(dims: int) -> int:
    """Fewest benchmarks whose covariance identifies ``dims`` factors: the smallest p with
    (p - K)^2 >= p + K (Ledermann's bound); 1 for one factor."""
    if dims == 1:
        return 1
    return next(p for p in range(dims + 1, 100) if (p - dims) ** 2 >= p + dims)


def check_capability_dims(study_name: str, n_capability: int, dims: int) -> None:
    """Refuse more capability dimensions than the capability benchmarks identify: K factors
    of p benchmarks need (p - K)^2 >= p + K (Ledermann's bound: no more free parameters
    than the covariance has entries). Raises ValueError naming the study."""
    if dims == 1:
        return
    needed = ledermann_minimum(dims)
    if n_capability < needed:
        raise ValueError(
            f"{dims} capability dimensions need at least {needed} capability benchmarks; "
            f"study {study_name!r} has {n_capability}: use fewer (--capability-dims "
            f"{max(k for k in range(1, dims) if ledermann_minimum(k) <= n_capability)})"
        )


def axis_start(
    y: np.ndarray,
    llm_idx: np.ndarray,
    benchmark_idx: np.ndarray,
    theta: np.ndarray,
    slopes: np.ndarray,
    capability_cols: np.ndarray,
    n_axes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Axis scores and loadings from the capability benchmarks' residuals on the general
    factor.

    Each benchmark's residual ``y - slope * theta``, centred over its observed cells, is
    laid out as an LLM x capability-benchmark grid (missing cells 0); its leading
    ``n_axes`` principal components give the LLMs' axis scores (unit mean square) and the
    capability benchmarks' loadings, and every benchmark's loadings are the least-squares
    coefficients of its residuals on those scores. Each axis is signed so that its
    largest capability loading is positive (a deterministic target for
    :func:`orient_axes`).

    Returns
    -------
    scores : numpy.ndarray, shape (n_llms, n_axes)
    loadings : numpy.ndarray, shape (n_benchmarks, n_axes)
    """
    n_llms = len(theta)
    n_bench = int(max(benchmark_idx.max() + 1, np.max(capability_cols, initial=0) + 1))
    resid = y - slopes[benchmark_idx] * theta[llm_idx]
    sums = np.bincount(benchmark_idx, weights=resid, minlength=n_bench)
    counts = np.maximum(np.bincount(benchmark_idx, minlength=n_bench), 1)
    resid = resid - (sums / counts)[benchmark_idx]
    grid = np.zeros((n_llms, len(capability_cols)))
    col_of = {int(c): j for j, c in enumerate(capability_cols)}
    on_cap = np.isin(benchmark_idx, capability_cols)
    cols = np.array([col_of[int(b)] for b in benchmark_idx[on_cap]], dtype=np.int64)
    grid[llm_idx[on_cap], cols] = resid[on_cap]
    u, sv, vt = np.linalg.svd(grid, full_matrices=False)
    scores = u[:, :n_axes] * np.sqrt(n_llms)
    cap_loadings = vt[:n_axes].T * sv[:n_axes] / np.sqrt(n_llms)
    signs = np.sign(cap_loadings[np.abs(cap_loadings).argmax(axis=0), np.arange(n_axes)])
    scores, cap_loadings = scores * signs, cap_loadings * signs
    loadings = np.zeros((n_bench, n_axes))
    for b in range(n_bench):
        cells = benchmark_idx == b
        if cells.sum() > n_axes:
            design = scores[llm_idx[cells]]
            loadings[b] = np.linalg.lstsq(design, resid[cells], rcond=None)[0]
    loadings[capability_cols] = cap_loadings
    return scores, loadings


def orient_axes(
    axis_loading: np.ndarray,
    axis_score: np.ndarray | None,
    target: np.ndarray,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Turn every draw's axes to agree best with ``target`` (orthogonal Procrustes).

    For each draw, ``R = U V'`` from the SVD ``U S V' = L' T`` minimises ``|L R - T|``
    over orthogonal ``R`` (rotations and reflections); loadings and scores are both
    multiplied by it, so every cell mean is unchanged.

    Parameters
    ----------
    axis_loading : numpy.ndarray, shape (..., n_benchmarks, n_axes)
        Axis loadings of each draw.
    axis_score : numpy.ndarray, shape (..., n_llms, n_axes), optional
        The LLMs' axis scores of the same draws.
    target : numpy.ndarray, shape (n_rows, n_axes)
        Loadings of the benchmarks ``rows`` to agree with.
    rows : numpy.ndarray of int, optional
        The benchmarks ``target`` describes (default: all).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray or None)
        The turned loadings and scores.
    """
    compared = axis_loading if rows is None else axis_loading[..., rows, :]
    cross = np.swapaxes(compared, -1, -2) @ target
    u, _, vt = np.linalg.svd(cross)
    turn = u @ vt
    turned_scores = None if axis_score is None else axis_score @ turn
    return axis_loading @ turn, turned_scores
