"""A saved fit as the analyses read it: open a run folder, and facts of the fitted study.

:func:`open_fit` accepts a run folder or a ``.nc`` file. :func:`aggregate_of` answers
what the fit says about the aggregate of a benchmark, fitted or left out: from the fit's
own metadata (:func:`safetywash.inference.fitfile.benchmark_table`), else from the
benchmark catalog that metadata identifies (:func:`shipped_catalog_of`), never from the
study's name.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import xarray as xr

from safetywash.data.catalog import load_catalog
from safetywash.data.errors import CatalogError
from safetywash.data.registry import dataset_names
from safetywash.inference.fitfile import benchmark_table, load_fit


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
    fit stores for it (:func:`safetywash.inference.fitfile.benchmark_table`).

    Returns
    -------
    pandas.DataFrame or None
        The catalog (see :func:`safetywash.data.catalog.load_catalog`); None when no shipped
        catalog, or more than one, qualifies.
    """
    fitted = benchmark_table(dt)
    keys, parents = fitted.index, fitted["parent"].to_numpy()
    matches = []
    for name in dataset_names():
        try:
            catalog = load_catalog(name)
        except CatalogError:  # a registered dataset without a shipped catalog
            continue
        if not keys.isin(catalog.index).all():
            continue
        if not (catalog.loc[keys, "parent"].to_numpy() == parents).all():
            continue
        matches.append(catalog)
    return matches[0] if len(matches) == 1 else None


def aggregate_of(dt: xr.DataTree, key: str) -> str:
    """The aggregate a benchmark is a part of ("" when it is none or nothing says so).

    For a fitted benchmark, the parent the fit stores; for a benchmark the fit left out,
    the parent in the catalog of :func:`shipped_catalog_of` (if one qualifies).
    """
    fitted = benchmark_table(dt)
    if key in fitted.index:
        return str(fitted.loc[key, "parent"])
    catalog = shipped_catalog_of(dt)
    if catalog is None or key not in catalog.index:
        return ""
    return str(catalog.loc[key, "parent"])
