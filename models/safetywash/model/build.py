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
the others), ``sigma`` the residual scale, and the optional ``eta``/``gamma`` area factors
(confirmatory: only a factor area's own benchmarks load on it; its best-observed
benchmark's loading is positive). Every prior hyperparameter is read from
``ModelConfig.priors`` (:class:`safetywash.model.config.Priors`).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from safetywash.data.study import BenchmarkStudy
from safetywash.model.config import ModelConfig, Priors
from safetywash.model.data import ModelData, pooling, prepare_data, zero_sum_by_group
from safetywash.model.likelihood import (
    capability_correlation,
    cell_mean,
    cell_sd,
    marginal_loglik_by_llm,
)

#: Variables in the sampler's coordinates: standardised offsets, log-scale copies of
#: ``loading`` and ``residual_sd``, and the pieces of ``factor_loading`` and
#: ``area_loading_mean``. Fits keep them out
#: of ``posterior`` (see :func:`safetywash.inference.sampling.fit`); every one is a function
#: of the interpretable variables that stay, except the radial direction of
#: ``capability_z``, which the model normalises away.
SAMPLER_SPACE_VARIABLES = (
    "capability_z",
    "capability_loading_z",
    "capability_loading_log",
    "safety_loading_z",
    "area_loading_z",
    "log_residual_sd",
    "factor_anchor_loading",
    "factor_free_loading",
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
        ``loading`` (lambda), ``residual_sd`` (sigma) and ``rho`` (capability correlation
        of every benchmark on the standardised scale).
    """
    config = config or ModelConfig()
    data = prepare_data(study, config)
    return build_model_from_data(data, config)


def build_model_from_data(data: ModelData, config: ModelConfig) -> pm.Model:
    """Build the model from already prepared :class:`ModelData`."""
    priors = config.scaled_priors
    marginal = config.capability == "marginal"
    with pm.Model(coords=data.coords) as model:
        llm_idx = pm.Data("llm_idx", data.llm_idx, dims="cell")
        bench_idx = pm.Data("benchmark_idx", data.benchmark_idx, dims="cell")
        pop_idx = pm.Data("population_idx", data.population_idx, dims="llm")
        pop_mean, pop_sd = _population(priors, len(data.populations))
        theta = None if marginal else _capability(data, pop_mean, pop_sd, pop_idx)
        loading = _loadings(data, config, priors)
        sigma, intercept = _residuals(priors)

        if marginal:
            loglik = marginal_loglik_by_llm(
                data.y,
                data.llm_idx,
                data.benchmark_idx,
                data.population_idx,
                intercept,
                loading,
                sigma,
                pop_mean,
                pop_sd,
                xp=pt,
            )
            pm.Potential("score_marginal", loglik.sum())
            gamma_b = None
        else:
            gamma_b, eta = _area_factors(data, priors) if data.factor_keys else (None, None)
            mu = cell_mean(
                intercept,
                loading,
                theta,
                llm_idx,
                bench_idx,
                factor_loading=gamma_b,
                area_factor=eta,
                cell_factor=data.cell_factor,
                xp=pt,
            )
        rho = capability_correlation(loading, sigma, gamma_b, xp=pt)
        pm.Deterministic("rho", rho, dims="benchmark")
        if not marginal:
            sd = cell_sd(sigma, bench_idx, xp=pt)
            pm.Normal("score", mu, sd, observed=data.y, dims="cell")
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


def _loadings(data: ModelData, config: ModelConfig, priors: Priors):
    """Capability loadings (positive, pooled on the log scale) and safety loadings (free in
    sign, pooled within their area), as the ``loading`` of every benchmark."""
    bench_pos = {k: i for i, k in enumerate(data.coords["benchmark"])}
    cap_pos = np.array([bench_pos[k] for k in data.capability_keys], dtype=np.int64)
    safe_pos = np.array([bench_pos[k] for k in data.safety_keys], dtype=np.int64)
    pool = pooling(data, config)
    cap_log_mean = pm.Normal(
        "capability_loading_log_mean",
        priors.capability_loading_log_mean_loc,
        priors.capability_loading_log_mean_scale,
    )
    cap_log_sd = pm.HalfNormal("capability_loading_log_sd", priors.capability_loading_log_sd_scale)
    if pool.capability:
        cap_log = pm.Normal(
            "capability_loading_log", cap_log_mean, cap_log_sd, dims="capability_benchmark"
        )
    else:
        u = pm.Normal("capability_loading_z", 0.0, 1.0, dims="capability_benchmark")
        cap_log = cap_log_mean + cap_log_sd * u
    loading = pt.zeros(len(bench_pos))
    loading = pt.set_subtensor(loading[cap_pos], pt.exp(cap_log))
    if data.safety_keys:
        area_mean = _area_means(priors)
        safety_sd = pm.HalfNormal("safety_loading_sd", priors.safety_loading_sd_scale)
        if pool.safety:
            safety_loading = pm.Normal(
                "safety_loading",
                area_mean[data.safety_area_idx],
                safety_sd,
                dims="safety_benchmark",
            )
        else:
            v = pm.Normal("safety_loading_z", 0.0, 1.0, dims="safety_benchmark")
            safety_loading = pm.Deterministic(
                "safety_loading",
                area_mean[data.safety_area_idx] + safety_sd * v,
                dims="safety_benchmark",
            )
        loading = pt.set_subtensor(loading[safe_pos], safety_loading)
    return pm.Deterministic("loading", loading, dims="benchmark")


def _area_means(priors: Priors):
    """Mean safety loading of every area, pooled across areas around ``safety_loading_mean``.

    Non-centred: there are at most eight safety areas, too few to pin their spread
    ``area_loading_sd`` away from 0, and a thin area's mean is mostly prior. (Centring the
    areas of five or more benchmarks put a funnel at ``area_loading_sd`` near 0.03 on
    Safetywashing chat: divergences on 8 of 16 seeds.)
    """
    top = pm.Normal("safety_loading_mean", 0.0, priors.safety_loading_mean_scale)
    spread = pm.Gamma("area_loading_sd", alpha=2.0, beta=1.0 / priors.area_loading_sd_scale)
    z = pm.Normal("area_loading_z", 0.0, 1.0, dims="area")
    return pm.Deterministic("area_loading_mean", top + spread * z, dims="area")


def _residuals(priors: Priors):
    """Residual SDs (log-normal, pooled, centred) and intercepts of every benchmark."""
    res_log_mean = pm.Normal(
        "residual_log_mean", priors.residual_log_mean_loc, priors.residual_log_mean_scale
    )
    res_log_sd = pm.HalfNormal("residual_log_sd", priors.residual_log_sd_scale)
    log_sigma = pm.Normal("log_residual_sd", res_log_mean, res_log_sd, dims="benchmark")
    sigma = pm.Deterministic("residual_sd", pt.exp(log_sigma), dims="benchmark")
    intercept = pm.Normal("intercept", 0.0, priors.intercept_sd, dims="benchmark")
    return sigma, intercept


def _area_factors(data: ModelData, priors: Priors):
    """Area factors ``eta`` (llm, factor) and every benchmark's loading on its factor."""
    bench_pos = {k: i for i, k in enumerate(data.coords["benchmark"])}
    fpos = np.array([bench_pos[k] for k in data.factor_keys], dtype=np.int64)
    eta = pm.Normal("area_factor", 0.0, 1.0, dims=("llm", "factor"))
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
