"""Compiled models reused across fits of studies that differ only in their scores, or in
which cells they observe.

A model built by :func:`safetywash.model.build.build_model_from_data` depends on the
observed scores only through its data containers (:func:`data_containers`: scores,
benchmark centres, known noise, whitening estimates, and every cell's LLM and benchmark);
everything else (config, pooling, coordinates, the number of cells) is its structure
(:func:`structure_key`).
:class:`ModelCache` builds and compiles one model per structure and feeds each later study
its scores (``with_data``) and data-driven starts, so that refit-based studies (SBC) compile
once per structure instead of once per fit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading

import numpy as np
import pymc as pm

from safetywash.model.build import (
    BENCHMARK_CENTERS,
    BENCHMARK_INDEX,
    LLM_INDEX,
    OBSERVED_SCORES,
    build_model_from_data,
)
from safetywash.model.config import ModelConfig
from safetywash.model.data import ModelData, benchmark_centers
from safetywash.model.hierarchy import NOISE_SD, noise_values, whitening_values
from safetywash.model.pooling import pooling, resolved_config


def jittered_variables(model: pm.Model, start: dict) -> set:
    """Jitter every start value except the data-driven ones."""
    return {rv for rv in model.free_RVs if rv.name not in start}


def structure_key(data: ModelData, config: ModelConfig) -> str:
    """What a built model depends on besides the observed scores, as a hash.

    Two prepared studies with the same key (same config, pooling, coordinates, hence
    the same number of cells) differ only in the values of the data containers
    (:func:`data_containers`), so one compiled model serves both: studies of one design
    with new scores (SBC), or cross-validation folds that hold out as many cells each.
    Where the graph itself reads which cell is whose (capability integrated out, area
    factors), the index arrays are part of the key.
    """
    parts = {
        "config": config.to_json(),
        "pooling": pooling(data, config).structure(),
        "coords": {k: [str(v) for v in values] for k, values in data.coords.items()},
    }
    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    cells_in_graph = bool(data.factor_keys) or resolved_config(data, config).capability != "sampled"
    cell_arrays = (data.llm_idx, data.benchmark_idx) if cells_in_graph else ()
    for arr in (
        *cell_arrays,
        data.population_idx,
        data.safety_area_idx,
        data.factor_idx,
        data.factor_anchor,
    ):
        h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes() + b"|")
    return h.hexdigest()


def data_containers(data: ModelData, config: ModelConfig | None = None) -> dict[str, np.ndarray]:
    """The values of the model's data containers that are read off the scores: what a
    compiled model of the same structure is given to refit a new study."""
    values = {
        OBSERVED_SCORES: data.y,
        BENCHMARK_CENTERS: benchmark_centers(data),
        NOISE_SD: noise_values(data),
        LLM_INDEX: data.llm_idx,
        BENCHMARK_INDEX: data.benchmark_idx,
    }
    pool = pooling(data, resolved_config(data, config))
    return {**values, **whitening_values(pool)}


class ModelCache:
    """Built (and, for nutpie, compiled) models by :func:`structure_key`.

    Passed to :func:`fit`, it builds and compiles a model the first time a structure is
    seen and afterwards only feeds the new scores into it (``pm.set_data`` on the PyMC
    model, ``with_data`` on nutpie's compiled model), with the new study's data-driven
    starts. Refits of simulated studies of one design (SBC) then compile once.

    Attributes
    ----------
    compiles : int
        Models built (and compiled) so far.
    reuses : int
        Fits that reused one.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[pm.Model, object]] = {}
        self.compiles = 0
        self.reuses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, data: ModelData, config: ModelConfig, sampler: str) -> tuple[pm.Model, object]:
        """The model (and nutpie's compiled model, or None) holding ``data``'s scores."""
        key = f"{sampler}:{structure_key(data, config)}"
        if key not in self._entries:
            model = build_model_from_data(data, config)
            compiled = None
            if sampler == "nutpie":
                compiled = compile_nutpie(model)
            self._entries[key] = (model, compiled)
            self.compiles += 1
        else:
            self.reuses += 1
        model, compiled = self._entries[key]
        values = data_containers(data, config)
        pm.set_data(values, model=model)
        if compiled is not None:
            # Containers the log density does not read (the cell indices where capability
            # is integrated out: their arrays are then part of the structure) are not
            # nutpie's to update.
            known = {var.name for var in compiled.shared_var_keys}
            compiled = compiled.with_data(**{k: v for k, v in values.items() if k in known})
        return model, compiled


def _flat_initial_point_fn(model: pm.Model, start: dict, jitter_rvs: set):
    """The starts of nutpie's compiled model, as nutpie builds them at compile time
    (PyMC's initial point with ``start`` as overrides, on the unconstrained scale,
    concatenated in the order of ``model.free_RVs``)."""
    from pymc.initial_point import make_initial_point_fn

    point_fn = make_initial_point_fn(
        model=model, overrides=start, jitter_rvs=jitter_rvs, return_transformed=True
    )
    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    lock = threading.Lock()

    def flat(seed=None) -> np.ndarray:
        with lock:
            point = point_fn(seed)
        return np.concatenate([np.asarray(point[n], dtype="float64").ravel() for n in names])

    return flat


def compile_nutpie(model: pm.Model, **kwargs):
    """``nutpie.compile_pymc_model`` without fast-math.

    PyTensor compiles its Numba functions with fast-math by default, which lets LLVM
    reassociate floating-point sums differently in a fresh compile and in a function loaded
    from the cache: the same seed then gave different draws (last bits of the gradient,
    which HMC amplifies: a small study had 40 divergences on a cold cache and 3 on a warm
    one). Without fast-math both give identical draws, and sampling is no slower.
    """
    import nutpie
    import pytensor

    with pytensor.config.change_flags(numba__fastmath=False):
        return nutpie.compile_pymc_model(model, **kwargs)


def nutpie_compiled(model: pm.Model, start: dict, compiled=None):
    """Nutpie's compiled model starting from ``start``: compiled now, or a compiled model
    of the same structure (holding this study's scores) given the new starts."""
    jitter = jittered_variables(model, start)
    if compiled is None:
        return compile_nutpie(model, initial_points=start, jitter_rvs=jitter)
    return dataclasses.replace(
        compiled, initial_point_func=_flat_initial_point_fn(model, start, jitter)
    )
