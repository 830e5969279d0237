"""Pointwise log-likelihood and PSIS-LOO of one fit, at three levels.

* ``"cell"``: leave one score out (the stored pointwise log-likelihood);
* ``"llm"``: leave one LLM out, summing the stored log-likelihood of an LLM's cells
  before PSIS (the LLM's latent variables stay conditioned on its own scores, so the
  importance ratios are extreme and Pareto k are usually high);
* ``"llm-marginal"``: leave one LLM out with its latent capability (its further capability
  axes with K > 1 capability dimensions, its area factors) integrated out in closed form
  given each draw's benchmark parameters (the model is Gaussian in them; see
  :func:`safetywash.model.marginal.marginal_loglik_by_llm` and
  :mod:`safetywash.analysis.latent`), i.e. ``log p(y_i | benchmarks)``.
  This predicts a new LLM's whole score vector and usually has far better Pareto k.

Fits that differ in their number of capability dimensions are comparable at every level:
each level's log-likelihood is of the same scores under each fit's own model.

Fits with ``capability="marginal"`` store a per-LLM log-likelihood only: with them, only
``"llm-marginal"`` is available.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import xarray as xr

from safetywash.analysis.latent import (
    BenchmarkParameters,
    benchmark_parameters,
    capability_prior,
    gaussian_latent_posterior,
    latent_prior,
)
from safetywash.inference.fitfile import cell_index, llm_table
from safetywash.model.marginal import marginal_loglik_by_llm

#: The LOO levels.
LOO_LEVELS = ("cell", "llm", "llm-marginal")
#: Order of preference between LOO levels with equally many high Pareto k.
LOO_PREFERENCE = ("llm-marginal", "cell", "llm")


def llm_log_likelihood(dt: xr.DataTree, *, var_name: str = "score") -> xr.DataArray:
    """The stored pointwise log-likelihood summed over each LLM's cells.

    Returns
    -------
    xarray.DataArray
        Over ``(chain, draw, llm)`` (cells mapped to LLMs by ``constant_data.llm_index``).
    """
    ll = dt["log_likelihood"][var_name].astype("float64")
    llms = llm_table(dt).index.to_numpy()
    idx, _ = cell_index(dt)
    onehot = np.zeros((len(idx), len(llms)))
    onehot[np.arange(len(idx)), idx] = 1.0
    summed = xr.dot(ll, xr.DataArray(onehot, dims=("cell", "llm")), dim="cell")
    return summed.assign_coords(llm=llms).transpose("chain", "draw", "llm").rename(var_name)


def marginal_llm_log_likelihood(
    dt: xr.DataTree, *, group: str = "posterior", var_name: str = "score"
) -> xr.DataArray:
    """Per-draw ``log p(y_i | benchmark parameters)`` with each LLM's latents integrated out.

    For each draw and LLM ``i`` the scores ``y_i`` are jointly Gaussian once capability
    (prior: its population's distribution, :func:`safetywash.analysis.latent.capability_prior`),
    the further capability axes of a fit with K > 1 capability dimensions and area factors
    (prior ``Normal(0, 1)`` each) are integrated out. Without area factors this is the
    model's own marginal likelihood (:func:`safetywash.model.marginal.marginal_loglik_by_llm`,
    axes included: the log-likelihood a ``capability="marginal"`` fit stores); with them, see
    :func:`safetywash.analysis.latent.gaussian_latent_posterior`.

    Returns
    -------
    xarray.DataArray
        Over ``(chain, draw, llm)``.
    """
    params = benchmark_parameters(dt, group=group)
    llms = llm_table(dt)
    y = np.asarray(dt["observed_data"][var_name].values, dtype=float)
    populations = sorted(set(llms["population"]))
    priors = [capability_prior(dt, p, group=group) for p in populations]
    population_idx = np.array([populations.index(p) for p in llms["population"]])
    if params.factors:
        out = _with_area_factors(params, y, cell_index(dt), population_idx, priors)
    else:
        out = marginal_loglik_by_llm(
            y,
            *cell_index(dt),
            population_idx,
            params.intercept,
            params.loading,
            params.residual_sd,
            np.stack([mean for mean, _ in priors], axis=-1),
            np.stack([sd for _, sd in priors], axis=-1),
            axis_loading=params.axis_loading,
        )
    return xr.DataArray(
        out.reshape(params.chains, params.draws, len(llms)),
        dims=("chain", "draw", "llm"),
        coords={
            "chain": dt[group]["chain"].values,
            "draw": dt[group]["draw"].values,
            "llm": llms.index.to_numpy(),
        },
        name=var_name,
    )


def _with_area_factors(
    params: BenchmarkParameters,
    y: np.ndarray,
    cells: tuple[np.ndarray, np.ndarray],
    population_idx: np.ndarray,
    priors: list[tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """``log p(y_i)`` of every LLM with capability and area factors integrated out,
    one conjugate Gaussian problem per LLM, shape ``(n_samples, n_llms)``."""
    llm_idx, bench_idx = cells
    latent_priors = [latent_prior(params, mean, sd) for mean, sd in priors]
    out = np.empty((params.intercept.shape[0], len(population_idx)))
    for i, p in enumerate(population_idx):
        mine = np.flatnonzero(llm_idx == i)
        b = bench_idx[mine]
        _, _, out[:, i] = gaussian_latent_posterior(
            y[mine],
            params.intercept[:, b],
            params.design(b),
            params.residual_sd[:, b],
            *latent_priors[p],
        )
    return out


def relative_efficiency(dt: xr.DataTree, *, group: str = "posterior") -> float:
    """Mean relative ESS of the posterior, as :func:`arviz.loo` computes it by default."""
    post = dt[group].to_dataset()
    n = post.sizes["chain"] * post.sizes["draw"]
    if post.sizes["chain"] == 1:
        return 1.0
    ess = az.ess(post, method="mean")
    values = np.hstack([np.asarray(ess[v].values).ravel() for v in ess.data_vars])
    return float(np.nanmean(values) / n)


def available_loo_methods(dt: xr.DataTree) -> list[str]:
    """LOO levels a fit supports, in :data:`LOO_PREFERENCE` order.

    A fit with ``capability="marginal"`` stores a per-LLM log-likelihood with capability
    already integrated out, so only ``llm-marginal`` applies to it.
    """
    if "llm" in dt["log_likelihood"]["score"].dims:
        return ["llm-marginal"]
    return list(LOO_PREFERENCE)


def pointwise_log_likelihood(dt: xr.DataTree, method: str) -> xr.DataArray:
    """The log-likelihood PSIS-LOO uses at one level (``cell``, ``llm``, ``llm-marginal``)."""
    if method in ("cell", "llm") and method not in available_loo_methods(dt):
        raise ValueError(
            f"LOO level {method!r} needs the per-score log-likelihood, but this fit integrates "
            "capability out (capability='marginal') and stores it per LLM: use 'llm-marginal'"
        )
    if method == "cell":
        return dt["log_likelihood"]["score"].astype("float64")
    if method == "llm":
        return llm_log_likelihood(dt)
    if method == "llm-marginal":
        return marginal_llm_log_likelihood(dt)
    raise ValueError(f"LOO level must be one of {LOO_LEVELS}, not {method!r}")


def loo_of(dt: xr.DataTree, method: str = "cell", *, reff: float | None = None):
    """PSIS-LOO of a fit at one level (pointwise results kept).

    Parameters
    ----------
    dt : xarray.DataTree
        A fit with ``posterior``, ``log_likelihood``, ``observed_data``, ``constant_data``.
    method : {"cell", "llm", "llm-marginal"}
        What is left out: one score, or one LLM (summed or integrated log-likelihood).
    reff : float, optional
        Relative efficiency (default: :func:`relative_efficiency`).

    Returns
    -------
    arviz_stats.ELPDData
        With ``elpd``, ``se``, ``p``, ``elpd_i``, ``pareto_k`` and ``good_k``.
    """
    ll = pointwise_log_likelihood(dt, method)
    reff = relative_efficiency(dt) if reff is None else reff
    tree = xr.DataTree.from_dict(
        {
            "posterior": dt["posterior"].to_dataset()[["loading"]],
            "log_likelihood": xr.Dataset({"score": ll}),
        }
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Pareto.*")
        return az.loo(tree, pointwise=True, reff=reff)
