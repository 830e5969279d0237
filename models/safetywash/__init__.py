"""Bayesian analysis of capability entanglement in AI safety benchmarks.

``import safetywash as sw`` gives the entry points a notebook needs::

    study = sw.load_dataset("safetywashing", "chat")
    dt = sw.fit(study, sw.ModelConfig())
    dt = sw.store_paper_baseline(dt, study)
    table = sw.separability(dt)

Names are imported on first use, so ``import safetywash`` stays light and code that only
reads saved fits never loads PyMC.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("safetywash")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0+unknown"

#: Public name -> module that owns it.
API = {
    "BenchmarkStudy": "safetywash.data.study",
    "StudyValidationError": "safetywash.data.errors",
    "load_dataset": "safetywash.data.load",
    "read_wide_csv": "safetywash.data.readers",
    "read_long_csv": "safetywash.data.readers",
    "ModelConfig": "safetywash.model.config",
    "build_model": "safetywash.model.build",
    "simulate": "safetywash.model.simulate",
    "SamplerSettings": "safetywash.inference.settings",
    "fit": "safetywash.inference.sampling",
    "load_fit": "safetywash.inference.fitfile",
    "save_fit": "safetywash.inference.fitfile",
    "study_from_fit": "safetywash.inference.fitfile",
    "paper_baseline": "safetywash.analysis.baseline",
    "store_paper_baseline": "safetywash.analysis.baseline",
    "separability": "safetywash.analysis.separability",
    "compare_benchmarks": "safetywash.analysis.designs",
    "compare_structures": "safetywash.analysis.structures",
    "adjusted_scores": "safetywash.analysis.adjusted",
    "score_new_llm": "safetywash.analysis.newllm",
    "score_benchmarks": "safetywash.analysis.newbenchmark",
    "plan_evaluation": "safetywash.analysis.plan",
}

__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        value = getattr(import_module(API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'safetywash' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
