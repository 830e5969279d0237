"""Small fit-shaped DataTrees built without sampling, for fast tests of post-processing.

:func:`simulated_fit_tree` draws a study with :func:`safetywash.model.simulate.simulate` and
puts the posterior at the simulation's truth (re-expressed on the model's standardised
scale) plus a little noise per draw, with the groups and attrs a saved fit has
(``posterior``, ``observed_data``, ``constant_data``; study name, model config, seed,
diagnostics, sampler settings, excluded benchmarks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from safetywash.inference.diagnostics import Diagnostics
from safetywash.inference.fitfile import FitInfo, constant_data, observed_data
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.simulate import simulate

SAMPLE_DIMS = ("chain", "draw")
#: Diagnostics that fail every threshold (the report must warn).
BAD_DIAGNOSTICS = Diagnostics(1.3, "rho", 12.0, "rho", 15.0, "rho", 3, 60)
#: Diagnostics of a converged fit.
GOOD_DIAGNOSTICS = Diagnostics(1.001, "rho", 900.0, "rho", 800.0, "rho", 0, 60)


def _posterior(truth: xr.Dataset, data, factors: tuple, shape: tuple, seed: int) -> xr.Dataset:
    """The truth on the model's scale plus a little noise per draw."""
    rng = np.random.default_rng(seed)
    keys = list(data.study.benchmarks.index)
    scale, center = data.scale.to_numpy(), data.center.to_numpy()

    def noisy(value, sd=0.05):
        value = np.asarray(value, dtype=float)
        return value + sd * rng.standard_normal(shape + value.shape)

    loading = noisy(truth["loading"].sel(benchmark=keys).values / scale)
    sigma = np.abs(noisy(truth["residual_sd"].sel(benchmark=keys).values / scale))
    gamma_full = np.zeros((*shape, len(keys)))
    if factors:
        gamma_b = truth["factor_loading"].sel(benchmark=keys).values / scale
        gamma = noisy(gamma_b[[keys.index(k) for k in data.factor_keys]])
        gamma_full[..., [keys.index(k) for k in data.factor_keys]] = gamma
    rho = loading / np.sqrt(loading**2 + gamma_full**2 + sigma**2)
    dims = SAMPLE_DIMS
    posterior = xr.Dataset(
        {
            "capability": ((*dims, "llm"), noisy(truth["capability"].values)),
            "loading": ((*dims, "benchmark"), loading),
            "residual_sd": ((*dims, "benchmark"), sigma),
            "intercept": (
                (*dims, "benchmark"),
                noisy((truth["intercept"].sel(benchmark=keys).values - center) / scale),
            ),
            "rho": ((*dims, "benchmark"), rho),
            "area_loading_mean": ((*dims, "area"), noisy(np.zeros(len(data.areas)))),
        },
        coords={
            "chain": np.arange(shape[0]),
            "draw": np.arange(shape[1]),
            "llm": list(data.study.llms.index),
            "benchmark": keys,
            "area": data.areas,
        },
    )
    if factors:
        posterior["factor_loading"] = ((*dims, "factor_benchmark"), gamma)
        posterior["area_factor"] = ((*dims, "llm", "factor"), noisy(truth["area_factor"].values))
        posterior = posterior.assign_coords(
            factor=data.factor_names, factor_benchmark=data.factor_keys
        )
    return posterior


def simulated_fit_tree(
    n_llms: int = 24,
    n_capability: int = 4,
    safety: Mapping[str, int] | None = None,
    *,
    factors: Sequence[str] = (),
    seed: int = 2,
    chains: int = 2,
    draws: int = 30,
    diagnostics: Diagnostics = BAD_DIAGNOSTICS,
    rename=None,
) -> xr.DataTree:
    """A fit-shaped DataTree of a simulated study, without sampling.

    Parameters
    ----------
    n_llms, n_capability : int
        Size of the simulated study.
    safety : mapping of area -> int, optional
        Safety benchmarks per area (default ``{"bias": 3, "calibration": 3}``).
    factors : sequence of str
        Areas with a factor of their own (in the truth and in the tree).
    seed : int
        Seed of the simulation and of the noise around the truth.
    chains, draws : int
        Sample dimensions.
    diagnostics : Diagnostics
        Stored as the fit's ``diagnostics`` attr.
    rename : callable, optional
        ``rename(study) -> study`` applied before the tree is built (e.g. display names).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (``capability``, ``loading``, ``residual_sd``, ``intercept``,
        ``rho``, ``area_loading_mean`` and, with factors, ``factor_loading`` and
        ``area_factor``), ``observed_data`` and ``constant_data``.
    """
    factors = tuple(factors)
    safety = dict(safety or {"bias": 3, "calibration": 3})
    study, truth = simulate(n_llms, n_capability, safety, factor_areas=factors, seed=seed)
    study = rename(study) if rename else study
    config = ModelConfig(factors=factors)
    data = prepare_data(study, config)
    posterior = _posterior(truth, data, factors, (chains, draws), seed)
    tree = xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "observed_data": observed_data(data),
            "constant_data": constant_data(data),
        }
    )
    info = FitInfo(
        model_config=config,
        sampler_settings=SamplerSettings(draws=draws, chains=chains, seed=seed),
        study_sha256=study.sha256(),
        study_name=study.name,
        seed=seed,
        diagnostics=diagnostics,
        excluded_benchmarks=tuple(study.excluded),
    )
    tree.attrs.update(info.to_attrs())
    return tree
