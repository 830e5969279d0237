"""The fit file: a fit's attributes, its ``constant_data``, saving, loading and verification.

A fit is an ArviZ DataTree whose root attrs describe how it was made (:class:`FitInfo`) and
whose ``constant_data`` holds the fitted study and its score transform. This module writes
and reads both, so modules that read saved fits never import PyMC (nor does this one).

``constant_data``: per cell ``llm_index``, ``benchmark_index``, ``raw_value``,
``transformed_value`` (model scale); per LLM ``llm_name``, ``population_label``, ``family``,
``params``, ``flop``; per benchmark the catalog columns as ``benchmark_<column>`` and the
score transform (:data:`safetywash.model.transform.TRANSFORM_VARIABLES`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from safetywash import __version__
from safetywash.data.catalog import CATALOG_COLUMNS
from safetywash.data.files import atomic_write
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.diagnostics import Diagnostics
from safetywash.inference.netcdf import read_tree, write_netcdf
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.data import ModelData
from safetywash.model.transform import ScoreTransform

#: Root attr: the capability mode a fit used, ``"sampled"`` or ``"marginal"``.
CAPABILITY_MODE_ATTR = "capability_mode"
REQUIRED_ATTRS = ("safetywash_version", "model_config", "study_sha256", "seed")
#: Raised when a saved config or variable changes meaning (2: Gamma loading spreads,
#: pooled area means; 3: residual = measurement noise + specific); no attr: format 1.
FIT_FORMAT = 3
#: Group of the sampler-space draws kept out of ``posterior``.
UNCONSTRAINED_GROUP = "unconstrained_posterior"
#: ``constant_data`` name of every LLM column of a study.
LLM_VARIABLES = {
    "display_name": "llm_name",
    "population": "population_label",
    "family": "family",
    "params": "params",
    "flop": "flop",
}
BENCHMARK_COLUMNS = CATALOG_COLUMNS[1:]
#: Columns stored as numbers (the others as text).
NUMBER_COLUMNS = ("params", "flop", "lower", "upper", "chance", "n_items")


class FitMismatchError(ValueError):
    """A saved fit does not match the study, config or package version asked for."""


@dataclass(frozen=True)
class FitInfo:
    """What a fit's root attrs record.

    Attributes
    ----------
    model_config : ModelConfig
    sampler_settings : SamplerSettings
    study_sha256, study_name : str
        Fingerprint and name of the input study.
    seed : int
        The sampler's seed.
    version : str
        safetywash version that made the fit.
    timings : dict of str -> float
        Seconds spent compiling, sampling and post-processing.
    diagnostics : Diagnostics or None
    excluded_benchmarks : tuple of str
        Source columns the fitted study left out.
    capability_mode : str
        How the fit treated capability (``model_config`` may say ``"auto"``).
    """

    model_config: ModelConfig
    sampler_settings: SamplerSettings
    study_sha256: str
    study_name: str
    seed: int
    version: str = __version__
    timings: dict[str, float] = field(default_factory=dict)
    diagnostics: Diagnostics | None = None
    excluded_benchmarks: tuple[str, ...] = ()
    capability_mode: str = ""

    def to_attrs(self) -> dict:
        """The root attrs of a fit (JSON strings for structured values)."""
        settings = dataclasses.asdict(self.sampler_settings)
        attrs = {
            "safetywash_version": self.version,
            "fit_format": FIT_FORMAT,
            "model_config": self.model_config.to_json(),
            "sampler_settings": json.dumps(settings, sort_keys=True),
            "study_sha256": self.study_sha256,
            "study_name": self.study_name,
            "seed": int(self.seed),
            "timings": json.dumps(self.timings),
            "excluded_benchmarks": json.dumps(list(self.excluded_benchmarks)),
        }
        if self.diagnostics is not None:
            attrs["diagnostics"] = json.dumps(self.diagnostics.to_dict())
        if self.capability_mode:
            attrs[CAPABILITY_MODE_ATTR] = self.capability_mode
        return attrs

    @classmethod
    def from_attrs(cls, attrs) -> FitInfo:
        """Inverse of :meth:`to_attrs` (``diagnostics`` None when not recorded)."""
        missing = [a for a in REQUIRED_ATTRS if a not in attrs]
        if missing:
            raise FitMismatchError(f"not a safetywash fit: attrs {missing} are missing")
        diagnostics = decode_diagnostics(attrs["diagnostics"]) if "diagnostics" in attrs else None
        settings = json.loads(attrs.get("sampler_settings", "{}"))
        names = {f.name for f in dataclasses.fields(SamplerSettings)}
        config = ModelConfig.from_json(attrs["model_config"])
        return cls(
            model_config=config,
            sampler_settings=SamplerSettings(**{k: v for k, v in settings.items() if k in names}),
            study_sha256=str(attrs["study_sha256"]),
            study_name=str(attrs.get("study_name", "fitted")),
            seed=int(attrs["seed"]),
            version=str(attrs["safetywash_version"]),
            timings=json.loads(attrs.get("timings", "{}")),
            diagnostics=diagnostics,
            excluded_benchmarks=tuple(json.loads(attrs.get("excluded_benchmarks", "[]"))),
            capability_mode=str(attrs.get(CAPABILITY_MODE_ATTR, config.capability)),
        )


def fit_info(dt: xr.DataTree) -> FitInfo:
    """Everything a fit's attrs record, decoded."""
    return FitInfo.from_attrs(dt.attrs)


def fit_config(dt: xr.DataTree) -> ModelConfig:
    """The model config stored in a fit."""
    return ModelConfig.from_json(dt.attrs["model_config"])


def decode_diagnostics(text: str) -> Diagnostics:
    """A :class:`Diagnostics` from its JSON form in a fit's attrs."""
    values = json.loads(text)
    names = {f.name for f in dataclasses.fields(Diagnostics)}
    return Diagnostics(**{k: v for k, v in values.items() if k in names})


def diagnostics_of(dt: xr.DataTree) -> Diagnostics:
    """The convergence diagnostics stored in a fit's attrs."""
    return decode_diagnostics(dt.attrs["diagnostics"])


def fit_sampler_settings(dt: xr.DataTree, **overrides) -> SamplerSettings:
    """A fit's sampler settings with the fields in ``overrides`` replaced (``None``
    values are ignored)."""
    stored = json.loads(dt.attrs.get("sampler_settings", "{}"))
    names = {f.name for f in dataclasses.fields(SamplerSettings)}
    settings = SamplerSettings(**{k: v for k, v in stored.items() if k in names})
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - names
    if unknown:
        raise ValueError(f"unknown sampler setting(s) {sorted(unknown)}")
    return dataclasses.replace(settings, **changes)


def excluded_benchmarks(dt: xr.DataTree) -> tuple[str, ...]:
    """Source columns the fitted study left out (parts of aggregates, catalog exclusions)."""
    return tuple(json.loads(dt.attrs.get("excluded_benchmarks", "[]")))


# =========================================================================== constant_data


def constant_data(data: ModelData) -> xr.Dataset:
    """The study as fitted and its score transform: the fit's ``constant_data`` group."""
    study = data.study
    llms = study.llms
    ds = xr.Dataset(
        {
            "llm_index": ("cell", data.llm_idx),
            "benchmark_index": ("cell", data.benchmark_idx),
            "raw_value": ("cell", study.scores["value"].to_numpy(dtype=float)),
            "transformed_value": ("cell", data.y),
        },
        coords={
            "cell": np.arange(len(data.y)),
            "llm": np.asarray(llms.index, dtype=str),
            "benchmark": np.asarray(study.benchmarks.index, dtype=str),
        },
    )
    for column, name in LLM_VARIABLES.items():
        ds[name] = ("llm", llms[column].to_numpy(dtype=_dtype(column)))
    ds = ds.merge(data.transform.to_dataset())
    for column in BENCHMARK_COLUMNS:
        if f"benchmark_{column}" not in ds:
            values = study.benchmarks[column].to_numpy(dtype=_dtype(column))
            ds[f"benchmark_{column}"] = ("benchmark", values)
    return ds


def _dtype(column: str) -> type:
    return float if column in NUMBER_COLUMNS else str


def cell_coords(data: ModelData) -> dict[str, tuple]:
    """Non-index ``llm`` and ``benchmark`` coordinates of the ``cell`` dimension."""
    llms = np.asarray(data.study.llms.index, dtype=str)
    benchmarks = np.asarray(data.study.benchmarks.index, dtype=str)
    return {
        "cell": np.arange(len(data.y)),
        "llm": ("cell", llms[data.llm_idx]),
        "benchmark": ("cell", benchmarks[data.benchmark_idx]),
    }


def observed_data(data: ModelData) -> xr.Dataset:
    """The fit's ``observed_data`` group: model-scale ``score`` per cell."""
    return xr.Dataset({"score": ("cell", data.y)}, coords=cell_coords(data))


def fitted_transform(dt: xr.DataTree) -> ScoreTransform:
    """The score transform a fit was made with (from ``constant_data``)."""
    return ScoreTransform.from_dataset(dt["constant_data"].to_dataset())


def benchmark_table(dt: xr.DataTree) -> pd.DataFrame:
    """Catalog metadata of every fitted benchmark, indexed by key (fit order).

    Columns :data:`safetywash.data.catalog.CATALOG_COLUMNS` without ``key``; text columns
    as ``str``, bounds and chance as ``float``.
    """
    const = dt["constant_data"]
    keys = np.asarray(const["benchmark"].values, dtype=str)
    frame = pd.DataFrame(index=pd.Index(keys, name="benchmark"))
    for column in BENCHMARK_COLUMNS:
        frame[column] = np.asarray(const[f"benchmark_{column}"].values, dtype=_dtype(column))
    return frame


def llm_table(dt: xr.DataTree) -> pd.DataFrame:
    """Metadata of every fitted LLM (``display_name``, ``population``, ``family``,
    ``params``, ``flop``), indexed by LLM key (fit order)."""
    const = dt["constant_data"]
    frame = pd.DataFrame(index=pd.Index(np.asarray(const["llm"].values, dtype=str), name="llm"))
    for column, name in LLM_VARIABLES.items():
        frame[column] = np.asarray(const[name].values, dtype=_dtype(column))
    return frame


def cell_index(dt: xr.DataTree) -> tuple[np.ndarray, np.ndarray]:
    """Integer LLM and benchmark position of every observed cell (``llm_idx, benchmark_idx``),
    into the order of :func:`llm_table` and :func:`benchmark_table`."""
    const = dt["constant_data"]
    return (
        np.asarray(const["llm_index"].values, dtype=np.int64),
        np.asarray(const["benchmark_index"].values, dtype=np.int64),
    )


def sampler_posterior(dt: xr.DataTree) -> xr.Dataset:
    """``posterior`` together with the sampler-space draws kept beside it: every variable a
    rebuilt model needs (e.g. for ``pm.sample_posterior_predictive``)."""
    post = dt["posterior"].to_dataset()
    if UNCONSTRAINED_GROUP in dt.children:
        post = post.merge(dt[UNCONSTRAINED_GROUP].to_dataset())
    return post


def study_from_fit(dt: xr.DataTree) -> BenchmarkStudy:
    """Rebuild the study a fit was made from (at the fitted level) from ``constant_data``.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit from :func:`safetywash.inference.sampling.fit` or :func:`load_fit`.

    Returns
    -------
    BenchmarkStudy
        Same LLMs, benchmarks, metadata and raw scores as the fitted study.
    """
    llms, benchmarks = llm_table(dt), benchmark_table(dt)
    llm_idx, bench_idx = cell_index(dt)
    scores = pd.DataFrame(
        {
            "llm": llms.index.to_numpy()[llm_idx],
            "benchmark": benchmarks.index.to_numpy()[bench_idx],
            "value": dt["constant_data"]["raw_value"].values,
        }
    )
    return BenchmarkStudy.from_frames(
        scores,
        llms,
        benchmarks.rename_axis("key").reset_index(),
        name=str(dt.attrs.get("study_name", "fitted")),
        excluded=excluded_benchmarks(dt),
    )


# =========================================================================== files


def save_fit(dt: xr.DataTree, path: str | Path) -> Path:
    """Write a fit to NetCDF atomically (a temp file in the same folder, then rename).

    Every numeric array is compressed and carries an HDF5 checksum
    (:mod:`safetywash.inference.netcdf`), which :func:`load_fit` verifies.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit from :func:`safetywash.inference.sampling.fit`.
    path : str or pathlib.Path
        Target ``.nc`` file; its folder is created.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    missing = [a for a in REQUIRED_ATTRS if a not in dt.attrs]
    if missing:
        raise ValueError(f"not a safetywash fit: attrs {missing} are missing")
    return atomic_write(path, lambda tmp: write_netcdf(dt, tmp))


def load_fit(
    path: str | Path,
    *,
    study: BenchmarkStudy | None = None,
    config: ModelConfig | None = None,
    check_version: bool = True,
) -> xr.DataTree:
    """Open a saved fit, refusing one that does not match what is asked for.

    Parameters
    ----------
    path : str or pathlib.Path
        A file written by :func:`save_fit`.
    study : BenchmarkStudy, optional
        If given, its sha256 must equal the one the fit was made from.
    config : ModelConfig, optional
        If given, must equal the fit's model config.
    check_version : bool
        Refuse a fit written by another safetywash version.

    Returns
    -------
    xarray.DataTree
        Loaded into memory (the file is closed; every checksum verified).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    safetywash.inference.netcdf.FitFileError
        The file is not HDF5, is truncated or its data is damaged (a checksum fails).
    FitMismatchError
        The file is not a safetywash fit, or not the one asked for.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no fit at {path}")
    dt = read_tree(path)
    missing = [a for a in REQUIRED_ATTRS if a not in dt.attrs]
    if missing:
        raise FitMismatchError(f"{path} is not a safetywash fit (attrs {missing} missing)")
    saved_format = int(dt.attrs.get("fit_format", 1))
    if saved_format != FIT_FORMAT:
        raise FitMismatchError(
            f"{path} is a format-{saved_format} fit; this safetywash ({__version__}) reads "
            f"format {FIT_FORMAT} (the model or its saved variables changed meaning); refit it"
        )
    if check_version and dt.attrs["safetywash_version"] != __version__:
        raise FitMismatchError(
            f"{path} was written by safetywash {dt.attrs['safetywash_version']}, this is "
            f"{__version__}; refit, or pass check_version=False to read it anyway"
        )
    if study is not None and dt.attrs["study_sha256"] != study.sha256():
        raise FitMismatchError(
            f"{path} was fitted to another study (sha256 {dt.attrs['study_sha256'][:12]}..., "
            f"given study {study.name!r} has {study.sha256()[:12]}...)"
        )
    if config is not None:
        saved = fit_config(dt)
        if saved != config:
            raise FitMismatchError(
                f"{path} was fitted with config {saved.to_json()}, not {config.to_json()}"
            )
    return dt
