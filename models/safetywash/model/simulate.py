"""Simulated benchmark studies with known truth, for recovery and calibration checks.

Two kinds of truth (``simulate(truth=...)``):

* ``"prior"``: every parameter is drawn from the model's own priors
  (:class:`safetywash.model.config.Priors`, the same definitions the builder uses),
  hyperparameters included: the truth for simulation-based calibration. The priors act on
  the model scale, so the scores are too (stored oriented, times -1 for lower-is-better
  benchmarks): they are a draw from the model only when fitted on that scale, without the
  per-benchmark standardisation a fit of a study applies by default (standardising by the
  study's own mean and SD rescales every benchmark so that its loading and residual SD
  no longer come from the prior the model puts on them).
* ``"design"`` (default): a fixed, well-identified design for recovery tests. Locations come
  from the priors (capability loadings log-normal around ``exp(capability_loading_log_mean_loc)``
  = 0.8, residual SDs around ``exp(residual_log_mean_loc)`` = 0.5, intercepts with SD
  ``intercept_sd``); the spreads that the model gives hyperpriors are fixed at the values of
  :class:`TruthDesign`, and area-factor loadings are positive, around 0.8.

Measurement noise: benchmarks given ``n_items`` are stored as proportions
``1/2 + PROPORTION_SPREAD * y`` (oriented; kept within [0, 1]) with known noise SD
``sqrt(mean p (1 - p) / n_items) / PROPORTION_SPREAD`` on the model scale (``p``: each cell's
expected proportion), the model's noise mapped back; the other benchmarks have no separate
noise (their residual is all benchmark-specific, as in the model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.data.catalog import SAFETY_AREAS
from safetywash.data.study import BenchmarkStudy
from safetywash.model.config import Priors
from safetywash.model.data import factor_anchor
from safetywash.model.likelihood import (
    capability_correlation,
    cell_mean,
    cell_sd,
    predictive_draws,
    residual_sd,
)

MISSING_MECHANISMS = ("random", "era")
#: Benchmarks given ``n_items`` are stored as proportions ``1/2 + PROPORTION_SPREAD * y``.
PROPORTION_SPREAD = 0.1
TRUTHS = ("design", "prior")


@dataclass(frozen=True)
class TruthDesign:
    """Fixed population-level values of the ``"design"`` truth (where the model has
    hyperpriors, the design has one value)."""

    population_mean_sd: float = 1.0
    population_log_sd_sd: float = 0.3
    capability_loading_log_sd: float = 0.25
    area_loading_sd: float = 0.6
    safety_loading_sd: float = 0.25
    residual_log_sd: float = 0.3
    factor_loading_mean: float = 0.8
    factor_loading_sd: float = 0.2


def simulate(
    n_llms: int = 60,
    n_capability: int = 8,
    safety: Mapping[str, int] | None = None,
    *,
    missing: float = 0.0,
    mechanism: str = "random",
    populations: Sequence[str] = ("chat",),
    factor_areas: Sequence[str] = (),
    loadings: Mapping[str, float] | None = None,
    n_items: Mapping[str, int] | None = None,
    residuals: Mapping[str, float] | None = None,
    truth: str = "design",
    priors: Priors | None = None,
    observed: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[BenchmarkStudy, xr.Dataset]:
    """Draw a study from the latent-factor model, with the truth that made it.

    Capability is standardised within each population (mean 0, SD 1), then given its
    population's mean and spread: the scale on which the sampled model defines ``rho``
    (marginal model: SD 1, within O(1/sqrt(n))); area factors are centred, uncorrelated.

    Parameters
    ----------
    n_llms, n_capability : int
        Numbers of LLMs and of capability benchmarks.
    safety : mapping of area -> int, optional
        Safety benchmarks per area; default 2 in each of four areas.
    missing, observed : float, numpy.ndarray of bool, optional
        Target share of missing cells (0 <= missing < 1), or the observed cells themselves
        (shape ``(n_llms, benchmarks)``: a fixed design, as in the rounds of an SBC).
    mechanism : {"random", "era"}
        Missing at random, or by era (later, more capable LLMs miss fewer new benchmarks).
    populations : sequence of str
        Population labels, assigned round-robin.
    factor_areas : sequence of str
        Safety areas that also load on an area factor of their own.
    loadings, n_items, residuals : mapping of benchmark key -> float / int, optional
        Fix some true capability loadings; store some benchmarks as proportions of
        ``n_items`` items with known noise (module docstring); fix some specific SDs.
    truth, priors : {"design", "prior"}, Priors, optional
        Where parameters come from (module docstring); the priors (default ``Priors()``).
    seed : int
        Seed of every random step.

    Returns
    -------
    study : BenchmarkStudy
        Raw scores (a random half of the benchmarks stored lower-is-better).
    truth : xarray.Dataset
        ``capability`` (llm), ``loading``, ``intercept``, ``factor_loading``, ``noise_sd``,
        ``specific_sd``, ``residual_sd`` (their root sum of squares), ``rho`` (benchmark),
        ``area_factor`` (llm, factor) with factors.
    """
    _check(missing, mechanism, truth, factor_areas, safety)
    priors = priors or Priors()
    rng = np.random.default_rng(seed)
    safety = dict({a: 2 for a in SAFETY_AREAS[:4]} if safety is None else safety)
    llms = [f"llm{i:04d}" for i in range(n_llms)]
    pops = np.array([populations[i % len(populations)] for i in range(n_llms)])
    safe_areas = [area for area, count in safety.items() for _ in range(count)]
    keys = [f"cap{j:02d}" for j in range(n_capability)]
    keys += [f"{area}_{j:02d}" for area, count in safety.items() for j in range(count)]
    theta = _capability_truth(rng, pops, truth, priors)
    params = _benchmark_truth(rng, n_capability, safe_areas, list(safety), truth, priors)
    items = _fix(params, keys, {"loading": loadings, "specific_sd": residuals, "n_items": n_items})
    members = [[n_capability + i for i, a in enumerate(safe_areas) if a == f] for f in factor_areas]
    gamma, eta = _factor_truth(rng, theta, len(keys), members, truth, priors)
    y = _scores(rng, theta, params, gamma, eta, members, items)
    observed = _observation_mask(rng, theta, len(keys), missing, mechanism, observed)
    if eta is not None and truth == "prior":
        _anchor_signs(gamma, eta, members, observed, keys)
    direction = np.where(rng.random(len(keys)) < 0.5, "higher", "lower")
    raw = np.where(direction[None, :] == "lower", -y, y)
    bench = (keys, safe_areas, n_capability, direction, items)
    study = _as_study(raw, observed, llms, pops, bench, seed)
    attrs = {"seed": seed, "missing": missing, "mechanism": mechanism, "truth": truth}
    params = {**params, "factor_loading": gamma}
    return study, _truth_dataset(theta, params, eta, llms, keys, factor_areas, attrs)


def _scores(rng, theta, params: dict, gamma, eta, members, items) -> np.ndarray:
    """Model-scale scores of every (LLM, benchmark) pair, drawn from the likelihood.

    Sets ``params["noise_sd"]`` of the benchmarks with ``items`` (their known measurement
    noise, from each cell's expected proportion) and ``params["residual_sd"]``.
    """
    n_llms, n_bench = len(theta), len(gamma)
    llm_idx, bench_idx = (a.ravel() for a in np.indices((n_llms, n_bench)))
    factor = {}
    if eta is not None:
        factor_of = np.zeros(n_bench, dtype=np.int64)
        for f, cols in enumerate(members):
            factor_of[cols] = f
        factor = {"factor_loading": gamma, "area_factor": eta, "cell_factor": factor_of[bench_idx]}
    mu = cell_mean(params["intercept"], params["loading"], theta, llm_idx, bench_idx, **factor)
    p = np.clip(0.5 + PROPORTION_SPREAD * mu, 1e-3, 1 - 1e-3).reshape(n_llms, n_bench)
    known = np.sqrt((p * (1 - p)).mean(axis=0) / items) / PROPORTION_SPREAD
    params["noise_sd"] = np.where(np.isnan(items), params["noise_sd"], known)
    params["residual_sd"] = residual_sd(params["noise_sd"], params["specific_sd"])
    sd = cell_sd(params["residual_sd"], bench_idx)
    return predictive_draws(mu, sd, rng).reshape(n_llms, n_bench)


def _fix(params: dict, keys: list[str], fixed: dict) -> np.ndarray:
    """Set the fixed true values of named benchmarks; ``n_items`` per benchmark (NaN: none)."""
    for name, values in fixed.items():
        unknown = sorted(set(values or {}) - set(keys))
        if unknown:
            raise ValueError(f"{name} names unknown benchmark(s) {unknown}; keys: {keys}")
        for key, value in (values or {}).items():
            if name != "n_items":
                params[name][keys.index(key)] = value
    return np.array([(fixed["n_items"] or {}).get(k, np.nan) for k in keys], dtype=float)


def _truth_dataset(theta, params: dict, eta, llms, keys, factor_areas, attrs) -> xr.Dataset:
    """The parameters that made a simulated study, with every benchmark's ``rho``."""
    known = xr.Dataset(
        {"capability": ("llm", theta), **{k: ("benchmark", v) for k, v in params.items()}},
        coords={"llm": llms, "benchmark": keys},
        attrs=attrs,
    )
    rho = capability_correlation(params["loading"], params["residual_sd"], params["factor_loading"])
    known["rho"] = ("benchmark", rho)
    if eta is not None:
        known["area_factor"] = (("llm", "factor"), eta)
        known = known.assign_coords(factor=list(factor_areas))
    return known


def _check(missing: float, mechanism: str, truth: str, factor_areas, safety) -> None:
    """Refuse impossible simulation settings."""
    if not 0.0 <= missing < 1.0:
        raise ValueError("missing must be in [0, 1)")
    if mechanism not in MISSING_MECHANISMS:
        raise ValueError(f"mechanism must be one of {MISSING_MECHANISMS}")
    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {TRUTHS}, not {truth!r}")
    unknown = [a for a in [*(safety or {}), *factor_areas] if a not in SAFETY_AREAS]
    if unknown:
        raise ValueError(f"unknown safety area(s) {unknown}; choose from {SAFETY_AREAS}")


def _capability_truth(rng, pops: np.ndarray, truth: str, priors: Priors) -> np.ndarray:
    """Capability: standardised within each population, then its mean and spread."""
    design = TruthDesign()
    mean_sd, log_sd_sd = (
        (priors.population_mean_sd, priors.population_log_sd_sd)
        if truth == "prior"
        else (design.population_mean_sd, design.population_log_sd_sd)
    )
    pop_names = sorted(set(pops))
    several = len(pop_names) > 1
    pop_mean = rng.normal(0, mean_sd, len(pop_names)) if several else np.zeros(1)
    pop_mean -= pop_mean.mean()
    pop_log_sd = rng.normal(0, log_sd_sd, len(pop_names)) if several else np.zeros(1)
    pop_log_sd -= pop_log_sd.mean()
    p_idx = np.array([pop_names.index(p) for p in pops])
    # On the model's capability scale: standardised within each population of the study
    # (mean 0, SD 1 with ddof=0), so the true rho is the correlation the model estimates.
    z = rng.normal(0, 1, len(pops))
    for p in range(len(pop_names)):
        members = p_idx == p
        z[members] = (z[members] - z[members].mean()) / (z[members].std() or 1.0)
    return pop_mean[p_idx] + np.exp(pop_log_sd[p_idx]) * z


def _benchmark_truth(rng, n_capability, safe_areas, area_names, truth: str, priors: Priors):
    """Loadings, benchmark-specific and noise SDs, and intercepts of every benchmark."""
    design = TruthDesign()
    n_bench = n_capability + len(safe_areas)
    if truth == "prior":
        cap_log_mean = rng.normal(
            priors.capability_loading_log_mean_loc, priors.capability_loading_log_mean_scale
        )
        cap_log_sd = rng.gamma(2.0, priors.capability_loading_log_sd_scale)
    else:
        cap_log_mean = priors.capability_loading_log_mean_loc
        cap_log_sd = design.capability_loading_log_sd
    cap_loading = np.exp(rng.normal(cap_log_mean, cap_log_sd, n_capability))
    if truth == "prior":
        top = rng.normal(0, priors.safety_loading_mean_scale)
        area_sd = rng.gamma(2.0, priors.area_loading_sd_scale)
    else:
        # The prior's location of safety_loading_mean (Normal(0, scale)).
        top, area_sd = 0.0, design.area_loading_sd
    area_mean = rng.normal(top, area_sd, len(area_names))
    safety_sd = (
        rng.gamma(2.0, priors.safety_loading_sd_scale)
        if truth == "prior"
        else design.safety_loading_sd
    )
    safe_loading = np.array(
        [rng.normal(area_mean[area_names.index(a)], safety_sd) for a in safe_areas]
    )
    if truth == "prior":
        res_log_mean = rng.normal(priors.residual_log_mean_loc, priors.residual_log_mean_scale)
        res_log_sd = rng.gamma(2.0, priors.residual_log_sd_scale)
    else:
        res_log_mean, res_log_sd = priors.residual_log_mean_loc, design.residual_log_sd
    params = {
        "loading": np.concatenate([cap_loading, safe_loading]),
        "specific_sd": np.exp(rng.normal(res_log_mean, res_log_sd, n_bench)),
        "intercept": rng.normal(0, priors.intercept_sd, n_bench),
    }
    # No separate noise where the item count is unknown (as in the model: the specific SD
    # holds it); _scores sets the known noise of proportion benchmarks.
    params["noise_sd"] = np.zeros(n_bench)
    return params


def _factor_truth(rng, theta, n_bench: int, members, truth: str, priors: Priors):
    """Area-factor loadings (per benchmark, 0 outside factor areas) and factor scores,
    centred and uncorrelated with capability within the study, as in the model."""
    gamma = np.zeros(n_bench)
    if not members:
        return gamma, None
    design = TruthDesign()
    eta = rng.normal(0, 1, (len(theta), len(members)))
    eta -= eta.mean(axis=0)
    centred = theta - theta.mean()
    eta -= np.outer(centred, centred @ eta / (centred @ centred))
    for cols in members:
        if truth == "prior":
            gamma[cols] = rng.normal(0, priors.factor_loading_scale, len(cols))
        else:
            gamma[cols] = np.abs(
                rng.normal(design.factor_loading_mean, design.factor_loading_sd, len(cols))
            )
    return gamma, eta


def _anchor_signs(gamma, eta, members, observed: np.ndarray, keys: list[str]) -> None:
    """Flip each factor (scores and loadings) so its anchor's loading is positive, the
    model's identification rule (:func:`safetywash.model.data.factor_anchor`)."""
    counts = pd.Series(observed.sum(axis=0), index=keys)
    for f, cols in enumerate(members):
        names = [keys[c] for c in cols]
        anchor = cols[names.index(factor_anchor(names, counts))]
        if gamma[anchor] < 0:
            gamma[cols] = -gamma[cols]
            eta[:, f] = -eta[:, f]


def _as_study(raw, observed, llms, pops, bench, seed: int):
    """The observed cells of the raw score matrix as a validated study."""
    keys, safe_areas, n_capability, direction, items = bench
    name = f"simulated-{len(llms)}x{len(keys)}-seed{seed}"
    proportion = ~np.isnan(items)
    # A proportion stays in [0, 1]: the rare draw beyond 5 SDs is stored at its bound
    # (sim-indicator, seed 3 of the trust suite: -0.03 without this).
    raw = np.where(proportion, np.clip(0.5 + PROPORTION_SPREAD * raw, 0.0, 1.0), raw)
    ll, bb = np.nonzero(observed)
    scores = pd.DataFrame(
        {"llm": np.array(llms)[ll], "benchmark": np.array(keys)[bb], "value": raw[ll, bb]}
    )
    n_safety = len(keys) - n_capability
    catalog = pd.DataFrame(
        {
            "key": keys,
            "display_name": keys,
            "role": ["capability"] * n_capability + ["safety"] * n_safety,
            "area": ["capability"] * n_capability + list(safe_areas),
            "direction": direction,
            "scale": np.where(proportion, "fraction", "score"),
            "lower": np.where(proportion, 0.0, np.nan),
            "upper": np.where(proportion, 1.0, np.nan),
            "n_items": items,
        }
    )
    llm_table = pd.DataFrame(
        {"population": pops, "display_name": llms}, index=pd.Index(llms, name="llm")
    )
    return BenchmarkStudy.from_frames(scores, llm_table, catalog, name=name)


def _observation_mask(
    rng: np.random.Generator,
    theta: np.ndarray,
    n_bench: int,
    missing: float,
    mechanism: str,
    fixed: np.ndarray | None = None,
) -> np.ndarray:
    """Which cells are observed (``fixed``, if given); every benchmark keeps 3+ LLMs and
    every LLM 1+ score."""
    n_llms = len(theta)
    if fixed is not None:
        if np.shape(fixed) != (n_llms, n_bench):
            raise ValueError(f"observed must have shape {(n_llms, n_bench)}")
        return np.asarray(fixed, dtype=bool)
    if missing == 0:
        return np.ones((n_llms, n_bench), dtype=bool)
    if mechanism == "random":
        observed = rng.random((n_llms, n_bench)) >= missing
    else:
        # Release time rises with capability; a benchmark exists from its introduction on.
        rank = np.argsort(np.argsort(theta + rng.normal(0, 1, n_llms))) / max(n_llms - 1, 1)
        intro = rng.uniform(0, min(2 * missing, 0.95), n_bench)
        observed = rank[:, None] >= intro[None, :]
    for b in range(n_bench):
        if observed[:, b].sum() < 3:
            observed[rng.choice(n_llms, 3, replace=False), b] = True
    for i in np.flatnonzero(~observed.any(axis=1)):
        observed[i, rng.integers(n_bench)] = True
    return observed
