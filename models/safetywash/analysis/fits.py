"""A saved fit as the analyses read it: open a run folder, and facts of the fitted study.

:func:`open_fit` accepts a run folder or a ``.nc`` file. :func:`benchmark_metadata` and
:func:`llm_metadata` are the fitted study's tables. :func:`excluded_benchmarks` and
:func:`aggregate_of` answer what the fit says about benchmarks it left out: the first from
the fit's attrs, the second from the benchmark catalog the fit's own metadata identifies
(:func:`shipped_catalog_of`), never from the study's name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.data.catalog import load_catalog
from safetywash.data.errors import CatalogError
from safetywash.data.registry import dataset_names
from safetywash.inference.fitfile import load_fit


def open_fit(path: str | Path, **kwargs) -> xr.DataTree:
    """Load a fit from a run folder (its ``posterior.nc``) or a ``.nc`` file.

    Parameters
    ----------
    path : str or pathlib.Path
        A folder written by ``safetywash fit`` or a NetCDF fit file.
    **kwargs
        Passed to :func:`safetywash.inference.fitfile.load_fit`.

    Returns
    -------
    xarray.DataTree
    """
    path = Path(path)
    if path.is_dir():
        path = path / "posterior.nc"
    return load_fit(path, **kwargs)


def shipped_catalog_of(dt: xr.DataTree) -> pd.DataFrame | None:
    """The shipped benchmark catalog that describes every benchmark of the fit.

    A shipped catalog qualifies when it holds every fitted benchmark key with the parent the
    fit stores for it (``constant_data.benchmark_parent``, when present).

    Returns
    -------
    pandas.DataFrame or None
        The catalog (see :func:`safetywash.data.catalog.load_catalog`); None when no shipped
        catalog, or more than one, qualifies.
    """
    const = dt["constant_data"]
    keys = pd.Index(np.asarray(const["benchmark"].values, dtype=str))
    parents = None
    if "benchmark_parent" in const.data_vars:
        parents = np.asarray(const["benchmark_parent"].values, dtype=str)
    matches = []
    for name in dataset_names():
        try:
            catalog = load_catalog(name)
        except CatalogError:  # a registered dataset without a shipped catalog
            continue
        if not keys.isin(catalog.index).all():
            continue
        if parents is not None and not (catalog.loc[keys, "parent"].to_numpy() == parents).all():
            continue
        matches.append(catalog)
    return matches[0] if len(matches) == 1 else None


def aggregate_of(dt: xr.DataTree, key: str) -> str:
    """The aggregate a benchmark is a part of ("" when it is none or nothing says so).

    For a fitted benchmark, the parent the fit stores; for a benchmark the fit left out,
    the parent in the catalog of :func:`shipped_catalog_of` (if one qualifies).
    """
    const = dt["constant_data"]
    fitted = np.asarray(const["benchmark"].values, dtype=str)
    if key in fitted and "benchmark_parent" in const.data_vars:
        return str(const["benchmark_parent"].values[list(fitted).index(key)])
    catalog = shipped_catalog_of(dt)
    if catalog is None or key not in catalog.index:
        return ""
    return str(catalog.loc[key, "parent"])


def benchmark_metadata(dt: xr.DataTree) -> pd.DataFrame:
    """Per-benchmark metadata of a fit (``constant_data`` ``benchmark_*`` variables).

    Returns
    -------
    pandas.DataFrame
        Indexed by benchmark key; columns without the ``benchmark_`` prefix
        (``display_name``, ``role``, ``area``, ``direction``, ...).
    """
    const = dt["constant_data"].to_dataset()
    names = [v for v in const.data_vars if const[v].dims == ("benchmark",)]
    frame = const[names].to_dataframe()
    frame.columns = [c.removeprefix("benchmark_") for c in frame.columns]
    frame.index = frame.index.astype(str)
    return frame


def llm_metadata(dt: xr.DataTree) -> pd.DataFrame:
    """Per-LLM metadata of a fit: ``display_name`` and ``population``, indexed by LLM key."""
    const = dt["constant_data"]
    return pd.DataFrame(
        {
            "display_name": const["llm_name"].values.astype(str),
            "population": const["population_label"].values.astype(str),
        },
        index=pd.Index(const["llm"].values.astype(str), name="llm"),
    )
