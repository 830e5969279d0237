"""Sampling the latent-factor model and assembling a self-describing ArviZ DataTree."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from safetywash import __version__
from safetywash.analysis.baseline import (
    BASELINE_VARIABLE,
    capability_benchmarks_for,
    oriented_baseline,
)
from safetywash.data.errors import StudyValidationError
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.diagnostics import fit_diagnostics
from safetywash.model.build import (
    ModelConfig,
    ModelData,
    build_model_from_data,
    capability_conditional,
    initial_point,
    marginal_loglik_by_llm,
)
from safetywash.model.build import prepare_data as _prepare

SAMPLERS = ("nutpie", "pymc")
#: Raw sampler coordinates left out of the convergence verdict: ``capability_z`` holds, by
#: construction, a radial direction that the model normalises away (it carries no
#: information and its draws are the prior's); every quantity built from it is checked.
UNCHECKED_VARIABLES = ("capability_z",)


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample (saved with the fit)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.95
    sampler: str = "nutpie"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, not {self.sampler!r}")
        if self.draws < 1 or self.tune < 0 or self.chains < 1:
            raise ValueError("draws and chains must be positive, tune non-negative")


def _jitter_rvs(model: pm.Model, start: dict) -> set:
    """Jitter every start value except the data-driven ones."""
    return {rv for rv in model.free_RVs if rv.name not in start}


def sample_model(
    model: pm.Model,
    data: ModelData,
    settings: SamplerSettings,
    config: ModelConfig | None = None,
    *,
    progressbar: bool = True,
) -> tuple[xr.DataTree, dict[str, float]]:
    """Run NUTS on a built model; returns the raw DataTree and timings in seconds.

    Every chain starts from :func:`safetywash.model.build.initial_point` (data-driven capability,
    loadings and area factors); the other parameters get the sampler's usual jitter.
    """
    config = config or ModelConfig()
    start = {k: v for k, v in initial_point(data, config).items() if k in model.named_vars}
    timings: dict[str, float] = {}
    if settings.sampler == "nutpie":
        import nutpie

        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(
            model, initial_points=start, jitter_rvs=_jitter_rvs(model, start)
        )
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


def _constant_data(data: ModelData) -> xr.Dataset:
    """The study as fitted, enough to rebuild it from the saved file."""
    study = data.study
    bench = study.benchmarks
    llms = study.llms
    ds = xr.Dataset(
        {
            "llm_index": ("cell", data.llm_idx),
            "benchmark_index": ("cell", data.benchmark_idx),
            "raw_value": ("cell", study.scores["value"].to_numpy(dtype=float)),
            "transformed_value": ("cell", data.y),
            "llm_name": ("llm", llms["display_name"].to_numpy(dtype=str)),
            "population_label": ("llm", llms["population"].to_numpy(dtype=str)),
            "family": ("llm", llms["family"].to_numpy(dtype=str)),
            "params": ("llm", llms["params"].to_numpy(dtype=float)),
            "flop": ("llm", llms["flop"].to_numpy(dtype=float)),
            # Oriented (and, with the logit option, transformed) scores are standardised
            # with these per benchmark: y = (value - transform_center) / transform_sd.
            "transform_center": ("benchmark", data.center.to_numpy(dtype=float)),
            "transform_sd": ("benchmark", data.scale.to_numpy(dtype=float)),
            "logit_transformed": ("benchmark", data.transformed.to_numpy(dtype=bool)),
            # The logit maps (value - logit_floor) / (upper - logit_floor); NaN if unused.
            "logit_floor": ("benchmark", data.logit_floor.to_numpy(dtype=float)),
        },
        coords={
            "cell": np.arange(len(data.y)),
            "llm": np.asarray(llms.index, dtype=str),
            "benchmark": np.asarray(bench.index, dtype=str),
        },
    )
    for col in ("display_name", "role", "area", "direction", "scale", "parent", "note"):
        ds[f"benchmark_{col}"] = ("benchmark", bench[col].to_numpy(dtype=str))
    for col in ("lower", "upper", "chance"):
        ds[f"benchmark_{col}"] = ("benchmark", bench[col].to_numpy(dtype=float))
    return ds


def _observed_data(data: ModelData) -> xr.Dataset:
    return xr.Dataset({"score": ("cell", data.y)}, coords={"cell": np.arange(len(data.y))})


def fit(
    study: BenchmarkStudy,
    config: ModelConfig | None = None,
    settings: SamplerSettings | None = None,
    *,
    posterior_predictive: bool = False,
    progressbar: bool = True,
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

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats``, ``observed_data``, ``constant_data``,
        ``log_likelihood`` (and ``posterior_predictive``). Root attrs: package version,
        ``model_config`` (JSON), ``sampler_settings`` (JSON), ``study_sha256`` of the input
        study, ``study_name``, ``seed``, timings and ``diagnostics`` (JSON).
    """
    config = config or ModelConfig()
    settings = settings or SamplerSettings()
    data = _prepare(study, config)
    model = build_model_from_data(data, config)
    dt, timings = sample_model(model, data, settings, config, progressbar=progressbar)

    t0 = time.perf_counter()
    groups = {
        "posterior": dt["posterior"].to_dataset(),
        "sample_stats": _clean_sample_stats(dt["sample_stats"].to_dataset()),
    }
    if config.capability == "marginal":
        _add_marginal_groups(groups, data, settings.seed, posterior_predictive)
    else:
        with model:
            loglik = pm.compute_log_likelihood(dt, extend_inferencedata=False, progressbar=False)
        # float32 halves the largest groups (draws x cells); ample precision for LOO/PPCs.
        groups["log_likelihood"] = _as_dataset(loglik, "log_likelihood").astype("float32")
    if posterior_predictive and config.capability != "marginal":
        with model:
            ppc = pm.sample_posterior_predictive(
                dt, random_seed=settings.seed + 1, progressbar=False
            )
        groups["posterior_predictive"] = _as_dataset(ppc, "posterior_predictive").astype("float32")
    groups["observed_data"] = _observed_data(data)
    groups["constant_data"] = _constant_data(data)
    values, used = _baseline_values(study, data)
    groups["constant_data"][BASELINE_VARIABLE] = xr.DataArray(
        values,
        dims="benchmark",
        attrs={
            "description": "the paper's capabilities correlation (Spearman with the first "
            "principal component), oriented by the catalog direction, from the whole input "
            "study; mean over populations for a joint study",
            "capability_benchmarks": json.dumps(list(used)),
        },
    )
    timings["postprocess"] = time.perf_counter() - t0

    out = xr.DataTree.from_dict(groups)
    diagnostics = fit_diagnostics(
        out, [v for v in out["posterior"].data_vars if v not in UNCHECKED_VARIABLES]
    )
    out.attrs.update(
        {
            "safetywash_version": __version__,
            "model_config": config.to_json(),
            "sampler_settings": json.dumps(settings.__dict__, sort_keys=True),
            "study_sha256": study.sha256(),
            "study_name": study.name,
            "seed": settings.seed,
            "timings": json.dumps(timings),
            "diagnostics": json.dumps(diagnostics.to_dict()),
            "excluded_benchmarks": json.dumps(list(data.study.excluded)),
        }
    )
    return out


def _marginal_arrays(post: xr.Dataset, data: ModelData, sl: slice) -> tuple:
    """Benchmark and population parameters of a slice of flattened draws."""
    n_pop = len(data.populations)

    def flat(name: str) -> np.ndarray:
        values = post[name].values
        return values.reshape(-1, *values.shape[2:])[sl]

    intercept, loading, sigma = flat("intercept"), flat("loading"), flat("residual_sd")
    if n_pop > 1:
        pop_mean, pop_sd = flat("population_mean"), np.exp(flat("population_log_sd"))
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
    loglik = np.empty_like(theta, dtype=np.float32)
    replicated = np.empty((total, len(data.y)), dtype=np.float32) if posterior_predictive else None
    for start in range(0, total, chunk):
        sl = slice(start, min(start + chunk, total))
        params = _marginal_arrays(post, data, sl)
        args = (data.y, data.llm_idx, data.benchmark_idx, data.population_idx, *params)
        mean, sd = capability_conditional(*args)
        theta[sl] = mean + sd * rng.standard_normal(mean.shape)
        loglik[sl] = marginal_loglik_by_llm(*args)
        if replicated is not None:
            intercept, loading, sigma = params[:3]
            b, i = data.benchmark_idx, data.llm_idx
            mu = intercept[:, b] + loading[:, b] * theta[sl][:, i]
            replicated[sl] = mu + sigma[:, b] * rng.standard_normal(mu.shape)
    llms = post["llm"].values if "llm" in post.coords else data.coords["llm"]
    post["capability"] = xr.DataArray(
        theta.reshape(n_chain, n_draw, -1),
        dims=("chain", "draw", "llm"),
        coords={"chain": post["chain"], "draw": post["draw"], "llm": llms},
    )
    groups["log_likelihood"] = xr.Dataset(
        {"score": (("chain", "draw", "llm"), loglik.reshape(n_chain, n_draw, -1))},
        coords={"chain": post["chain"], "draw": post["draw"], "llm": llms},
    )
    if replicated is not None:
        groups["posterior_predictive"] = xr.Dataset(
            {"score": (("chain", "draw", "cell"), replicated.reshape(n_chain, n_draw, -1))},
            coords={"chain": post["chain"], "draw": post["draw"], "cell": np.arange(len(data.y))},
        )


def _baseline_values(study: BenchmarkStudy, data: ModelData) -> tuple[np.ndarray, tuple]:
    """The paper's oriented baseline of every fitted benchmark, from the whole input study,
    and the capability benchmarks of its capability score."""
    try:
        baseline = oriented_baseline(study)
        used = capability_benchmarks_for(study)
    except StudyValidationError:  # too few capability benchmarks for a capability score
        return np.full(len(data.study.benchmarks), np.nan), ()
    return baseline.reindex(data.study.benchmarks.index).to_numpy(dtype=float), used


def _as_dataset(obj, group: str) -> xr.Dataset:
    if isinstance(obj, xr.DataTree):
        return obj[group].to_dataset() if group in obj.children else obj.to_dataset()
    return obj[group] if not isinstance(obj, xr.Dataset) else obj


def _clean_sample_stats(stats: xr.Dataset) -> xr.Dataset:
    """Drop object-typed sample stats (messages) that NetCDF cannot store."""
    keep = [v for v in stats.data_vars if stats[v].dtype != object]
    return stats[keep]


def diagnostics_of(dt: xr.DataTree):
    """The diagnostics stored in a fit's attrs, as a :class:`Diagnostics`."""
    from safetywash.inference.diagnostics import Diagnostics

    values = json.loads(dt.attrs["diagnostics"])
    fields = Diagnostics.__dataclass_fields__
    return Diagnostics(**{k: v for k, v in values.items() if k in fields})


def study_table(dt: xr.DataTree) -> pd.DataFrame:
    """Benchmark metadata of a fitted study, indexed by benchmark key."""
    const = dt["constant_data"].to_dataset()
    cols = [
        v for v in const.data_vars if v.startswith("benchmark_") and const[v].dims == ("benchmark",)
    ]
    frame = const[cols].to_dataframe()
    frame.columns = [c.removeprefix("benchmark_") for c in frame.columns]
    return frame
