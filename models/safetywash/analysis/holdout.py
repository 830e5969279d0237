"""Held-out prediction: how well does the fitted model predict scores it has not seen?

A random share of the observed cells is masked
(:func:`~safetywash.analysis.cellsplit.split_cells`), the model is fitted to the rest
(:func:`training_study`, :func:`safetywash.inference.sampling.fit`) and its posterior
predictive (:func:`safetywash.analysis.predictive.cell_parameters`, the model's own
likelihood) is scored on the masked cells (:func:`predictive_scores`) on the model's scale:
the held-out scores pass through the training fit's score transform
(:func:`safetywash.inference.fitfile.fitted_transform`: orientation, the optional logit,
standardisation by the training benchmark mean and SD). The baseline is iterative-PCA
imputation (:func:`iterative_pca`) of the same model-scale training matrix, as in
observational-scaling-law work, with its rank chosen on an inner validation split of the
training cells (:func:`choose_rank`).

The masking rule is :func:`safetywash.analysis.cellsplit.split_cells`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from safetywash.analysis.cellsplit import MIN_PER_BENCHMARK, greedy_mask, split_cells
from safetywash.analysis.dims_choice import dims_choice
from safetywash.analysis.intervals import SAMPLE_DIMS
from safetywash.analysis.predictive import cell_parameters
from safetywash.analysis.retry import fit_with_retry
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import diagnostics_of, fit_config, fitted_transform
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.likelihood import log_density, predictive_cdf

PCA_RANKS = (1, 2, 3)
INTERVAL_PROB = 0.9


# ---------------------------------------------------------------------- masking
def training_study(
    study: BenchmarkStudy, held_out: np.ndarray, *, min_llms: int = MIN_PER_BENCHMARK
) -> BenchmarkStudy:
    """The study restricted to the training cells, rebuilt and re-validated from frames."""
    catalog = study.benchmarks.rename_axis("key").reset_index()
    return BenchmarkStudy.from_frames(
        study.scores.loc[~held_out],
        study.llms,
        catalog,
        name=f"{study.name}-train",
        source=f"{study.name} (training cells)",
        min_llms=min_llms,
        excluded=study.excluded,
    )


# ---------------------------------------------------------------------- scale
def model_scale_values(dt: xr.DataTree, cells: pd.DataFrame) -> np.ndarray:
    """Cells (``benchmark``, ``value`` in stored units) on a fit's model scale.

    Uses the fit's own score transform (orientation, optional logit, standardisation by
    the fitted benchmark mean and SD), as the model saw its training scores.
    """
    transform = fitted_transform(dt)
    idx = transform.positions(cells["benchmark"].to_numpy())
    return transform.forward(cells["value"].to_numpy(dtype=float), idx)


# ---------------------------------------------------------------------- metrics
def predictive_scores(
    y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, *, prob: float = INTERVAL_PROB
) -> dict[str, float]:
    """Score a normal-mixture posterior predictive on held-out values.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Held-out values.
    mu, sigma : numpy.ndarray, shape (S, n)
        Posterior draws of each cell's predictive mean and SD.
    prob : float
        Central interval probability for the coverage.

    Returns
    -------
    dict
        ``rmse`` of the posterior predictive mean (the mean of ``mu`` over draws);
        ``mlpd``, the mean over cells of log((1/S) sum_s Normal(y | mu_s, sigma_s));
        ``coverage90`` (named for the default ``prob``), the share of cells inside the
        equal-tailed central ``prob`` interval of the mixture, i.e. whose predictive CDF
        value lies in [(1 - prob)/2, (1 + prob)/2].
    """
    y = np.asarray(y, dtype=float)
    mu = np.atleast_2d(np.asarray(mu, dtype=float))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=float))
    if mu.shape != sigma.shape or mu.shape[1] != y.shape[0]:
        raise ValueError(f"shapes differ: y {y.shape}, mu {mu.shape}, sigma {sigma.shape}")
    mean = mu.mean(axis=0)
    rmse = float(np.sqrt(np.mean((y - mean) ** 2)))
    lpd = logsumexp(log_density(y, mu, sigma), axis=0) - np.log(mu.shape[0])
    pit = predictive_cdf(y, mu, sigma).mean(axis=0)
    tail = (1.0 - prob) / 2.0
    covered = (pit >= tail) & (pit <= 1.0 - tail)
    return {"rmse": rmse, "mlpd": float(np.mean(lpd)), "coverage90": float(np.mean(covered))}


def rmse(y: np.ndarray, prediction: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(prediction)) ** 2)))


# ---------------------------------------------------------------------- PCA baseline
def iterative_pca(
    matrix: np.ndarray, rank: int, *, tol: float = 1e-7, max_iter: int = 2000
) -> np.ndarray:
    """Fill the NaN entries of a matrix by iterative rank-``rank`` SVD reconstruction.

    Start from the column means of the observed entries; then repeat: centre the columns
    of the filled matrix, take its rank-``rank`` truncated SVD, add the means back and
    replace the missing entries by the reconstruction, until the missing entries change
    by less than ``tol`` (relative to the matrix norm) or ``max_iter`` is reached.

    Returns
    -------
    numpy.ndarray
        The matrix with observed entries unchanged and missing ones imputed.
    """
    matrix = np.asarray(matrix, dtype=float)
    observed = ~np.isnan(matrix)
    if rank < 1 or rank >= min(matrix.shape):
        raise ValueError(f"rank must be in [1, {min(matrix.shape) - 1}], not {rank}")
    means = np.array(
        [
            matrix[observed[:, j], j].mean() if observed[:, j].any() else 0.0
            for j in range(matrix.shape[1])
        ]
    )
    filled = np.where(observed, matrix, means[None, :])
    norm = max(float(np.linalg.norm(filled)), 1e-12)
    for _ in range(max_iter):
        col = filled.mean(axis=0)
        u, s, vt = np.linalg.svd(filled - col, full_matrices=False)
        recon = (u[:, :rank] * s[:rank]) @ vt[:rank] + col
        new = np.where(observed, matrix, recon)
        change = float(np.linalg.norm(new - filled)) / norm
        filled = new
        if change < tol:
            break
    return filled


def choose_rank(
    matrix: np.ndarray,
    ranks: Sequence[int] = PCA_RANKS,
    *,
    fraction: float = 0.1,
    seed: int = 0,
) -> tuple[int, dict[int, float]]:
    """Pick the PCA rank with the lowest RMSE on an inner validation split.

    A further ``fraction`` of the observed entries is masked with the same rule as the
    outer split (each column keeps >= 3 entries with >= 2 distinct values, each row >= 1),
    every rank is fitted to the rest, and the rank with the lowest RMSE on the masked
    entries wins (ties: the smaller rank). Ranks >= min(matrix.shape) are skipped.

    Returns
    -------
    (int, dict)
        The chosen rank and the inner RMSE of every rank tried.
    """
    matrix = np.asarray(matrix, dtype=float)
    rows, cols = np.nonzero(~np.isnan(matrix))
    held = greedy_mask(cols, rows, matrix[rows, cols], fraction, np.random.default_rng(seed))
    inner = matrix.copy()
    inner[rows[held], cols[held]] = np.nan
    scores = {}
    for k in ranks:
        if k < 1 or k >= min(matrix.shape):
            continue
        filled = iterative_pca(inner, k)
        scores[k] = rmse(matrix[rows[held], cols[held]], filled[rows[held], cols[held]])
    if not scores:
        raise ValueError(f"no usable rank among {list(ranks)} for a {matrix.shape} matrix")
    best = min(scores, key=lambda k: (scores[k], k))
    return best, scores


# ---------------------------------------------------------------------- driver
def run_holdout(
    study: BenchmarkStudy,
    fraction: float = 0.1,
    seed: int = 0,
    *,
    config: ModelConfig | None = None,
    settings: SamplerSettings | None = None,
    ranks: Sequence[int] = PCA_RANKS,
    dataset: str | None = None,
    progressbar: bool = False,
    fitter: Callable[..., xr.DataTree] = fit_with_retry,
) -> dict:
    """Mask, fit, and score the model and the PCA baseline on the held-out cells.

    Parameters
    ----------
    study : BenchmarkStudy
        The full study; the config's ``level`` is applied before masking, so every
        held-out cell belongs to a modelled benchmark.
    fraction, seed : float, int
        Share of cells to hold out and the seed of the mask (and, unless ``settings`` is
        given, of the sampler).
    config, settings : ModelConfig, SamplerSettings, optional
        Defaults ``ModelConfig()`` and ``SamplerSettings(seed=seed)``.
    ranks : sequence of int
        Candidate PCA ranks.
    dataset : str, optional
        Name written in the result (default ``study.name``).
    fitter : callable
        ``fitter(train, config, settings, progressbar=...)`` fits the training cells (default:
        as ``fit`` does, retried once when untrusted; or K chosen on them alone,
        :func:`safetywash.analysis.capability_dims.select_capability_dims`).

    Returns
    -------
    dict
        Exactly ``{"dataset", "fraction", "n_cells", "model": {"rmse", "mlpd", "coverage90",
        ...}, "pca": {"rmse", "rank", ...}}``; detail (diagnostics, sampler settings, K,
        mask seed, training size, PCA ranks) only inside ``model`` and ``pca``.
    """
    config = config or ModelConfig()
    settings = settings or SamplerSettings(seed=seed)
    study = study.select_level(config.level)
    held = split_cells(study, fraction, seed)
    train = training_study(study, held)
    test = study.scores.loc[held].reset_index(drop=True)

    t0 = time.perf_counter()
    dt = fitter(train, config, settings, progressbar=progressbar)
    wall, y = time.perf_counter() - t0, model_scale_values(dt, test)
    mu, sigma = (
        a.stack(sample=SAMPLE_DIMS).transpose("sample", "cell").values
        for a in cell_parameters(dt, test["llm"].to_numpy(), test["benchmark"].to_numpy())
    )
    model = predictive_scores(y, mu, sigma)
    diagnostics = diagnostics_of(dt)

    pca = pca_baseline(train, test, y, config=config, ranks=ranks, seed=seed)
    model.update(
        {
            "trustworthy": bool(diagnostics.trustworthy),
            "verdict": diagnostics.verdict(),
            "fit_seconds": round(wall, 1),
            "draws": settings.draws,
            "tune": settings.tune,
            "chains": settings.chains,
            "sampler_seed": settings.seed,
            "mask_seed": seed,
            "n_train_cells": int(train.n_cells),
            "capability_dims": fit_config(dt).capability_dims,
            "dims_choice": dims_choice(dt),
        }
    )
    return {
        "dataset": dataset or study.name,
        "fraction": fraction,
        "n_cells": int(held.sum()),
        "model": model,
        "pca": pca,
    }


def pca_baseline(
    train: BenchmarkStudy,
    test: pd.DataFrame,
    y: np.ndarray,
    *,
    config: ModelConfig | None = None,
    ranks: Sequence[int] = PCA_RANKS,
    seed: int = 0,
) -> dict:
    """Iterative-PCA imputation of the model-scale training matrix, scored on ``test``.

    The training matrix is the model's own ``y`` (:func:`safetywash.model.data.prepare_data`),
    so the baseline and the model are compared on the same cells and scale.
    """
    data = prepare_data(train, config or ModelConfig())
    llms, benchmarks = list(data.study.llms.index), list(data.study.benchmarks.index)
    matrix = np.full((len(llms), len(benchmarks)), np.nan)
    matrix[data.llm_idx, data.benchmark_idx] = data.y
    rank, inner = choose_rank(matrix, ranks, seed=seed)
    rows = pd.Index(llms).get_indexer(test["llm"])
    cols = pd.Index(benchmarks).get_indexer(test["benchmark"])
    filled = iterative_pca(matrix, rank)
    by_rank = {k: rmse(y, iterative_pca(matrix, k)[rows, cols]) for k in inner}
    return {
        "rmse": rmse(y, filled[rows, cols]),
        "rank": rank,
        "inner_rmse_by_rank": {str(k): v for k, v in inner.items()},
        "test_rmse_by_rank": {str(k): v for k, v in by_rank.items()},
        "column_mean_rmse": rmse(y, np.zeros_like(y)),
    }
