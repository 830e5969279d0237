"""The pooled groups of the latent-factor model as PyMC variables: capability loadings
(positive, pooled on the log scale), safety loadings (pooled within their areas, whose means
are pooled across areas) and the benchmark-specific SDs (log-normal, pooled), each
parameterised as :func:`safetywash.model.pooling.pooling` says (centred, non-centred or
whitened). Called by :func:`safetywash.model.build.build_model_from_data` inside its model
context.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from safetywash.model.axes import AXIS_DIM
from safetywash.model.config import Priors
from safetywash.model.data import ModelData, zero_sum_by_group
from safetywash.model.likelihood import residual_sd
from safetywash.model.pooling import Pooling, whitening

#: The ``pm.Data`` containers of the whitened capability loadings' least-squares log
#: loadings and standard errors (:func:`~safetywash.model.pooling.whitening`), read off the
#: scores.
CAPABILITY_ESTIMATES = "capability_loading_estimate"
CAPABILITY_ERRORS = "capability_loading_error"
#: The same for the whitened log specific SDs.
RESIDUAL_ESTIMATES = "specific_sd_estimate"
RESIDUAL_ERRORS = "specific_sd_error"
#: The ``pm.Data`` container of every benchmark's known measurement-noise SD (0 where it
#: is not known), read off the scores.
NOISE_SD = "noise_sd"
#: The containers of each whitenable group, by the prefix of its ``Pooling`` fields
#: (``<group>_estimates``, ``<group>_errors``).
WHITENING_CONTAINERS = {
    "capability": (CAPABILITY_ESTIMATES, CAPABILITY_ERRORS),
    "residual": (RESIDUAL_ESTIMATES, RESIDUAL_ERRORS),
}


def whitening_values(pool: Pooling) -> dict[str, np.ndarray]:
    """The values of the whitening containers, by container name: every whitened group's
    estimates and errors (a group that is not whitened has none)."""
    values = {}
    for group, (estimates, errors) in WHITENING_CONTAINERS.items():
        if getattr(pool, f"{group}_estimates"):
            values[estimates] = np.asarray(getattr(pool, f"{group}_estimates"))
            values[errors] = np.asarray(getattr(pool, f"{group}_errors"))
    return values


def noise_values(data: ModelData) -> np.ndarray:
    """The value of the :data:`NOISE_SD` container: known noise SDs, 0 where unknown."""
    return np.sqrt(np.nan_to_num(data.noise_variance))


def loadings(data: ModelData, pool: Pooling, priors: Priors):
    """Capability loadings (positive, pooled on the log scale) and safety loadings (free in
    sign, pooled within their area), as the ``loading`` of every benchmark."""
    bench_pos = {k: i for i, k in enumerate(data.coords["benchmark"])}
    cap_pos = np.array([bench_pos[k] for k in data.capability_keys], dtype=np.int64)
    safe_pos = np.array([bench_pos[k] for k in data.safety_keys], dtype=np.int64)
    cap_log_mean = pm.Normal(
        "capability_loading_log_mean",
        priors.capability_loading_log_mean_loc,
        priors.capability_loading_log_mean_scale,
    )
    cap_log_sd = pm.Gamma(
        "capability_loading_log_sd", alpha=2.0, beta=1.0 / priors.capability_loading_log_sd_scale
    )
    cap_log = _pooled(
        ("capability_loading_log", "capability_loading_wz", "capability_loading_z"),
        cap_log_mean,
        cap_log_sd,
        "capability_benchmark",
        centred=pool.capability,
        containers=WHITENING_CONTAINERS["capability"],
        values=whitening_values(pool),
    )
    loading = pt.zeros(len(bench_pos))
    loading = pt.set_subtensor(loading[cap_pos], pt.exp(cap_log))
    if data.safety_keys:
        loading = pt.set_subtensor(loading[safe_pos], _safety_loadings(data, pool, priors))
    return pm.Deterministic("loading", loading, dims="benchmark")


def _pooled(names: tuple[str, str, str], mean, sd, dims: str, *, centred, containers, values):
    """Members ``x ~ Normal(mean, sd)`` of a pooled group in the form ``pooling`` chose:
    centred (the variable ``names[0]``), whitened when ``values`` (:func:`whitening_values`)
    hold the group's ``containers`` (sampled as ``names[1]``), else non-centred (offsets
    ``names[2]``).

    Whitened, ``z`` is given the density of its member, ``Normal(x; mean, sd)`` times the
    Jacobian ``scale`` of ``x = centre + scale * z`` (:func:`whitening`): a Normal(0, 1)
    variable whose own density a potential takes back out (so the model is the centred
    one, and ``z`` keeps a proper distribution for its starts). Estimates and errors are
    data containers, so a compiled model refitted to new scores gets its own.
    """
    if centred:
        return pm.Normal(names[0], mean, sd, dims=dims)
    if containers[0] not in values:
        offset = pm.Normal(names[2], 0.0, 1.0, dims=dims)
        return mean + sd * offset
    estimate = pm.Data(containers[0], values[containers[0]], dims=dims)
    error = pm.Data(containers[1], values[containers[1]], dims=dims)
    centre, scale = whitening(mean, sd, estimate, error)
    z = pm.Normal(names[1], 0.0, 1.0, dims=dims)
    x = centre + scale * z
    density = pm.logp(pm.Normal.dist(mean, sd), x) + pt.log(scale)
    whitened = density - pm.logp(pm.Normal.dist(), z)
    pm.Potential(names[1].replace("_wz", "_whitening"), whitened.sum())
    return x


def _safety_loadings(data: ModelData, pool: Pooling, priors: Priors):
    """Safety loadings, pooled within their areas, whose means are pooled across areas.

    ``area_loading_mean ~ Normal(safety_loading_mean, area_loading_sd)`` and
    ``safety_loading ~ Normal(area_loading_mean, safety_loading_sd)``. Centred loadings sit
    around non-centred area means: there are at most eight safety areas, too few to pin
    ``area_loading_sd`` away from 0 (centring the areas of five or more benchmarks put a
    funnel at ``area_loading_sd`` near 0.03 on Safetywashing chat, divergences on 8 of 16
    seeds). Non-centred loadings are written as each area's average and the deviations
    from it, so that a thin area's between- and within-area parts do not trade off
    (:func:`_area_rotation`).
    """
    spread = pm.Gamma("area_loading_sd", alpha=2.0, beta=1.0 / priors.area_loading_sd_scale)
    safety_sd = pm.Gamma("safety_loading_sd", alpha=2.0, beta=1.0 / priors.safety_loading_sd_scale)
    area_idx = data.safety_area_idx
    top_scale = priors.safety_loading_mean_scale
    top = None if pool.area else pm.Normal("safety_loading_mean", 0.0, top_scale)
    if pool.safety:
        z = pm.Normal("area_loading_z", 0.0, 1.0, dims="area")
        area_mean = pm.Deterministic("area_loading_mean", top + spread * z, dims="area")
        return pm.Normal("safety_loading", area_mean[area_idx], safety_sd, dims="safety_benchmark")
    average, area_mean = _area_rotation(data, top, top_scale, spread, safety_sd)
    pm.Deterministic("area_loading_mean", area_mean, dims="area")
    loading = average[area_idx]
    n_free = len(data.safety_keys) - len(data.areas)
    if n_free:
        w = pm.Normal("safety_loading_z", 0.0, 1.0, shape=n_free)
        loading = loading + safety_sd * zero_sum_by_group(w, area_idx, len(data.areas), xp=pt)
    return pm.Deterministic("safety_loading", loading, dims="safety_benchmark")


def _area_rotation(data: ModelData, top, top_scale: float, spread, safety_sd):
    """Each area's average safety loading and its mean.

    With ``n`` benchmarks in an area, their average is ``top + r * u`` with
    ``r = sqrt(spread**2 + safety_sd**2 / n)`` and ``u`` standard normal, and the area mean
    is ``top + spread * (spread * u + safety_sd / sqrt(n) * v) / r``: an orthonormal
    rotation of the area's standardised mean and mean within-area offset, so the pair has
    exactly the hierarchical prior. ``v`` does not enter the likelihood (it carries the
    area mean's own uncertainty given its benchmarks' average).

    ``top`` None (centred averages, :func:`safetywash.model.pooling.pooling`): the averages
    are sampled with ``top ~ Normal(0, top_scale)`` integrated out (jointly normal, the
    covariance ``diag(r**2) + top_scale**2``), and ``top`` is then drawn from its
    conditional normal given them, non-centred. The joint distribution is the same; but
    with one or two areas, ``top`` sampled beside centred averages sat in a funnel with
    ``r`` (Open LLM Leaderboard v1, one safety benchmark; Epoch, two areas of one: 1-2
    divergences at the smallest spreads on half the seeds).
    """
    sizes = np.bincount(data.safety_area_idx, minlength=len(data.areas)).astype(float)
    within = safety_sd / np.sqrt(sizes)
    r = pt.sqrt(spread**2 + within**2)
    if top is None:
        cov = pt.diag(r**2) + top_scale**2
        average = pm.MvNormal("area_loading_average", pt.zeros(len(sizes)), cov, dims="area")
        precision = 1.0 / top_scale**2 + pt.sum(1.0 / r**2)
        centre = pt.sum(average / r**2) / precision
        t = pm.Normal("safety_loading_mean_z", 0.0, 1.0)
        top = pm.Deterministic("safety_loading_mean", centre + t / pt.sqrt(precision))
        u = (average - top) / r
    else:
        u = pm.Normal("area_loading_z", 0.0, 1.0, dims="area")
        average = top + r * u
    v = pm.Normal("area_loading_aux", 0.0, 1.0, dims="area")
    return average, top + spread * (spread * u + within * v) / r


def residuals(data: ModelData, priors: Priors, pool: Pooling):
    """Residual SDs of every benchmark.

    The benchmark-specific SD is log-normal and pooled; under ``residuals="auto"`` each
    log SD is whitened by its own least-squares estimate (:func:`_pooled`), so that a
    member pinned by its scores is sampled as if centred and one measured from a handful
    of scores as if non-centred, at every spread. Where the score is a
    proportion of a known number of items its measurement noise is known
    (``ModelData.noise_variance``) and ``residual_sd = sqrt(noise_sd**2 + specific_sd**2)``:
    a floor the residual cannot go below, so the benchmark cannot become a perfect measure
    of capability (the Heywood case: ARC-Challenge on Open LLM Leaderboard v1 at residual SD
    0.09 with a plain log-normal residual). Elsewhere there is no separate noise term: only
    the sum of noise and specific variance is identified, so the residual is the specific
    SD alone (which then includes any noise).
    """
    res_log_mean = pm.Normal(
        "residual_log_mean", priors.residual_log_mean_loc, priors.residual_log_mean_scale
    )
    res_log_sd = pm.Gamma("residual_log_sd", alpha=2.0, beta=1.0 / priors.residual_log_sd_scale)
    log_specific = _pooled(
        ("log_specific_sd", "log_specific_sd_wz", "log_specific_sd_z"),
        res_log_mean,
        res_log_sd,
        "benchmark",
        centred=pool.residual,
        containers=WHITENING_CONTAINERS["residual"],
        values=whitening_values(pool),
    )
    specific = pm.Deterministic("specific_sd", pt.exp(log_specific), dims="benchmark")
    noise = pm.Data(NOISE_SD, noise_values(data), dims="benchmark")
    sigma = pm.Deterministic("residual_sd", residual_sd(noise, specific, xp=pt), dims="benchmark")
    return sigma


def axis_loadings(data: ModelData, priors: Priors, loading):
    """Every benchmark's loadings on the further capability axes (``axis_loading``,
    benchmark x capability_axis), ``Normal(0, axis_loading_scale)`` each.

    The capability benchmarks' loadings are projected orthogonal to their general
    loadings, so the general factor stays the principal direction of their shared
    covariance (:mod:`safetywash.model.axes`); the projected-out direction of
    ``axis_loading_capability_raw`` carries no information (its draws are the prior's).
    """
    bench_pos = {k: i for i, k in enumerate(data.coords["benchmark"])}
    cap_pos = np.array([bench_pos[k] for k in data.capability_keys], dtype=np.int64)
    scale = priors.axis_loading_scale
    raw = pm.Normal(
        "axis_loading_capability_raw", 0.0, scale, dims=("capability_benchmark", AXIS_DIM)
    )
    general = loading[cap_pos]
    along = (general @ raw) / (general @ general)
    axis = pt.zeros((len(bench_pos), data.capability_dims - 1))
    axis = pt.set_subtensor(axis[cap_pos], raw - general[:, None] * along[None, :])
    if data.safety_keys:
        safe_pos = np.array([bench_pos[k] for k in data.safety_keys], dtype=np.int64)
        safety = pm.Normal("axis_loading_safety", 0.0, scale, dims=("safety_benchmark", AXIS_DIM))
        axis = pt.set_subtensor(axis[safe_pos], safety)
    return pm.Deterministic("axis_loading", axis, dims=("benchmark", AXIS_DIM))
