"""Simulation-based calibration (SBC) of the latent-factor model.

Each round draws a study with known truth (:func:`safetywash.model.simulate.simulate`), fits it
as ``safetywash fit`` does (:func:`safetywash.analysis.retry.fit_with_retry`: one retry of
an untrusted first attempt at the default tuning) and compares every benchmark's posterior
of ``rho`` (its capability correlation) with the true value: the rank of the truth among
thinned posterior draws, whether the central 50% and 90% intervals contain it, and the
posterior median. Over many rounds a calibrated posterior gives uniform ranks and interval
coverage close to the nominal 50% and 90% (Talts et al. 2018, "Validating Bayesian
inference algorithms with simulation-based calibration").

What is checked, and what is not
--------------------------------
By default (``truth="prior"``) every round draws its truth from the model's own priors
(:func:`safetywash.model.simulate.simulate` reading ``config.scaled_priors``, the
definitions :mod:`safetywash.model.build` uses), hyperparameters included, and its scores
from the model's likelihood. Those priors act on the model scale, so with
``data_scale="model"`` (default) the scores are fitted on that scale: only oriented, not
standardised by each benchmark's sample mean and SD as :func:`~safetywash.model.data.prepare_data`
does for a real study. Then truth and data are a draw from exactly the joint distribution
the posterior conditions, and every parameter's truth (``rho`` included) is on the scale
its posterior is defined on: an exact SBC of the model and the sampler. Standardising
first (``data_scale="standardized"``, what earlier versions did) uses every benchmark's data
twice and rescales its loading and residual SD away from the prior they were drawn from;
``rho`` is invariant to the rescaling, but its prior given the standardised data is not the
prior the truth came from, so the check is then only approximate.

The design is fixed within a run, as SBC requires of everything it does not draw: the LLMs,
benchmarks, areas, populations and which cells are observed (drawn once, with the run's
``seed``, by ``missing`` and ``mechanism``). Only parameters and scores change from round to
round, so the model is built and compiled once per structure (its pooling choice, read off
each round's data, can differ) and refitted through
:class:`~safetywash.inference.compiled.ModelCache`.

``rho`` is *not* invariant to the scale of capability. The sampled model fixes the
in-sample SD of capability at 1 within each population, as
:func:`~safetywash.model.simulate.simulate` does, so ``rho_true`` is what it estimates.
``rho_true_insample`` (true loadings times the in-sample SD of true capability) equals it
for one population; with ``ModelConfig(capability="marginal")`` (population SD 1) the two
scales differ by sampling noise of order 1/sqrt(n LLMs).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from safetywash import __version__
from safetywash.analysis.calibration import RANK_DRAWS, round_dataset
from safetywash.analysis.retry import fit_with_retry, retry_record
from safetywash.inference.compiled import ModelCache, structure_key
from safetywash.inference.fitfile import diagnostics_of
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.data import ModelData, prepare_data
from safetywash.model.simulate import simulate

#: Scales the simulated scores are fitted on (module docstring).
DATA_SCALES = ("model", "standardized")

ProgressCallback = Callable[[int, int, dict], None]

_CACHE: list[ModelCache] = []


def check_sbc_config(config: ModelConfig) -> None:
    """Refuse a model SBC cannot calibrate yet: more than one capability dimension (the
    simulator, :func:`safetywash.model.simulate.simulate`, draws one)."""
    if config.capability_dims > 1:
        raise ValueError(
            f"simulation-based calibration supports one capability dimension only, not "
            f"capability_dims={config.capability_dims}: the simulated studies have no further "
            "capability axes yet; run it with capability_dims=1"
        )


def process_cache() -> ModelCache:
    """This process's compiled models (one cache per process: dask workers keep theirs
    from round to round)."""
    if not _CACHE:
        _CACHE.append(ModelCache())
    return _CACHE[0]


def on_model_scale(data: ModelData) -> ModelData:
    """Prepared data whose scores are the study's oriented scores, not standardised (the
    scale ``simulate(truth="prior")`` draws them on); the data-driven starts are kept."""
    n = len(data.transform.benchmarks)
    transform = dataclasses.replace(data.transform, center=np.zeros(n), scale=np.ones(n))
    raw = data.study.scores["value"].to_numpy(dtype=float)
    return dataclasses.replace(
        data, y=transform.forward(raw, data.benchmark_idx), transform=transform
    )


def _one_round(
    r: int,
    *,
    config: ModelConfig,
    settings: SamplerSettings,
    seed: int,
    rank_draws: int,
    data_scale: str = "model",
    retry: bool = True,
    **design,
) -> tuple[xr.Dataset, dict]:
    t0 = time.perf_counter()
    study, known = simulate(**_simulate_keywords(design), priors=config.scaled_priors, seed=seed)
    data = prepare_data(study, config)
    if data_scale == "model":
        data = on_model_scale(data)
    cache = process_cache()
    compiles = cache.compiles
    dt = fit_with_retry(
        study,
        config,
        settings,
        retry=retry,
        progressbar=False,
        data=data,
        cache=cache,
        log_likelihood=False,
    )
    ds = round_dataset(study, known, dt, rank_draws)
    ds["retried"] = ((), retry_record(dt) is not None)
    ds["seed"] = ((), seed)
    ds["seconds"] = ((), time.perf_counter() - t0)
    ds["compiled"] = ((), cache.compiles > compiles)
    ds["structure"] = ((), structure_key(data, config)[:12])
    diag = diagnostics_of(dt)
    info = {
        "round": r,
        "seed": seed,
        "seconds": float(ds["seconds"]),
        "compiled": bool(ds["compiled"]),
        "retried": bool(ds["retried"]),
        "coverage50": float(ds["covered50"].mean()),
        "coverage90": float(ds["covered90"].mean()),
        "mae": float(np.abs(ds["rho_median"] - ds["rho_true"]).mean()),
        "max_rhat": diag.max_rhat,
        "min_ess": float(ds["min_ess"]),
        "divergences": diag.divergences,
        "trustworthy": diag.trustworthy,
        "problems": diag.problems,
        "study": study.name,
    }
    return ds, info


def _simulate_keywords(design: dict) -> dict:
    """The design as keywords of :func:`~safetywash.model.simulate.simulate`."""
    keys = ("n_llms", "n_capability", "safety", "missing", "mechanism", "factor_areas")
    out = {k: design[k] for k in keys if k in design}
    out["factor_areas"] = tuple(out.get("factor_areas") or ())
    out["truth"] = design.get("truth", "prior")
    out["observed"] = design.get("observed")
    return out


def design_cells(design: dict, config: ModelConfig, seed: int) -> np.ndarray:
    """Which (LLM, benchmark) cells every round of a run observes: the pattern of the
    study simulated with the run's seed."""
    keywords = {**_simulate_keywords(design), "observed": None}
    study, known = simulate(**keywords, priors=config.scaled_priors, seed=seed)
    llms = pd.Index(known["llm"].values)
    keys = pd.Index(known["benchmark"].values)
    cells = np.zeros((len(llms), len(keys)), dtype=bool)
    scores = study.scores
    cells[llms.get_indexer(scores["llm"]), keys.get_indexer(scores["benchmark"])] = True
    return cells


def sbc_round(r: int, **kwargs) -> xr.Dataset:
    """One SBC round as a Dataset (its summary figures in ``attrs``); for task runners."""
    ds, info = _one_round(r, **kwargs)
    # NetCDF attributes hold numbers and strings only.
    for key, value in info.items():
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, list | tuple):
            value = "; ".join(map(str, value))
        ds.attrs[key] = value
    return ds


#: The simulated design of an SBC round unless told otherwise (keywords of ``simulate``).
DEFAULT_DESIGN = {
    "n_llms": 26,
    "n_capability": 10,
    "safety": None,
    "missing": 0.0,
    "mechanism": "random",
    "factor_areas": None,
    "truth": "prior",
    "data_scale": "model",
}


def run_sbc(
    n_rounds: int,
    *,
    draws: int = 500,
    tune: int = 500,
    chains: int = 4,
    seed: int = 0,
    config: ModelConfig | None = None,
    rank_draws: int = RANK_DRAWS,
    retry: bool = True,
    progress: ProgressCallback | None = None,
    workers: int = 0,
    scheduler: str | None = None,
    work_dir: str | Path | None = None,
    **design,
) -> xr.Dataset:
    """Simulate, fit and compare ``n_rounds`` times; one row per round.

    Round ``r`` simulates and samples with seed ``seed + r`` however the rounds run (the
    observed cells come from ``seed``): any round can be reproduced alone.

    Parameters
    ----------
    n_rounds : int
        Number of simulated studies (each costs one fit: seconds once compiled).
    draws, tune, chains : int
        Posterior draws and tuning steps per chain, and chains per fit.
    seed : int
        Seed of round 0.
    config : ModelConfig, optional
        Model to fit (default ``ModelConfig()``), one capability dimension only.
    rank_draws : int
        ``L``: truths are ranked among ``L`` evenly spaced draws
        (:func:`~safetywash.analysis.calibration.thin_indices`), ranks ``0..L`` (default 99).
    retry : bool
        Fit every round as ``safetywash fit`` does (an untrusted first attempt at the
        default tuning retried once, :func:`~safetywash.analysis.retry.fit_with_retry`), so
        SBC checks the procedure a user's answer comes from; False keeps first attempts.
    progress : callable, optional
        ``progress(r, n_rounds, info)`` after every round (with a cluster:
        ``progress(-1, n_rounds, {"message": m})``).
    workers, scheduler, work_dir
        Run the rounds on a dask ``LocalCluster`` of ``workers`` processes (0: here, one
        after another) or a running ``scheduler``; per-round files go to ``work_dir``
        (required then; a rerun skips finished rounds).
    **design
        The simulated design: keywords of :func:`~safetywash.model.simulate.simulate` (see
        :data:`DEFAULT_DESIGN`); ``factor_areas`` defaults to ``config.factors`` (correctly
        specified), ``truth="prior"`` draws from ``config.scaled_priors``, ``data_scale``
        (:data:`DATA_SCALES`): the scale the scores are fitted on.

    Returns
    -------
    xarray.Dataset
        The rounds' :func:`~safetywash.analysis.calibration.round_dataset` over ``round``,
        with ``seed``, ``seconds``, ``compiled`` (the round compiled a model), ``retried``
        and ``structure`` (its hash); the run's settings in attrs.
    """
    if n_rounds < 1 or rank_draws < 1:
        raise ValueError("n_rounds and rank_draws must be at least 1")
    config = config or ModelConfig()
    design = _complete_design(design, config)
    cells = design_cells(design, config, seed)  # the same observed cells in every round
    fixed = {**design, "observed": cells, "config": config, "rank_draws": rank_draws}
    fixed["retry"] = retry

    def round_kwargs(r: int) -> dict:
        settings = SamplerSettings(draws=draws, tune=tune, chains=chains, seed=seed + r)
        return {**fixed, "settings": settings, "seed": seed + r}

    if scheduler is None and workers <= 0:
        rounds = _local_rounds(n_rounds, round_kwargs, progress)
    else:
        cluster = {"workers": workers, "scheduler": scheduler, "work_dir": work_dir}
        rounds = _distributed_rounds(n_rounds, round_kwargs, seed, progress, **cluster)
    out = xr.concat(rounds, dim="round", combine_attrs="drop")
    out = out.assign_coords(round=np.arange(n_rounds))
    settings = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "retry": int(retry)}
    out.attrs.update(_run_attrs(n_rounds, design, settings, rank_draws, config))
    return out


def _complete_design(design: dict, config: ModelConfig) -> dict:
    """The design keywords with their defaults (factor areas: the config's factors); the
    config checked (:func:`check_sbc_config`)."""
    check_sbc_config(config)
    unknown = set(design) - set(DEFAULT_DESIGN)
    if unknown:
        raise TypeError(f"run_sbc got unknown design keyword(s) {sorted(unknown)}")
    design = {**DEFAULT_DESIGN, **design}
    if design["safety"] is not None:
        design["safety"] = dict(design["safety"])
    if design["data_scale"] not in DATA_SCALES:
        raise ValueError(f"data_scale must be one of {DATA_SCALES}")
    areas = config.factors if design["factor_areas"] is None else design["factor_areas"]
    design["factor_areas"] = tuple(areas)
    return design


def _local_rounds(n_rounds: int, round_kwargs, progress) -> list[xr.Dataset]:
    """The rounds one after another in this process."""
    rounds = []
    for r in range(n_rounds):
        ds, info = _one_round(r, **round_kwargs(r))
        rounds.append(ds)
        if progress is not None:
            progress(r, n_rounds, info)
    return rounds


def _run_attrs(n_rounds: int, design: dict, settings: dict, rank_draws: int, config) -> dict:
    """The settings of an SBC run as NetCDF attributes (numbers and strings)."""
    safety = design["safety"]
    return {
        "safetywash_version": __version__,
        "n_rounds": n_rounds,
        "n_llms": design["n_llms"],
        "n_capability": design["n_capability"],
        "safety": ",".join(f"{a}={n}" for a, n in (safety or {}).items()) or "default",
        "missing": design["missing"],
        "mechanism": design["mechanism"],
        "factor_areas": ",".join(design["factor_areas"]),
        **settings,
        "rank_draws": rank_draws,
        "model_config": config.to_json(),
        "truth": design["truth"],
        "data_scale": design["data_scale"],
        "fixed_design": 1,
    }


def _distributed_rounds(n_rounds, round_kwargs, seed, progress, *, workers, scheduler, work_dir):
    """The rounds run as tasks on a dask cluster (results kept per round in ``work_dir``)."""
    from safetywash.analysis.distributed import Task, run_tasks

    if work_dir is None:
        raise ValueError("distributed SBC needs work_dir for its per-round results")
    tasks = [
        Task(f"round{r:04d}-seed{seed + r}", sbc_round, {"r": r, **round_kwargs(r)})
        for r in range(n_rounds)
    ]
    results = run_tasks(
        tasks,
        work_dir,
        scheduler=scheduler,
        n_workers=max(workers, 1),
        progress=(lambda msg: progress(-1, n_rounds, {"message": msg})) if progress else None,
    )
    # Without the encodings read from the files: the first round's string widths would
    # truncate the other rounds' variable names when the run is written.
    return [results[t.key].drop_encoding() for t in tasks]
