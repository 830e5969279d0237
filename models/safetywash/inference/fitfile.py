"""Saving and loading fits as self-describing NetCDF files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import xarray as xr

from safetywash import __version__
from safetywash.data.study import BenchmarkStudy
from safetywash.model.build import ModelConfig

REQUIRED_ATTRS = ("safetywash_version", "model_config", "study_sha256", "seed")


class FitMismatchError(ValueError):
    """A saved fit does not match the study, config or package version asked for."""


def save_fit(dt: xr.DataTree, path: str | Path) -> Path:
    """Write a fit to NetCDF atomically (a temp file in the same folder, then rename).

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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    try:
        dt.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
        Loaded into memory (the file is closed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no fit at {path}")
    with xr.open_datatree(path, engine="h5netcdf") as opened:
        dt = opened.load()
    missing = [a for a in REQUIRED_ATTRS if a not in dt.attrs]
    if missing:
        raise FitMismatchError(f"{path} is not a safetywash fit (attrs {missing} missing)")
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
        saved = ModelConfig.from_json(dt.attrs["model_config"])
        if saved != config:
            raise FitMismatchError(
                f"{path} was fitted with config {saved.to_json()}, not {config.to_json()}"
            )
    return dt


def fit_config(dt: xr.DataTree) -> ModelConfig:
    """The model config stored in a fit."""
    return ModelConfig.from_json(dt.attrs["model_config"])


def fit_attr_json(dt: xr.DataTree, name: str):
    """A JSON attribute of a fit, decoded."""
    return json.loads(dt.attrs[name])


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
    import numpy as np
    import pandas as pd

    const = dt["constant_data"].to_dataset()
    llms = np.asarray(const["llm"].values, dtype=str)
    benchmarks = np.asarray(const["benchmark"].values, dtype=str)
    scores = pd.DataFrame(
        {
            "llm": llms[const["llm_index"].values],
            "benchmark": benchmarks[const["benchmark_index"].values],
            "value": const["raw_value"].values,
        }
    )
    llm_table = pd.DataFrame(
        {
            "display_name": const["llm_name"].values.astype(str),
            "population": const["population_label"].values.astype(str),
            "family": const["family"].values.astype(str),
            "params": const["params"].values,
            "flop": const["flop"].values,
        },
        index=pd.Index(llms, name="llm"),
    )
    catalog = pd.DataFrame({"key": benchmarks})
    for col in ("display_name", "role", "area", "direction", "scale", "parent", "note"):
        catalog[col] = const[f"benchmark_{col}"].values.astype(str)
    for col in ("lower", "upper", "chance"):
        catalog[col] = const[f"benchmark_{col}"].values.astype(float)
    return BenchmarkStudy.from_frames(
        scores,
        llm_table,
        catalog,
        name=str(dt.attrs.get("study_name", "fitted")),
        excluded=tuple(json.loads(dt.attrs.get("excluded_benchmarks", "[]"))),
    )
