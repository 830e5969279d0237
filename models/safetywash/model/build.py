"""The hierarchical latent-factor model: a pure builder from a study to a ``pm.Model``.

Scores are oriented by the catalog (higher = better/safer) and transformed per benchmark
(:mod:`safetywash.model.transform`; standardised by default), then

.. math::

    y_{c} \\sim \\mathrm{Normal}(\\alpha_b + \\lambda_b \\theta_i + \\gamma_b \\eta_{i,a(b)},
    \\sigma_b)

for each observed cell ``c = (i, b)`` only (missing cells never enter the likelihood; the
cell mean, SD and ``rho`` come from :mod:`safetywash.model.likelihood`). ``theta`` is each
LLM's latent capability (standard scale; populations may differ in mean and spread),
``lambda`` the capability loading (positive and partially pooled for capability benchmarks,
which fixes the sign of ``theta``; free in sign and pooled within the safety area for safety
benchmarks, the area means pooled in turn across areas, so a thin area borrows strength from
the others), ``sigma`` the residual scale (benchmark-specific variance, plus measurement
noise where it is known from the number of scored items of a proportion score), and the
optional ``eta``/``gamma`` area factors
(confirmatory: only a factor area's own benchmarks load on it; its best-observed
benchmark's loading is positive). Every prior hyperparameter is read from
``ModelConfig.priors`` (:class:`safetywash.model.config.Priors`).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from safetywash.data.study import BenchmarkStudy
from safetywash.model.axes import AXIS_DIM
from safetywash.model.config import ModelConfig, Priors
from safetywash.model.data import ModelData, benchmark_centers, prepare_data, zero_sum_by_group
from safetywash.model.hierarchy import axis_loadings, loadings, residuals
from safetywash.model.likelihood import (
    capability_correlation,
    cell_mean,
    cell_sd,
    subspace_correlation,
)
from safetywash.model.marginal import marginal_loglik_by_llm
from safetywash.model.pooling import capability_mode, pooling

#: The ``pm.Data`` containers of every observed cell's LLM and benchmark.
LLM_INDEX = "llm_idx"
BENCHMARK_INDEX = "benchmark_idx"
#: The ``pm.Data`` container of the model-scale scores of the observed cells.
OBSERVED_SCORES = "observed_score"
#: The ``pm.Data`` container of the benchmarks' centres
#: (:func:`~safetywash.model.data.benchmark_centers`): read off the scores, so a compiled
#: model refitted to new scores gets them too.
BENCHMARK_CENTERS = "benchmark_center"
#: Variables in the sampler's coordinates: standardised offsets, log-scale copies of
#: ``loading`` and ``residual_sd``, and the pieces of ``factor_loading`` and
#: ``area_loading_mean``. Fits keep them out
#: of ``posterior`` (see :func:`safetywash.inference.sampling.fit`); every one is a function
#: of the interpretable variables that stay, except the radial direction of
#: ``capability_z`` and two directions of ``area_factor_z`` per factor, which the model
#: normalises or projects away.
SAMPLER_SPACE_VARIABLES = (
    "capability_z",
    "capability_loading_z",
    "capability_loading_wz",
    "capability_loading_log",
    "safety_loading_z",
    "area_loading_z",
    "area_loading_aux",
    "area_loading_average",
    "safety_loading_mean_z",
    "log_specific_sd",
    "log_specific_sd_z",
    "log_specific_sd_wz",
    "intercept_at_center",
    "area_factor_z",
    "factor_anchor_loading",
    "factor_free_loading",
    "axis_score_z",
    "axis_loading_capability_raw",
    "axis_loading_safety",
)


def build_model(study: BenchmarkStudy, config: ModelConfig | None = None) -> pm.Model:
    """Build the latent-factor model for a study (no sampling).

    Parameters
    ----------
    study : BenchmarkStudy
    config : ModelConfig, optional

    Returns
    -------
    pymc.Model
        Dims ``llm``, ``benchmark``, ``cell``, ``population``, ``area``,
        ``capability_benchmark``, ``safety_benchmark`` (and ``factor``,
        ``factor_benchmark`` with area factors). Deterministics ``capability`` (theta),
        ``loading`` (lambda), ``residual_sd`` (sigma, known noise included),
        ``specific_sd`` and ``rho`` (capability correlation of every benchmark on the model
        scale, noise counted in its variance).
    """
    config = config or ModelConfig()
    data = prepare_data(study, config)
    return build_model_from_data(data, config)


def build_model_from_data(data: ModelData, config: ModelConfig) -> pm.Model:
    """Build the model from already prepared :class:`ModelData`."""
    priors = config.scaled_priors
    marginal = capability_mode(data, config) == "marginal"
    with pm.Model(coords=data.coords) as model:
        llm_idx = pm.Data(LLM_INDEX, data.llm_idx, dims="cell")
        bench_idx = pm.Data(BENCHMARK_INDEX, data.benchmark_idx, dims="cell")
        pop_idx = pm.Data("population_idx", data.population_idx, dims="llm")
        # A container, so a compiled model can be refitted to new scores of the same design.
        y = pm.Data(OBSERVED_SCORES, data.y, dims="cell")
        pop_mean, pop_sd = _population(priors, len(data.populations))
        theta = None if marginal else _capability(data, pop_mean, pop_sd, pop_idx)
        pool = pooling(data, config)
        loading = loadings(data, pool, priors)
        sigma = residuals(data, priors, pool)
        intercept = _intercepts(data, priors, loading)
        axis = axis_loadings(data, priors, loading) if data.capability_dims > 1 else None

        if marginal:
            loglik = marginal_loglik_by_llm(
                y,
                data.llm_idx,
                data.benchmark_idx,
                data.population_idx,
                intercept,
                loading,
                sigma,
                pop_mean,
                pop_sd,
                axis_loading=axis,
                xp=pt,
            )
            pm.Potential("score_marginal", loglik.sum())
            gamma_b = None
        else:
            gamma_b, eta = _area_factors(data, priors, theta) if data.factor_keys else (None, None)
            mu = cell_mean(
                intercept,
                loading,
                theta,
                llm_idx,
                bench_idx,
                factor_loading=gamma_b,
                area_factor=eta,
                cell_factor=data.cell_factor,
                axis_loading=axis,
                axis_score=None if axis is None else _axis_scores(theta, data.capability_dims - 1),
                xp=pt,
            )
        rho = capability_correlation(loading, sigma, gamma_b, axis, xp=pt)
        pm.Deterministic("rho", rho, dims="benchmark")
        if axis is not None:
            r = subspace_correlation(loading, sigma, gamma_b, axis, xp=pt)
            pm.Deterministic("subspace_r", r, dims="benchmark")
        if not marginal:
            sd = cell_sd(sigma, bench_idx, xp=pt)
            pm.Normal("score", mu, sd, observed=y, dims="cell")
    return model


def _population(priors: Priors, n_pop: int):
    """Mean and SD of capability in every population (0 and 1 for a single one)."""
    if n_pop == 1:
        return pt.zeros(1), pt.ones(1)
    pop_mean = pm.ZeroSumNormal(
        "population_mean", sigma=priors.population_mean_sd, dims="population"
    )
    pop_log_sd = pm.ZeroSumNormal(
        "population_log_sd", sigma=priors.population_log_sd_sd, dims="population"
    )
    return pop_mean, pt.exp(pop_log_sd)


def _capability(data: ModelData, pop_mean, pop_sd, pop_idx):
    """Capability of every LLM, normalised to unit spread within its population."""
    n_pop = len(data.populations)
    # Zero-sum within each population (an orthonormal, O(n) map from n - P free
    # coordinates), so population means are separate from benchmark intercepts and no
    # direction of the sampler's space is left to the prior alone.
    w = pm.Normal("capability_z", 0.0, 1.0, dims="capability_basis")
    z = zero_sum_by_group(w, data.population_idx, n_pop, xp=pt)
    # Unit spread within each population: the scale of theta is fixed exactly rather than
    # by the prior, which removes the slow theta-scale / loading-scale ridge.
    sq = pt.inc_subtensor(pt.zeros(n_pop)[pop_idx], z**2)
    counts = np.bincount(data.population_idx, minlength=n_pop).astype(float)
    # (The tiny floor keeps the default start z = 0 finite; samplers start from
    # initial_point() instead.)
    z = z / pt.sqrt(sq / counts + 1e-12)[pop_idx]
    theta = pop_mean[pop_idx] + pop_sd[pop_idx] * z
    return pm.Deterministic("capability", theta, dims="llm")


def _intercepts(data: ModelData, priors: Priors, loading):
    """Intercepts, ``intercept ~ Normal(0, intercept_sd)``, sampled at each benchmark's LLMs.

    The sampler sees ``intercept_at_center = intercept + loading * c_b``, the cell mean at
    ``c_b``, about the mean data-driven capability of the LLMs that have the benchmark
    (:func:`~safetywash.model.data.benchmark_centers`): a shift
    of ``intercept`` (unit Jacobian), so the model is unchanged. A benchmark scored only
    on recent (or only on early) LLMs has ``c_b`` far from 0, and its intercept and
    loading trade off along a ridge (Epoch's benchmark stitching: R-hat 1.02 on the
    loadings, their pooled spread and the intercepts); its mean at ``c_b`` does not.
    """
    center = pm.Data(BENCHMARK_CENTERS, benchmark_centers(data), dims="benchmark")
    at_center = pm.Normal(
        "intercept_at_center", loading * center, priors.intercept_sd, dims="benchmark"
    )
    return pm.Deterministic("intercept", at_center - loading * center, dims="benchmark")


def _apart_from(raw, theta):
    """``raw`` (llm x columns) less its components along a constant and along ``theta``."""
    raw = raw - raw.mean(axis=0)
    centred = theta - theta.mean()
    along = (centred @ raw) / (centred @ centred)
    return raw - centred[:, None] * along[None, :]


def _axis_scores(theta, n_axes: int):
    """Every LLM's position on the further capability axes (``axis_score``, llm x
    capability_axis), orthonormal within the study, like capability itself: standard
    normal offsets with their mean and their component along the general capability
    ``theta`` projected out (so they do not trade off against intercepts and general
    loadings, as for the area factors), then given exactly unit mean square and no
    correlation with each other (symmetric orthonormalisation, which commutes with any
    rotation of the axes). The axes' scale is then fixed rather than left to the prior,
    which removes the slow ridge between it and the axis loadings (HELM, two dimensions:
    R-hat 1.03 on the loadings of near-copies of MMLU). The offsets' radial directions
    carry no information (their draws are the prior's)."""
    raw = pm.Normal("axis_score_z", 0.0, 1.0, dims=("llm", AXIS_DIM))
    apart = _apart_from(raw, theta)
    gram = (apart.T @ apart) / apart.shape[0]
    turn = _inverse_sqrt(gram, n_axes)
    return pm.Deterministic("axis_score", apart @ turn, dims=("llm", AXIS_DIM))


def _inverse_sqrt(gram, size: int):
    """``gram^(-1/2)`` of a 1 x 1 or 2 x 2 symmetric positive-definite tensor, in closed
    form (no linear-algebra Op, so nutpie's numba backend compiles it)."""
    if size == 1:
        return 1.0 / pt.sqrt(gram + 1e-12)
    a, b, d = gram[0, 0], gram[0, 1], gram[1, 1]
    s = pt.sqrt(a * d - b**2)
    t = pt.sqrt(a + d + 2.0 * s)
    # sqrt(gram) = (gram + s I) / t, inverted
    p, q, r = (a + s) / t, b / t, (d + s) / t
    det = p * r - q**2
    return pt.stack([pt.stack([r, -q]), pt.stack([-q, p])]) / det


def _area_factors(data: ModelData, priors: Priors, theta):
    """Area factors ``eta`` (llm, factor) and every benchmark's loading on its factor.

    Each factor has mean 0 and is uncorrelated with capability within the study: its
    components along a constant and along ``theta`` are projected out. Otherwise they
    trade off exactly against the factor benchmarks' intercepts and capability loadings
    (``eta + c + d * theta`` with ``alpha - c * gamma`` and ``lambda - d * gamma`` leaves
    every cell mean unchanged): ridges along which chains mix slowly (Safetywashing chat
    with a calibration factor: R-hat above 1.01 on half of eight seeds). The projected-out
    coordinates carry no information (their draws are the prior's).
    """
    bench_pos = {k: i for i, k in enumerate(data.coords["benchmark"])}
    fpos = np.array([bench_pos[k] for k in data.factor_keys], dtype=np.int64)
    raw = pm.Normal("area_factor_z", 0.0, 1.0, dims=("llm", "factor"))
    eta = pm.Deterministic("area_factor", _apart_from(raw, theta), dims=("llm", "factor"))
    free = ~data.factor_anchor
    gamma = pt.zeros(len(data.factor_keys))
    anchor_loading = pm.HalfNormal(
        "factor_anchor_loading", priors.factor_loading_scale, shape=int(data.factor_anchor.sum())
    )
    gamma = pt.set_subtensor(gamma[np.flatnonzero(data.factor_anchor)], anchor_loading)
    if free.any():
        free_loading = pm.Normal(
            "factor_free_loading", 0.0, priors.factor_loading_scale, shape=int(free.sum())
        )
        gamma = pt.set_subtensor(gamma[np.flatnonzero(free)], free_loading)
    gamma = pm.Deterministic("factor_loading", gamma, dims="factor_benchmark")
    # Per benchmark: loading on its area factor (0 outside factor areas).
    gamma_b = pt.set_subtensor(pt.zeros(len(bench_pos))[fpos], gamma)
    return gamma_b, eta
