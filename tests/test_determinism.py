"""One seed, one set of numbers, whatever the state of the compile caches."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.simulate import simulate

study, _ = simulate(20, 4, {"bias": 2, "calibration": 2}, seed=1)
dt = fit(study, ModelConfig(), SamplerSettings(draws=60, tune=60, chains=2, seed=5),
         progressbar=False)
print(repr(dt["posterior"]["rho"].values.tobytes().hex()))
"""


def _draws(cache: Path) -> str:
    env = dict(os.environ)
    env["PYTENSOR_FLAGS"] = f"base_compiledir={cache / 'pytensor'}"
    env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def test_cold_and_warm_compile_caches_give_the_same_draws(tmp_path):
    # The first run compiles into empty caches, the second loads what the first stored.
    cold = _draws(tmp_path)
    warm = _draws(tmp_path)
    assert cold == warm
