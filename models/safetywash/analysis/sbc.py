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
The simulated truth is drawn from priors *close to*, not identical with, the model's: fixed
population-level values (capability loadings log-normal around 0.8 with log-SD 0.25, area
means with SD 0.6, residual SDs log-normal around 0.5) where the model has hyperpriors,
and the scores are standardised per benchmark before fitting
(:func:`safetywash.model.build.prepare_data`), so loadings, intercepts and residual SDs are not on
the scale of the truth. This is therefore not an exact SBC of every parameter but a check
of the interval calibration of ``rho``, which is invariant to any per-benchmark affine
rescaling of the scores (including the orientation of lower-is-better benchmarks).

``rho`` is *not* invariant to the scale of capability. The sampled model fixes the
in-sample SD of capability at exactly 1 within each population, and
:func:`~safetywash.model.simulate.simulate` now draws capability on that same scale, so
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
from scipy import stats

from safetywash import __version__
from safetywash.inference.sampling import SamplerSettings, diagnostics_of, fit
from safetywash.model.build import ModelConfig
from safetywash.model.simulate import simulate

#: Number of posterior draws the truth is ranked among (ranks take values 0..L).
RANK_DRAWS = 99
#: Central interval probabilities whose coverage is recorded.
INTERVALS = (0.5, 0.9)
SAMPLE_DIMS = ("chain", "draw")

ProgressCallback = Callable[[int, int, dict], None]


def thin_indices(n_total: int, n_keep: int = RANK_DRAWS) -> np.ndarray:
    """Evenly spaced positions of ``n_keep`` draws among ``n_total`` (all if fewer).

    Draws are counted chain after chain, so every chain contributes about
    ``n_keep / chains`` draws spaced ``n_total / n_keep`` apart, which keeps the kept
    draws close to independent when the effective sample size is at least ``n_keep``.
    """
    if n_total <= n_keep:
        return np.arange(n_total)
    return (np.arange(n_keep) * n_total) // n_keep


def sbc_rank(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rank of each truth among its draws: the number of draws below it.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape ``(n_draws, n)``.
    truth : numpy.ndarray
        Shape ``(n,)``.

    Returns
    -------
    numpy.ndarray
        Integers in ``0..n_draws`` (``-1`` where the truth is not finite). Ties (which
        have probability zero for continuous posteriors) count half.
    """
    below = (draws < truth[None, :]).sum(axis=0)
    ties = (draws == truth[None, :]).sum(axis=0)
    rank = below + ties // 2
    return np.where(np.isfinite(truth), rank, -1).astype(np.int64)


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
) -> tuple[xr.Dataset, dict]:
    t0 = time.perf_counter()
    study, truth = simulate(
        n_llms,
        n_capability,
        safety,
        missing=missing,
        mechanism=mechanism,
        factor_areas=tuple(factor_areas),
        seed=seed,
    )
    dt = fit(study, config, settings, progressbar=False)
    posterior = dt["posterior"].to_dataset()
    benchmarks = truth["benchmark"].values
    rho = posterior["rho"].reindex(benchmark=benchmarks)

    rho_true = truth["rho"].values
    s = float(np.std(truth["capability"].values))
    lam = truth["loading"].values * s
    other = truth["factor_loading"].values ** 2 + truth["residual_sd"].values ** 2
    rho_insample = lam / np.sqrt(lam**2 + other)

    flat = rho.stack(sample=SAMPLE_DIMS).transpose("sample", "benchmark").values
    kept = flat[thin_indices(flat.shape[0], rank_draws)]
    diag = diagnostics_of(dt)
    chain_corr = _chain_capability_corr(posterior, truth["capability"].values)

    data = {
        "rho_true": ("benchmark", rho_true),
        "rho_true_insample": ("benchmark", rho_insample),
        "rank": ("benchmark", sbc_rank(kept, rho_true)),
        "rank_insample": ("benchmark", sbc_rank(kept, rho_insample)),
        "rho_median": ("benchmark", rho.median(SAMPLE_DIMS).values),
        "rho_sd": ("benchmark", rho.std(SAMPLE_DIMS).values),
        "n_observed": (
            "benchmark",
            study.scores.groupby("benchmark").size().reindex(benchmarks).fillna(0).to_numpy(),
        ),
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
        "seed": ((), seed),
        "seconds": ((), time.perf_counter() - t0),
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
    ds = xr.Dataset(data, coords=coords)
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


def run_sbc(
    n_rounds: int,
    *,
    n_llms: int = 26,
    n_capability: int = 10,
    safety: Mapping[str, int] | None = None,
    missing: float = 0.0,
    mechanism: str = "random",
    draws: int = 500,
    tune: int = 500,
    seed: int = 0,
    config: ModelConfig | None = None,
    factor_areas: Sequence[str] | None = None,
    chains: int = 4,
    rank_draws: int = RANK_DRAWS,
    progress: ProgressCallback | None = None,
    workers: int = 0,
    scheduler: str | None = None,
    work_dir: str | Path | None = None,
) -> xr.Dataset:
    """Simulate, fit and compare ``n_rounds`` times; one row per round.

    Round ``r`` simulates with ``seed + r`` and samples with the same seed, so any round
    can be reproduced alone (``simulate(..., seed=seed + r)`` and
    ``SamplerSettings(draws, tune, seed=seed + r)``). The simulated truth comes from
    priors close to, not identical with, the model's, and the data are standardised per
    benchmark before fitting, so this checks the interval calibration of ``rho``, which
    is invariant to per-benchmark affine rescaling (see the module docstring, also for
    ``rho_true_insample``).

    Parameters
    ----------
    n_rounds : int
        Number of simulated studies (each costs one fit, ~10-30 s).
    n_llms, n_capability : int
        LLMs and capability benchmarks per study.
    safety : mapping of area -> int, optional
        Safety benchmarks per area (default of :func:`~safetywash.model.simulate.simulate`:
        two in each of four areas).
    missing : float
        Share of missing cells.
    mechanism : {"random", "era"}
        Missingness mechanism.
    draws, tune : int
        Posterior draws and tuning steps per chain.
    seed : int
        Seed of round 0.
    config : ModelConfig, optional
        Model to fit (default :class:`~safetywash.model.build.ModelConfig()`).
    factor_areas : sequence of str, optional
        Areas simulated with a factor of their own; default ``config.factors`` (the
        model is then correctly specified).
    chains : int
        Chains per fit.
    rank_draws : int
        ``L``: the posterior (``chains x draws``) is thinned to ``L`` evenly spaced draws
        (:func:`thin_indices`) before ranking, so ranks take the ``L + 1`` values
        ``0..L``; default 99 (100 values, 10 per bin of a 10-bin histogram). Intervals
        and medians use every draw.
    progress : callable, optional
        Called after every round as ``progress(r, n_rounds, info)`` with a dict of that
        round's figures (seed, seconds, coverage50/90, mae, max_rhat, min_ess,
        divergences, trustworthy, problems: the failed diagnostics in words). With a
        cluster, rounds finish out of order and ``progress(-1, n_rounds, {"message": m})``
        is called with the runner's one-line messages instead.
    workers : int
        Run the rounds on a ``dask.distributed`` ``LocalCluster`` of this many worker
        processes (0: one after another in this process).
    scheduler : str, optional
        Address of a running dask scheduler to use instead of a local cluster.
    work_dir : str or pathlib.Path, optional
        Folder of per-round result files when distributed (required then); a rerun with
        the same folder skips the rounds already finished. Each round's seed is
        ``seed + r`` whichever way it runs, so results do not depend on scheduling.

    Returns
    -------
    xarray.Dataset
        Dims ``(round, benchmark)``. Per round and benchmark: ``rho_true``,
        ``rho_true_insample``, ``rank`` and ``rank_insample`` (0..L), ``covered50``,
        ``covered90`` (and ``*_insample``), ``rho_median``, ``rho_sd``, ``n_observed``.
        Per round: ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``, ``min_ess``,
        ``divergences``, ``trustworthy``, ``worst_rhat_variable``, ``worst_ess_variable``
        (the variables holding the worst R-hat and bulk ESS),
        ``min_chain_capability_corr`` (worst chain's
        correlation of posterior-mean with true capability; negative = a flipped chain),
        ``n_rank_draws``, ``seed``, ``seconds``. Coordinates ``role`` and ``area`` of each
        benchmark. Attrs: the settings of the run (JSON-able scalars and strings).
    """
    if n_rounds < 1:
        raise ValueError("n_rounds must be at least 1")
    if rank_draws < 1:
        raise ValueError("rank_draws must be positive")
    config = config or ModelConfig()
    factor_areas = tuple(config.factors if factor_areas is None else factor_areas)

    def round_kwargs(r: int) -> dict:
        return {
            "n_llms": n_llms,
            "n_capability": n_capability,
            "safety": dict(safety) if safety is not None else None,
            "missing": missing,
            "mechanism": mechanism,
            "factor_areas": factor_areas,
            "config": config,
            "settings": SamplerSettings(draws=draws, tune=tune, chains=chains, seed=seed + r),
            "seed": seed + r,
            "rank_draws": rank_draws,
        }

    rounds = []
    if scheduler is None and workers <= 0:
        for r in range(n_rounds):
            ds, info = _one_round(r, **round_kwargs(r))
            rounds.append(ds)
            if progress is not None:
                progress(r, n_rounds, info)
    else:
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
        rounds = [results[t.key] for t in tasks]
    out = xr.concat(rounds, dim="round", combine_attrs="drop").assign_coords(
        round=np.arange(n_rounds)
    )
    out.attrs.update(
        {
            "safetywash_version": __version__,
            "n_rounds": n_rounds,
            "n_llms": n_llms,
            "n_capability": n_capability,
            "safety": ",".join(f"{a}={n}" for a, n in (safety or {}).items()) or "default",
            "missing": missing,
            "mechanism": mechanism,
            "factor_areas": ",".join(factor_areas),
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "seed": seed,
            "rank_draws": rank_draws,
            "model_config": config.to_json(),
        }
    )
    return out


def rank_uniformity(ranks: np.ndarray, n_rank_draws: int, bins: int = 10) -> tuple[float, float]:
    """Chi-square test that ranks in ``0..n_rank_draws`` are uniform.

    Ranks are binned into ``bins`` equal-width bins of the ``n_rank_draws + 1`` possible
    values (exactly equal counts per bin when ``bins`` divides ``n_rank_draws + 1``;
    otherwise the expected counts are adjusted to the number of values per bin).

    Returns
    -------
    statistic, p_value : float
    """
    ranks = np.asarray(ranks).ravel()
    ranks = ranks[ranks >= 0]
    n_values = n_rank_draws + 1
    bins = min(bins, n_values)
    edges = np.floor(np.arange(n_values) * bins / n_values).astype(int)  # value -> bin
    observed = np.bincount(edges[ranks], minlength=bins)
    expected = np.bincount(edges, minlength=bins) / n_values * ranks.size
    result = stats.chisquare(observed, expected)
    return float(result.statistic), float(result.pvalue)


def summarize_sbc(ds: xr.Dataset, *, bins: int = 10) -> dict:
    """Calibration figures of an SBC run.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`run_sbc`.
    bins : int
        Bins of the rank histogram for the chi-square test.

    Returns
    -------
    dict
        ``coverage50``, ``coverage90``: share of (round, benchmark) pairs whose true
        ``rho`` lies in the central 50% / 90% posterior interval; ``uniformity_p``
        (and ``uniformity_chi2``): chi-square test of uniform ranks (benchmarks within
        a round share one simulated study, so they are not independent and the p-value
        is somewhat optimistic); ``mae_median``: mean absolute error of the posterior
        median; ``mean_rank``: mean rank over ``L`` (0.5 when unbiased; above 0.5 = the
        truth tends to lie above the posterior); ``n_untrusted``: rounds failing the
        convergence thresholds; ``n_flipped``: rounds with a chain whose capability
        correlates negatively with the truth; the same figures for
        ``rho_true_insample`` under ``insample``, and per role under ``by_role``.
    """
    n_rank = int(ds["n_rank_draws"].min())
    if int(ds["n_rank_draws"].max()) != n_rank:
        raise ValueError("rounds were ranked among different numbers of draws")

    def figures(sub: xr.Dataset, suffix: str = "") -> dict:
        truth = sub["rho_true" + suffix]
        ranks = sub["rank" + suffix].values
        chi2, p = rank_uniformity(ranks, n_rank, bins)
        return {
            "coverage50": float(sub["covered50" + suffix].mean()),
            "coverage90": float(sub["covered90" + suffix].mean()),
            "uniformity_chi2": chi2,
            "uniformity_p": p,
            "mae_median": float(np.abs(sub["rho_median"] - truth).mean()),
            "mean_rank": float(ranks[ranks >= 0].mean() / n_rank),
        }

    out = {
        "n_rounds": int(ds.sizes["round"]),
        "n_benchmarks": int(ds.sizes["benchmark"]),
        "rank_draws": n_rank,
        "bins": bins,
        **figures(ds),
        "n_untrusted": int((~ds["trustworthy"].astype(bool)).sum()),
        "n_flipped": int((ds["min_chain_capability_corr"] < 0).sum()),
        "max_rhat": float(ds["max_rhat"].max()),
        "min_ess": float(ds["min_ess"].min()),
        "divergences": int(ds["divergences"].sum()),
        "insample": figures(ds, "_insample"),
    }
    if "role" in ds.coords:
        out["by_role"] = {
            str(role): figures(ds.isel(benchmark=np.flatnonzero(ds["role"].values == role)))
            for role in np.unique(ds["role"].values)
        }
    return out
