"""Simulated benchmark studies with known truth, for recovery and calibration checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.data.catalog import SAFETY_AREAS
from safetywash.data.study import BenchmarkStudy

MISSING_MECHANISMS = ("random", "era")


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
    seed: int = 0,
) -> tuple[BenchmarkStudy, xr.Dataset]:
    """Draw a study from the latent-factor model, with the truth that made it.

    Parameters drawn from the model's priors (see :mod:`safetywash.model.build`): capability
    loadings log-normal around 0.8, safety loadings normal around an area mean, residual
    SDs log-normal around 0.5, populations with different means and spreads. Capability is
    standardised within each population of the drawn study (mean 0, SD 1), the scale on
    which the default model defines ``rho``; the marginal model instead assumes a
    population SD of 1, which differs from this by sampling noise of order 1/sqrt(n).

    Parameters
    ----------
    n_llms : int
        Number of LLMs.
    n_capability : int
        Number of capability benchmarks.
    safety : mapping of area -> int, optional
        Safety benchmarks per area; default 2 in each of four areas.
    missing : float
        Target share of missing cells (0 <= missing < 1).
    mechanism : {"random", "era"}
        ``"random"``: cells missing completely at random. ``"era"``: each LLM has a release
        time correlated with its capability and each benchmark an introduction time; a
        cell is missing when the LLM predates the benchmark (missing by LLM era).
    populations : sequence of str
        Population labels, assigned round-robin.
    factor_areas : sequence of str
        Safety areas that also load on an area factor of their own.
    loadings : mapping of benchmark key -> float, optional
        Fix some true capability loadings instead of drawing them.
    seed : int
        Seed of every random step.

    Returns
    -------
    study : BenchmarkStudy
        Raw scores (a random half of the benchmarks stored lower-is-better).
    truth : xarray.Dataset
        ``capability`` (llm), ``loading``, ``residual_sd``, ``intercept``, ``rho``,
        ``factor_loading`` (benchmark) and ``area_factor`` (llm, factor) when factors exist.
    """
    if not 0.0 <= missing < 1.0:
        raise ValueError("missing must be in [0, 1)")
    if mechanism not in MISSING_MECHANISMS:
        raise ValueError(f"mechanism must be one of {MISSING_MECHANISMS}")
    rng = np.random.default_rng(seed)
    safety = dict({a: 2 for a in SAFETY_AREAS[:4]} if safety is None else safety)
    unknown = [a for a in [*safety, *factor_areas] if a not in SAFETY_AREAS]
    if unknown:
        raise ValueError(f"unknown safety area(s) {unknown}; choose from {SAFETY_AREAS}")

    llms = [f"llm{i:04d}" for i in range(n_llms)]
    pops = np.array([populations[i % len(populations)] for i in range(n_llms)])
    cap_keys = [f"cap{j:02d}" for j in range(n_capability)]
    safe_keys, safe_areas = [], []
    for area, count in safety.items():
        for j in range(count):
            safe_keys.append(f"{area}_{j:02d}")
            safe_areas.append(area)
    keys = cap_keys + safe_keys
    n_bench = len(keys)

    # Capability: populations differ in mean and spread.
    pop_names = sorted(set(pops))
    pop_mean = rng.normal(0, 1, len(pop_names)) if len(pop_names) > 1 else np.zeros(1)
    pop_mean -= pop_mean.mean()
    pop_log_sd = rng.normal(0, 0.3, len(pop_names)) if len(pop_names) > 1 else np.zeros(1)
    pop_log_sd -= pop_log_sd.mean()
    p_idx = np.array([pop_names.index(p) for p in pops])
    # On the model's capability scale: standardised within each population of the study
    # (mean 0, SD 1 with ddof=0), so the true rho is the correlation the model estimates.
    z = rng.normal(0, 1, n_llms)
    for p in range(len(pop_names)):
        members = p_idx == p
        z[members] = (z[members] - z[members].mean()) / (z[members].std() or 1.0)
    theta = pop_mean[p_idx] + np.exp(pop_log_sd[p_idx]) * z

    cap_loading = np.exp(rng.normal(np.log(0.8), 0.25, n_capability))
    area_names = list(safety)
    area_mean = rng.normal(0, 0.6, len(area_names))
    safe_loading = np.array([rng.normal(area_mean[area_names.index(a)], 0.25) for a in safe_areas])
    loading = np.concatenate([cap_loading, safe_loading])
    for key, value in (loadings or {}).items():
        loading[keys.index(key)] = value
    residual_sd = np.exp(rng.normal(np.log(0.5), 0.3, n_bench))
    intercept = rng.normal(0, 1, n_bench)

    mean = intercept[None, :] + theta[:, None] * loading[None, :]
    factor_loading = np.zeros(n_bench)
    eta = None
    if factor_areas:
        eta = rng.normal(0, 1, (n_llms, len(factor_areas)))
        for f, area in enumerate(factor_areas):
            members = [
                i
                for i, k in enumerate(keys)
                if i >= n_capability and safe_areas[i - n_capability] == area
            ]
            gamma = np.abs(rng.normal(0.8, 0.2, len(members)))
            factor_loading[members] = gamma
            mean[:, members] += eta[:, [f]] * gamma[None, :]
    y = mean + rng.normal(0, 1, (n_llms, n_bench)) * residual_sd[None, :]

    observed = _observation_mask(rng, theta, n_bench, missing, mechanism)
    direction = np.where(rng.random(n_bench) < 0.5, "higher", "lower")
    raw = np.where(direction[None, :] == "lower", -y, y)

    ll, bb = np.nonzero(observed)
    scores = pd.DataFrame(
        {"llm": np.array(llms)[ll], "benchmark": np.array(keys)[bb], "value": raw[ll, bb]}
    )
    catalog = pd.DataFrame(
        {
            "key": keys,
            "display_name": keys,
            "role": ["capability"] * n_capability + ["safety"] * len(safe_keys),
            "area": ["capability"] * n_capability + safe_areas,
            "direction": direction,
            "scale": "score",
        }
    )
    llm_table = pd.DataFrame(
        {"population": pops, "display_name": llms}, index=pd.Index(llms, name="llm")
    )
    study = BenchmarkStudy.from_frames(
        scores, llm_table, catalog, name=f"simulated-{n_llms}x{n_bench}-seed{seed}"
    )

    rho = loading / np.sqrt(loading**2 + factor_loading**2 + residual_sd**2)
    truth = xr.Dataset(
        {
            "capability": ("llm", theta),
            "loading": ("benchmark", loading),
            "residual_sd": ("benchmark", residual_sd),
            "intercept": ("benchmark", intercept),
            "factor_loading": ("benchmark", factor_loading),
            "rho": ("benchmark", rho),
        },
        coords={"llm": llms, "benchmark": keys},
        attrs={"seed": seed, "missing": missing, "mechanism": mechanism},
    )
    if eta is not None:
        truth["area_factor"] = (("llm", "factor"), eta)
        truth = truth.assign_coords(factor=list(factor_areas))
    return study, truth


def _observation_mask(
    rng: np.random.Generator, theta: np.ndarray, n_bench: int, missing: float, mechanism: str
) -> np.ndarray:
    """Which cells are observed; every benchmark keeps 3+ LLMs and every LLM 1+ score."""
    n_llms = len(theta)
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
