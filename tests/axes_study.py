"""A small study made from two capability dimensions, and its fits, shared by the tests of
the analyses of fits with more than one capability dimension.

The scores are ``general_b * theta_i + axis_b * u_i + 0.4 e_ib`` for 60 LLMs, 7 capability
benchmarks (axis loadings orthogonal to the general ones over them, as the model identifies
them) and 6 safety benchmarks in two areas, about 8% of the cells missing.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import load_fit, save_fit
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig

N_LLMS, N_CAP = 60, 7
AREAS = ["alignment"] * 3 + ["bias"] * 3
#: Sampler settings of the shared fits (short: the tests check computations, not recovery).
AXES_SETTINGS = {"draws": 200, "tune": 300, "chains": 2, "seed": 5}


def axes_study(n_cap: int = N_CAP, seed: int = 3) -> tuple[BenchmarkStudy, pd.DataFrame]:
    """The study and its truth per benchmark (``general``, ``axis`` loadings, ``sigma``)
    and per LLM (``theta``, ``u`` in the attrs of the truth frame)."""
    rng = np.random.default_rng(seed)
    theta, u = rng.standard_normal(N_LLMS), rng.standard_normal(N_LLMS)
    general = np.r_[rng.uniform(0.6, 0.9, n_cap), rng.normal(0.3, 0.3, len(AREAS))]
    raw = np.linspace(0.6, -0.6, n_cap)
    cap = general[:n_cap]
    cap_axis = raw - cap * (cap @ raw) / (cap @ cap)
    axis = np.r_[cap_axis, rng.normal(0.0, 0.5, len(AREAS))]
    sigma = np.full(len(general), 0.4)
    keys = [f"cap{j}" for j in range(n_cap)] + [f"safe{j}" for j in range(len(AREAS))]
    y = np.outer(theta, general) + np.outer(u, axis)
    y = y + sigma * rng.standard_normal((N_LLMS, len(keys)))
    llm, bench = np.indices(y.shape)
    keep = rng.random(y.size) > 0.08
    scores = pd.DataFrame(
        {
            "llm": [f"llm{i:02d}" for i in llm.ravel()[keep]],
            "benchmark": np.array(keys)[bench.ravel()[keep]],
            "value": y.ravel()[keep],
        }
    )
    catalog = pd.DataFrame(
        {
            "key": keys,
            "role": ["capability"] * n_cap + ["safety"] * len(AREAS),
            "area": ["capability"] * n_cap + AREAS,
            "direction": "higher",
            "scale": "score",
        }
    )
    truth = pd.DataFrame({"general": general, "axis": axis, "sigma": sigma}, index=keys)
    truth.attrs = {"theta": theta, "u": u}
    return BenchmarkStudy.from_frames(scores, None, catalog), truth


def axes_fit(tmp_path_factory, capability_dims: int, **config):
    """The study fitted with ``capability_dims`` dimensions, once per session (saved under
    the session's base temp folder). Returns the study, its truth and the fit."""
    study, truth = axes_study()
    spec = json.dumps([AXES_SETTINGS, capability_dims, config], sort_keys=True)
    key = hashlib.sha256(spec.encode()).hexdigest()[:16]
    path = tmp_path_factory.getbasetemp() / "safetywash_axes_fits" / f"{key}.nc"
    if path.is_file():
        return study, truth, load_fit(path, study=study)
    model = ModelConfig(capability_dims=capability_dims, **config)
    dt = fit(study, model, SamplerSettings(**AXES_SETTINGS), progressbar=False)
    save_fit(dt, path)
    return study, truth, load_fit(path, study=study)
