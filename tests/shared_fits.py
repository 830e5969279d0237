"""One small simulated study and its fits, shared by several test modules in a session."""

from __future__ import annotations

import hashlib
import json

from safetywash.inference.fitfile import load_fit, save_fit
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.simulate import simulate

#: The simulated study and fit shared by test_compare, test_newllm and test_sensitivity.
SHARED_STUDY = {
    "n_llms": 40,
    "n_capability": 5,
    "safety": {"bias": 4, "alignment": 3},
    "factor_areas": ["bias"],
    "seed": 7,
}
SHARED_SETTINGS = {"draws": 300, "tune": 500, "chains": 2, "seed": 1}


def shared_fit(tmp_path_factory, factors: tuple[str, ...] = ()):
    """Fit SHARED_STUDY once per session (saved under the session's base temp folder)."""
    spec = json.dumps([SHARED_STUDY, SHARED_SETTINGS, list(factors)], sort_keys=True)
    key = hashlib.sha256(spec.encode()).hexdigest()[:16]
    path = tmp_path_factory.getbasetemp() / "safetywash_shared_fits" / f"{key}.nc"
    study, truth = simulate(**SHARED_STUDY)
    if path.is_file():
        return study, truth, load_fit(path, study=study)
    config = ModelConfig(factors=factors)
    dt = fit(study, config, SamplerSettings(**SHARED_SETTINGS), progressbar=False)
    save_fit(dt, path)
    return study, truth, dt
