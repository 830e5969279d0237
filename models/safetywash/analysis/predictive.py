"""Predictions from a fit through the model's one likelihood (:mod:`safetywash.model.likelihood`).

For any (LLM, benchmark) cells, observed or not, every posterior draw gives the cell's
predictive mean and SD on the model scale (:func:`cell_parameters`, area factors included),
from which come replicated scores (:func:`posterior_predictive`) and pointwise log densities
(:func:`pointwise_log_likelihood`). Map model-scale values to stored units with the fit's
score transform (:func:`safetywash.inference.fitfile.fitted_transform`). No PyMC here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.analysis.intervals import SAMPLE_DIMS
from safetywash.analysis.latent import area_factor_loadings, sample_values
from safetywash.inference.fitfile import cell_index
from safetywash.model.axes import AXIS_DIM
from safetywash.model.likelihood import cell_mean, cell_sd, log_density, predictive_draws


def _positions(index: pd.Index, keys: Sequence[str], what: str) -> np.ndarray:
    idx = index.get_indexer(pd.Index(np.asarray(keys, dtype=str)))
    if (idx < 0).any():
        unknown = sorted({str(k) for k, i in zip(keys, idx, strict=True) if i < 0})
        raise KeyError(f"{what}(s) {unknown} are not in this fit")
    return idx.astype(np.int64)


def _cells(dt: xr.DataTree, post: xr.Dataset, llms, benchmarks) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the requested cells (default: the fit's observed cells)."""
    if llms is None and benchmarks is None:
        return cell_index(dt)
    if llms is None or benchmarks is None or len(llms) != len(benchmarks):
        raise ValueError("give llms and benchmarks of equal length, or neither")
    llm_keys = pd.Index(np.asarray(post["llm"].values, dtype=str))
    bench_keys = pd.Index(np.asarray(post["benchmark"].values, dtype=str))
    return _positions(llm_keys, llms, "LLM"), _positions(bench_keys, benchmarks, "benchmark")


def _factor_terms(dt: xr.DataTree, group: str, bench_idx: np.ndarray) -> dict:
    """Keyword arguments of :func:`cell_mean` for the area factors and further capability
    axes (empty without)."""
    post = dt[group]
    axes = {}
    if "axis_loading" in post.data_vars:
        axes = {
            "axis_loading": sample_values(post["axis_loading"], "benchmark", AXIS_DIM),
            "axis_score": sample_values(post["axis_score"], "llm", AXIS_DIM),
        }
    if "factor_loading" not in post.data_vars:
        return axes
    gamma, factor_of, _ = area_factor_loadings(dt, group=group)
    return {
        **axes,
        "factor_loading": gamma,
        "area_factor": sample_values(post["area_factor"], "llm", "factor"),
        # benchmarks without a factor have loading 0: any factor index will do
        "cell_factor": np.maximum(factor_of, 0)[bench_idx],
    }


def cell_parameters(
    dt: xr.DataTree,
    llms: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    *,
    group: str = "posterior",
) -> tuple[xr.DataArray, xr.DataArray]:
    """Predictive mean and SD of cells on the model scale, per posterior draw.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    llms, benchmarks : sequence of str, optional
        LLM and benchmark key of every cell (equal lengths; pairs need not be observed).
        Default: the fit's observed cells, in order.
    group : str
        Group holding the draws.

    Returns
    -------
    mu, sd : xarray.DataArray
        Dims ``(chain, draw, cell)``, with ``llm`` and ``benchmark`` coordinates on ``cell``.
    """
    post = dt[group].to_dataset()
    llm_idx, bench_idx = _cells(dt, post, llms, benchmarks)
    mu = cell_mean(
        sample_values(post["intercept"], "benchmark"),
        sample_values(post["loading"], "benchmark"),
        sample_values(post["capability"], "llm"),
        llm_idx,
        bench_idx,
        **_factor_terms(dt, group, bench_idx),
    )
    sd = cell_sd(sample_values(post["residual_sd"], "benchmark"), bench_idx)
    coords = {
        "chain": post["chain"].values,
        "draw": post["draw"].values,
        "cell": np.arange(len(llm_idx)),
        "llm": ("cell", np.asarray(post["llm"].values, dtype=str)[llm_idx]),
        "benchmark": ("cell", np.asarray(post["benchmark"].values, dtype=str)[bench_idx]),
    }
    dims = (*SAMPLE_DIMS, "cell")
    return xr.DataArray(mu, dims=dims, coords=coords), xr.DataArray(sd, dims=dims, coords=coords)


def posterior_predictive(
    dt: xr.DataTree,
    llms: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    *,
    seed: int = 0,
    group: str = "posterior",
) -> xr.DataArray:
    """Replicated model-scale scores of cells, one per posterior draw.

    Parameters as :func:`cell_parameters`; ``seed`` seeds the residual noise.

    Returns
    -------
    xarray.DataArray
        ``score`` over ``(chain, draw, cell)``.
    """
    mu, sd = cell_parameters(dt, llms, benchmarks, group=group)
    draws = predictive_draws(mu.values, sd.values, np.random.default_rng(seed))
    return mu.copy(data=draws).rename("score")


def pointwise_log_likelihood(
    dt: xr.DataTree,
    values: np.ndarray | None = None,
    llms: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    *,
    group: str = "posterior",
) -> xr.DataArray:
    """Log density of model-scale values of cells under every posterior draw.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    values : numpy.ndarray, optional
        Model-scale value of every cell; default the fit's ``observed_data.score`` (with
        the default cells: then this is the fit's pointwise log-likelihood).
    llms, benchmarks : sequence of str, optional
        As :func:`cell_parameters`.
    group : str
        Group holding the draws.

    Returns
    -------
    xarray.DataArray
        ``score`` over ``(chain, draw, cell)``.
    """
    mu, sd = cell_parameters(dt, llms, benchmarks, group=group)
    if values is None:
        if llms is not None:
            raise ValueError("give the values of the cells you name")
        values = dt["observed_data"]["score"].values
    values = np.asarray(values, dtype=float)
    if values.shape != (mu.sizes["cell"],):
        raise ValueError(f"values has shape {values.shape}, not ({mu.sizes['cell']},)")
    return mu.copy(data=log_density(values, mu.values, sd.values)).rename("score")
