"""Sampling the latent-factor model and assembling a self-describing ArviZ DataTree.

:func:`fit` samples, computes the pointwise log-likelihood (and, if asked, the posterior
predictive) on the model, then keeps in ``posterior`` only interpretable variables:
the sampler's own coordinates (:data:`safetywash.model.build.SAMPLER_SPACE_VARIABLES`) go to
the ``unconstrained_posterior`` group, so ``az.summary(dt)`` lists capability, loadings,
residual SDs, intercepts, ``rho``, area factors and the population-level parameters of the
hierarchy (``capability_loading_log_mean``/``_sd``, ``area_loading_mean``,
``safety_loading_sd``, ``residual_log_mean``/``_sd``, ``population_mean``/``_log_sd``:
parameters on the log scale, not copies of others). The convergence verdict is computed on
``posterior``: every moved variable is a function of the ones that stay, except
``capability_z``, which by construction holds a radial direction that the model normalises
away (it carries no information and its draws are the prior's).
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pymc as pm
import xarray as xr

from safetywash.data.study import BenchmarkStudy
from safetywash.inference.compiled import ModelCache, nutpie_compiled
from safetywash.inference.diagnostics import fit_diagnostics
from safetywash.inference.fitfile import (
    UNCONSTRAINED_GROUP,
    FitInfo,
    cell_coords,
    constant_data,
    observed_data,
)
from safetywash.inference.settings import SamplerSettings
from safetywash.model.axes import AXIS_DIM, orient_axes
from safetywash.model.build import SAMPLER_SPACE_VARIABLES, build_model_from_data
from safetywash.model.config import ModelConfig
from safetywash.model.data import ModelData, initial_point, prepare_data
from safetywash.model.likelihood import cell_mean, cell_sd, predictive_draws
from safetywash.model.marginal import (
    capability_conditional,
    draw_capability,
    marginal_loglik_by_llm,
)
from safetywash.model.pooling import resolved_config

# Kept for consumers that have not moved to safetywash.inference.fitfile.constant_data yet.
_constant_data = constant_data


def sample_model(
    model: pm.Model,
    data: ModelData,
    settings: SamplerSettings,
    config: ModelConfig | None = None,
    *,
    progressbar: bool = True,
    compiled=None,
) -> tuple[xr.DataTree, dict[str, float]]:
    """Run NUTS on a built model; returns the raw DataTree and timings in seconds.

    Every chain starts from :func:`safetywash.model.data.initial_point` (data-driven capability,
    loadings and area factors); the other parameters get the sampler's usual jitter.
    ``compiled``: nutpie's compiled ``model`` already holding ``data``'s scores
    (:class:`ModelCache`), used instead of compiling.
    """
    config = config or ModelConfig()
    start = {k: v for k, v in initial_point(data, config).items() if k in model.named_vars}
    timings: dict[str, float] = {}
    if settings.sampler == "nutpie":
        import nutpie

        t0 = time.perf_counter()
        compiled = nutpie_compiled(model, start, compiled)
        timings["compile"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        dt = nutpie.sample(
            compiled,
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            seed=settings.seed,
            target_accept=settings.target_accept,
            progress_bar=progressbar,
            save_warmup=False,
            # Marginal fits have ~3 parameters per benchmark, all intercepts correlated
            # through the unknown mean capability: a low-rank mass matrix absorbs that ridge.
            adaptation="low_rank" if "capability_z" not in model.named_vars else "diag",
        )
        timings["sampling"] = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        dt = pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=min(settings.chains, os.cpu_count() or 1),
            random_seed=settings.seed,
            model=model,
            nuts_sampler="pymc",
            initvals=start,
            target_accept=settings.target_accept,
            progressbar=progressbar,
            compute_convergence_checks=False,
        )
        total = time.perf_counter() - t0
        timings["sampling"] = float(dt["posterior"].attrs.get("sampling_time", total))
        timings["compile"] = total - timings["sampling"]
    dt["posterior"].attrs["sampling_time"] = timings["sampling"]
    return dt, timings


def fit(
    study: BenchmarkStudy,
    config: ModelConfig | None = None,
    settings: SamplerSettings | None = None,
    *,
    posterior_predictive: bool = False,
    progressbar: bool = True,
    data: ModelData | None = None,
    cache: ModelCache | None = None,
    log_likelihood: bool = True,
) -> xr.DataTree:
    """Fit the latent-factor model to a study.

    Parameters
    ----------
    study : BenchmarkStudy
        The study (the config's ``level`` picks aggregates or parts).
    config : ModelConfig, optional
        Model choices; default :class:`ModelConfig()`.
    settings : SamplerSettings, optional
        Draws, tuning, chains, target acceptance, sampler and seed.
    posterior_predictive : bool
        Also draw the ``posterior_predictive`` group (scores on the model scale).
    progressbar : bool
        Show the sampler's progress.
    data : ModelData, optional
        The study already prepared (default ``prepare_data(study, config)``); its scores
        are the ones fitted.
    cache : ModelCache, optional
        Reuse the model built and compiled for an earlier fit of the same structure
        (:func:`structure_key`), feeding it only this study's scores and starts; the draws
        are those of a fresh compile with the same data and seed.
    log_likelihood : bool
        Compute the ``log_likelihood`` group (refit studies that only read the posterior
        can skip it).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (interpretable variables), ``unconstrained_posterior``
        (sampler coordinates), ``sample_stats``, ``observed_data``, ``constant_data``
        (:func:`safetywash.inference.fitfile.constant_data`), ``log_likelihood`` (and
        ``posterior_predictive``); the ``cell`` dimension of ``observed_data``,
        ``log_likelihood`` and ``posterior_predictive`` carries ``llm`` and ``benchmark``
        coordinates. Root attrs: :class:`safetywash.inference.fitfile.FitInfo` (package
        version, ``model_config``, ``sampler_settings``, ``study_sha256``, ``study_name``,
        ``seed``, timings, ``diagnostics``, ``excluded_benchmarks``). The paper's baseline
        is not part of a fit: add it with
        :func:`safetywash.analysis.baseline.store_paper_baseline`.
    """
    config = config or ModelConfig()
    settings = settings or SamplerSettings()
    data = prepare_data(study, config) if data is None else data
    used = resolved_config(data, config)
    if cache is None:
        model, compiled = build_model_from_data(data, used), None
    else:
        model, compiled = cache.get(data, used, settings.sampler)
    dt, timings = sample_model(
        model, data, settings, used, progressbar=progressbar, compiled=compiled
    )

    t0 = time.perf_counter()
    extra = {"posterior_predictive": posterior_predictive, "log_likelihood": log_likelihood}
    out = xr.DataTree.from_dict(_groups(dt, model, data, used, settings.seed, **extra))
    timings["postprocess"] = time.perf_counter() - t0
    info = FitInfo(
        model_config=config,
        sampler_settings=settings,
        study_sha256=study.sha256(),
        study_name=study.name,
        seed=settings.seed,
        timings=timings,
        diagnostics=fit_diagnostics(out),
        excluded_benchmarks=tuple(data.study.excluded),
        capability_mode=used.capability,
    )
    out.attrs.update(info.to_attrs())
    return out


def _groups(
    dt: xr.DataTree,
    model: pm.Model,
    data: ModelData,
    config: ModelConfig,
    seed: int,
    *,
    posterior_predictive: bool,
    log_likelihood: bool,
) -> dict[str, xr.Dataset]:
    """The groups of a fit from the sampler's raw DataTree (see :func:`fit`)."""
    groups = {
        "posterior": dt["posterior"].to_dataset(),
        "sample_stats": _clean_sample_stats(dt["sample_stats"].to_dataset()),
    }
    if config.capability == "marginal":
        _add_marginal_groups(groups, data, seed, posterior_predictive)
    elif log_likelihood or posterior_predictive:
        _add_pointwise_groups(groups, model, dt, seed, posterior_predictive)
        if not log_likelihood:
            del groups["log_likelihood"]
    if "axis_loading" in groups["posterior"].data_vars:
        _orient_axes(groups["posterior"], data, config)
    groups["observed_data"] = observed_data(data)
    groups["constant_data"] = constant_data(data)
    for name in ("log_likelihood", "posterior_predictive"):
        if name in groups and "cell" in groups[name].dims:
            groups[name] = groups[name].assign_coords(cell_coords(data))
    _move_sampler_space(groups)
    return groups


def _add_pointwise_groups(
    groups: dict, model: pm.Model, dt: xr.DataTree, seed: int, posterior_predictive: bool
) -> None:
    """Per-cell log-likelihood (and posterior predictive) computed on the model."""
    with model:
        loglik = pm.compute_log_likelihood(dt, extend_inferencedata=False, progressbar=False)
    # float32 halves the largest groups (draws x cells); ample precision for LOO/PPCs.
    groups["log_likelihood"] = _as_dataset(loglik, "log_likelihood").astype("float32")
    if posterior_predictive:
        posterior = set(dt["posterior"].data_vars)
        held = [rv.name for rv in model.free_RVs if rv.name in posterior]
        with model, warnings.catch_warnings():
            # The potentials only reparameterise pooled groups (whitening); every parameter
            # is held at its posterior draws here, so they have nothing left to act on.
            warnings.filterwarnings("ignore", "The effect of Potentials", UserWarning)
            ppc = pm.sample_posterior_predictive(
                dt, freeze_vars=held, random_seed=seed + 1, progressbar=False
            )
        groups["posterior_predictive"] = _as_dataset(ppc, "posterior_predictive").astype("float32")


def _orient_axes(post: xr.Dataset, data: ModelData, config: ModelConfig) -> None:
    """Turn every draw's further capability axes towards the data's own
    (:func:`safetywash.model.axes.orient_axes`; the target is the capability benchmarks'
    start loadings), in place: chains and seeds then report the same axes, never
    reflected or permuted copies. Cell means, ``subspace_r`` and the log-likelihood are
    unchanged by the turn; the sampler's axis coordinates are not turned."""
    target = initial_point(data, config)["axis_loading_capability_raw"]
    loading = post["axis_loading"].transpose("chain", "draw", "benchmark", AXIS_DIM)
    score = post["axis_score"].transpose("chain", "draw", "llm", AXIS_DIM)
    rows = np.array([data.coords["benchmark"].index(k) for k in data.capability_keys])
    turned, scores = orient_axes(loading.values, score.values, target, rows)
    post["axis_loading"] = loading.copy(data=turned)
    post["axis_score"] = score.copy(data=scores)


def _move_sampler_space(groups: dict) -> None:
    """Move the sampler's coordinates from ``posterior`` to ``unconstrained_posterior``."""
    post = groups["posterior"]
    moved = [v for v in SAMPLER_SPACE_VARIABLES if v in post.data_vars]
    if not moved:
        return
    groups[UNCONSTRAINED_GROUP] = post[moved]
    keep = post.drop_vars(moved)
    unused = [d for d in keep.dims if all(d not in keep[v].dims for v in keep.data_vars)]
    groups["posterior"] = keep.drop_dims(unused)


def _flat(post: xr.Dataset, name: str, sl: slice) -> np.ndarray:
    """A slice of a posterior variable's draws, chains and draws flattened into one axis."""
    values = post[name].values
    return values.reshape(-1, *values.shape[2:])[sl]


def _marginal_arrays(post: xr.Dataset, data: ModelData, sl: slice) -> tuple:
    """Benchmark and population parameters of a slice of flattened draws."""
    n_pop = len(data.populations)
    intercept, loading, sigma = (
        _flat(post, v, sl) for v in ("intercept", "loading", "residual_sd")
    )
    if n_pop > 1:
        pop_mean = _flat(post, "population_mean", sl)
        pop_sd = np.exp(_flat(post, "population_log_sd", sl))
    else:
        pop_mean = np.zeros((len(intercept), 1))
        pop_sd = np.ones((len(intercept), 1))
    return intercept, loading, sigma, pop_mean, pop_sd


def _add_marginal_groups(
    groups: dict, data: ModelData, seed: int, posterior_predictive: bool, chunk: int = 200
) -> None:
    """Exact capability draws, per-LLM log-likelihood (and PPC) for a marginal fit.

    Capability is drawn from its conditional normal given each posterior draw of the
    benchmark and population parameters, which together are draws from the joint posterior.
    The log-likelihood is per LLM (capability integrated out), i.e. leave-one-LLM-out.
    """
    post = groups["posterior"]
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    total = n_chain * n_draw
    rng = np.random.default_rng([seed, 7919])
    theta = np.empty((total, len(data.population_idx)))
    axes = np.empty((total, len(data.population_idx), data.capability_dims - 1))
    loglik = np.empty_like(theta, dtype=np.float32)
    replicated = np.empty((total, len(data.y)), dtype=np.float32) if posterior_predictive else None
    for start in range(0, total, chunk):
        sl = slice(start, min(start + chunk, total))
        params = _marginal_arrays(post, data, sl)
        axis = _flat(post, "axis_loading", sl) if data.capability_dims > 1 else None
        args = (data.y, data.llm_idx, data.benchmark_idx, data.population_idx, *params)
        if axis is None:
            mean, sd = capability_conditional(*args)
            theta[sl] = mean + sd * rng.standard_normal(mean.shape)
        else:
            factors = draw_capability(*capability_conditional(*args, axis_loading=axis), rng)
            theta[sl], axes[sl] = factors[..., 0], factors[..., 1:]
        loglik[sl] = marginal_loglik_by_llm(*args, axis_loading=axis)
        if replicated is not None:
            intercept, loading, sigma = params[:3]
            b, i = data.benchmark_idx, data.llm_idx
            on_axes = None if axis is None else axes[sl]
            mu = cell_mean(
                intercept, loading, theta[sl], i, b, axis_loading=axis, axis_score=on_axes
            )
            replicated[sl] = predictive_draws(mu, cell_sd(sigma, b), rng)
    chain_draw = {"chain": post["chain"], "draw": post["draw"]}
    llms = data.coords["llm"]
    post["capability"] = xr.DataArray(
        theta.reshape(n_chain, n_draw, -1),
        dims=("chain", "draw", "llm"),
        coords={**chain_draw, "llm": llms},
    )
    if data.capability_dims > 1:
        post["axis_score"] = xr.DataArray(
            axes.reshape(n_chain, n_draw, *axes.shape[1:]),
            dims=("chain", "draw", "llm", AXIS_DIM),
            coords={**chain_draw, "llm": llms, AXIS_DIM: data.coords[AXIS_DIM]},
        )
    groups["log_likelihood"] = xr.Dataset(
        {"score": (("chain", "draw", "llm"), loglik.reshape(n_chain, n_draw, -1))},
        coords={**chain_draw, "llm": llms},
    )
    if replicated is not None:
        groups["posterior_predictive"] = xr.Dataset(
            {"score": (("chain", "draw", "cell"), replicated.reshape(n_chain, n_draw, -1))},
            coords={**chain_draw, "cell": np.arange(len(data.y))},
        )


def _as_dataset(obj, group: str) -> xr.Dataset:
    if isinstance(obj, xr.DataTree):
        return obj[group].to_dataset() if group in obj.children else obj.to_dataset()
    return obj[group] if not isinstance(obj, xr.Dataset) else obj


def _clean_sample_stats(stats: xr.Dataset) -> xr.Dataset:
    """Drop object-typed sample stats (messages) that NetCDF cannot store."""
    keep = [v for v in stats.data_vars if stats[v].dtype != object]
    return stats[keep]
