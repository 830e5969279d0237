"""Simulation-based calibration (SBC) of the latent-factor model.

Each round draws a study with known truth (:func:`safetywash.model.simulate.simulate`), fits it
(:func:`safetywash.inference.sampling.fit`) and compares every benchmark's posterior of ``rho`` (its
capability correlation) with the true value: the rank of the truth among thinned posterior
draws, whether the central 50% and 90% intervals contain it, and the posterior median.
Over many rounds a calibrated posterior gives uniform ranks and interval coverage close to
the nominal 50% and 90% (Talts et al. 2018, "Validating Bayesian inference algorithms with
simulation-based calibration").

What is checked, and what is not
--------------------------------
By default (``truth="prior"``) every round draws its truth from the model's own priors
(:func:`safetywash.model.simulate.simulate` reading ``config.scaled_priors``, the
definitions :mod:`safetywash.model.build` uses), hyperparameters included. The scores are
then transformed per benchmark before fitting (:func:`safetywash.model.data.prepare_data`),
so loadings, intercepts and residual SDs are not on the scale of the truth: this is a check
of the interval calibration of ``rho``, which is invariant to any per-benchmark affine
rescaling of the scores (including the orientation of lower-is-better benchmarks), not an
exact SBC of every parameter (the standardisation also makes the model's prior on the
loading scale only approximately the one the standardised truth has). ``truth="design"``
uses simulate's fixed, well-identified design instead.

``rho`` is *not* invariant to the scale of capability. The sampled model fixes the
in-sample SD of capability at exactly 1 within each population, and
:func:`~safetywash.model.simulate.simulate` draws capability on that same scale, so
``rho_true`` is exactly what the sampled model estimates. Every round still records
``rho_true_insample`` (true loadings times the in-sample SD of true capability); with
simulate's in-sample standardisation it equals ``rho_true`` for one population, and it stays
the right estimand should the truth come from elsewhere. With
``ModelConfig(capability="marginal")`` capability has a population distribution with SD 1,
so there the in-sample scale differs from the model's by sampling noise of order
1/sqrt(n LLMs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from safetywash import __version__
from safetywash.analysis.calibration import (
    RANK_DRAWS,
    sbc_rank,
    thin_indices,
)
from safetywash.inference.fitfile import diagnostics_of
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.likelihood import capability_correlation
from safetywash.model.simulate import simulate

#: Central interval probabilities whose coverage is recorded.
INTERVALS = (0.5, 0.9)
SAMPLE_DIMS = ("chain", "draw")

ProgressCallback = Callable[[int, int, dict], None]


def _in_interval(draws: xr.DataArray, truth: np.ndarray, prob: float) -> np.ndarray:
    q = draws.quantile([(1 - prob) / 2, (1 + prob) / 2], dim=SAMPLE_DIMS).values
    return (q[0] <= truth) & (truth <= q[1])


def _chain_capability_corr(posterior: xr.Dataset, true_capability: np.ndarray) -> np.ndarray:
    """Correlation of each chain's posterior-mean capability with the true capability."""
    means = posterior["capability"].mean("draw").transpose("chain", "llm").values
    return np.array([np.corrcoef(m, true_capability)[0, 1] for m in means])


def _one_round(
    r: int,
    *,
    n_llms: int,
    n_capability: int,
    safety: Mapping[str, int] | None,
    missing: float,
    mechanism: str,
    factor_areas: Sequence[str],
    config: ModelConfig,
    settings: SamplerSettings,
    seed: int,
    rank_draws: int,
    truth: str = "prior",
) -> tuple[xr.Dataset, dict]:
    t0 = time.perf_counter()
    study, known = simulate(
        n_llms,
        n_capability,
        safety,
        missing=missing,
        mechanism=mechanism,
        factor_areas=tuple(factor_areas),
        truth=truth,
        priors=config.scaled_priors,
        seed=seed,
    )
    dt = fit(study, config, settings, progressbar=False)
    ds = _round_dataset(study, known, dt, rank_draws)
    ds["seed"] = ((), seed)
    ds["seconds"] = ((), time.perf_counter() - t0)
    diag = diagnostics_of(dt)
    info = {
        "round": r,
        "seed": seed,
        "seconds": float(ds["seconds"]),
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


def _round_dataset(study, known: xr.Dataset, dt: xr.DataTree, rank_draws: int) -> xr.Dataset:
    """Ranks, coverage, posterior summaries and diagnostics of one fitted round."""
    posterior = dt["posterior"].to_dataset()
    benchmarks = known["benchmark"].values
    rho = posterior["rho"].reindex(benchmark=benchmarks)
    rho_true = known["rho"].values
    s = float(np.std(known["capability"].values))
    rho_insample = capability_correlation(
        known["loading"].values * s, known["residual_sd"].values, known["factor_loading"].values
    )
    flat = rho.stack(sample=SAMPLE_DIMS).transpose("sample", "benchmark").values
    kept = flat[thin_indices(flat.shape[0], rank_draws)]
    diag = diagnostics_of(dt)
    chain_corr = _chain_capability_corr(posterior, known["capability"].values)
    counts = study.scores.groupby("benchmark").size().reindex(benchmarks).fillna(0)
    data = {
        "rho_true": ("benchmark", rho_true),
        "rho_true_insample": ("benchmark", rho_insample),
        "rank": ("benchmark", sbc_rank(kept, rho_true)),
        "rank_insample": ("benchmark", sbc_rank(kept, rho_insample)),
        "rho_median": ("benchmark", rho.median(SAMPLE_DIMS).values),
        "rho_sd": ("benchmark", rho.std(SAMPLE_DIMS).values),
        "n_observed": ("benchmark", counts.to_numpy()),
        "max_rhat": ((), diag.max_rhat),
        "min_ess_bulk": ((), diag.min_ess_bulk),
        "min_ess_tail": ((), diag.min_ess_tail),
        "min_ess": ((), min(diag.min_ess_bulk, diag.min_ess_tail)),
        "divergences": ((), diag.divergences),
        "trustworthy": ((), diag.trustworthy),
        "worst_rhat_variable": ((), diag.worst_rhat),
        "worst_ess_variable": ((), diag.worst_ess_bulk),
        "min_chain_capability_corr": ((), float(np.min(chain_corr))),
        "n_rank_draws": ((), kept.shape[0]),
    }
    for prob in INTERVALS:
        pct = round(100 * prob)
        data[f"covered{pct}"] = ("benchmark", _in_interval(rho, rho_true, prob))
        data[f"covered{pct}_insample"] = ("benchmark", _in_interval(rho, rho_insample, prob))
    bench = study.benchmarks.reindex(benchmarks)
    coords = {
        "benchmark": benchmarks,
        "role": ("benchmark", bench["role"].to_numpy(dtype=str)),
        "area": ("benchmark", bench["area"].to_numpy(dtype=str)),
    }
    return xr.Dataset(data, coords=coords)


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
    progress: ProgressCallback | None = None,
    workers: int = 0,
    scheduler: str | None = None,
    work_dir: str | Path | None = None,
    **design,
) -> xr.Dataset:
    """Simulate, fit and compare ``n_rounds`` times; one row per round.

    Round ``r`` simulates and samples with seed ``seed + r`` whichever way the rounds run,
    so any round can be reproduced alone. It checks the calibration of ``rho`` (module
    docstring).

    Parameters
    ----------
    n_rounds : int
        Number of simulated studies (each costs one fit, ~10-30 s).
    draws, tune, chains : int
        Posterior draws and tuning steps per chain, and chains per fit.
    seed : int
        Seed of round 0.
    config : ModelConfig, optional
        Model to fit (default :class:`~safetywash.model.config.ModelConfig()`).
    rank_draws : int
        ``L``: the posterior is thinned to ``L`` evenly spaced draws
        (:func:`~safetywash.analysis.calibration.thin_indices`) before ranking, so ranks
        take the values ``0..L`` (default 99: 10 per bin of a 10-bin histogram).
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
        specified) and ``truth="prior"`` draws from ``config.scaled_priors``.

    Returns
    -------
    xarray.Dataset
        Over ``(round, benchmark)``: ``rho_true``, ``rho_true_insample``, ``rank``,
        ``rank_insample``, ``covered50``, ``covered90`` (and ``*_insample``),
        ``rho_median``, ``rho_sd``, ``n_observed``; per round the diagnostics
        (``max_rhat``, ``min_ess_bulk``/``_tail``, ``min_ess``, ``divergences``,
        ``trustworthy``, ``worst_rhat_variable``, ``worst_ess_variable``),
        ``min_chain_capability_corr`` (< 0: a flipped chain), ``n_rank_draws``, ``seed``,
        ``seconds``; coordinates ``role``, ``area``; the run's settings in attrs.
    """
    if n_rounds < 1 or rank_draws < 1:
        raise ValueError("n_rounds and rank_draws must be at least 1")
    config = config or ModelConfig()
    design = _complete_design(design, config)
    fixed = {**design, "config": config, "rank_draws": rank_draws}

    def round_kwargs(r: int) -> dict:
        settings = SamplerSettings(draws=draws, tune=tune, chains=chains, seed=seed + r)
        return {**fixed, "settings": settings, "seed": seed + r}

    if scheduler is None and workers <= 0:
        rounds = _local_rounds(n_rounds, round_kwargs, progress)
    else:
        rounds = _distributed_rounds(
            n_rounds, round_kwargs, seed, progress, workers, scheduler, work_dir
        )
    out = xr.concat(rounds, dim="round", combine_attrs="drop")
    out = out.assign_coords(round=np.arange(n_rounds))
    settings = {"draws": draws, "tune": tune, "chains": chains, "seed": seed}
    out.attrs.update(_run_attrs(n_rounds, design, settings, rank_draws, config))
    return out


def _complete_design(design: dict, config: ModelConfig) -> dict:
    """The design keywords with their defaults (factor areas: the config's factors)."""
    unknown = set(design) - set(DEFAULT_DESIGN)
    if unknown:
        raise TypeError(f"run_sbc got unknown design keyword(s) {sorted(unknown)}")
    design = {**DEFAULT_DESIGN, **design}
    if design["safety"] is not None:
        design["safety"] = dict(design["safety"])
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
    }


def _distributed_rounds(n_rounds, round_kwargs, seed, progress, workers, scheduler, work_dir):
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
    return [results[t.key] for t in tasks]
