"""Predictions through the model's one likelihood (``safetywash.model.likelihood``), checked
against PyMC on the built model: the log density against ``pm.compute_log_likelihood`` and
the predictive distribution against ``pm.sample_posterior_predictive``.

The fit is the simulated two-factor fit shared with other test modules (an area factor, so
the factor term of the cell mean is exercised too).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from scipy.stats import multivariate_normal

from fit_trees import simulated_fit_tree
from safetywash.analysis.loo import marginal_llm_log_likelihood
from safetywash.analysis.predictive import (
    cell_parameters,
    pointwise_log_likelihood,
    posterior_predictive,
)
from safetywash.inference.fitfile import fit_config, sampler_posterior, study_from_fit
from safetywash.model.build import build_model
from shared_fits import shared_fit

SAMPLE_DIMS = ("chain", "draw")


def _group(obj, name: str):
    """A group of what PyMC returns (a DataTree, or the group's Dataset itself)."""
    if isinstance(obj, xr.DataTree) and name in obj.children:
        return obj[name]
    return obj


@pytest.fixture(scope="module")
def factor_fit(tmp_path_factory):
    _, _, dt = shared_fit(tmp_path_factory, factors=("bias",))
    model = build_model(study_from_fit(dt), fit_config(dt))
    trace = xr.DataTree.from_dict({"posterior": sampler_posterior(dt)})
    return dt, model, trace


def test_log_density_matches_pymc(factor_fit):
    dt, model, trace = factor_fit
    assert "factor_loading" in dt["posterior"]
    with model:
        reference = pm.compute_log_likelihood(trace, extend_inferencedata=False, progressbar=False)
    want = _group(reference, "log_likelihood")["score"]
    got = pointwise_log_likelihood(dt)
    # A log density is a sum of O(1) terms, so where it is near 0 (one cell at 5.7e-7) only
    # its absolute error is meaningful: float64 rounding there is ~1e-16.
    want = want.transpose(*got.dims).values
    np.testing.assert_allclose(got.values, want, rtol=1e-10, atol=1e-14)
    # The fit's stored log-likelihood (float32) is the same.
    stored = dt["log_likelihood"]["score"].transpose(*got.dims).values
    np.testing.assert_allclose(got.values, stored, rtol=1e-5, atol=1e-5)


def test_predictive_distribution_matches_pymc(factor_fit):
    dt, model, trace = factor_fit
    with model:
        ppc = pm.sample_posterior_predictive(trace, random_seed=3, progressbar=False)
    pymc_draws = _group(ppc, "posterior_predictive")["score"].transpose(*SAMPLE_DIMS, "cell").values
    mu, sd = (a.values for a in cell_parameters(dt))
    # PyMC's replicates are the likelihood's mean plus its SD times standard normal noise.
    z = (pymc_draws - mu) / sd
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    # Same mean and SD per cell as this module's own replicates, within Monte-Carlo error.
    ours = posterior_predictive(dt, seed=4).transpose(*SAMPLE_DIMS, "cell").values
    s = pymc_draws.shape[0] * pymc_draws.shape[1]
    a, b = pymc_draws.reshape(s, -1), ours.reshape(s, -1)
    se = np.sqrt((a.var(axis=0) + b.var(axis=0)) / s)
    assert np.abs((a.mean(axis=0) - b.mean(axis=0)) / se).max() < 5
    ratio = a.std(axis=0) / b.std(axis=0)
    assert abs(np.log(ratio).mean()) < 5 / np.sqrt(2 * s * ratio.size)
    assert np.abs(np.log(ratio)).max() < 5 / np.sqrt(s)


def test_cell_parameters_of_unobserved_cells(factor_fit):
    dt, _, _ = factor_fit
    post = dt["posterior"]
    llms, benchmarks = ["llm0001", "llm0003"], ["bias_00", "cap01"]
    mu, sd = cell_parameters(dt, llms, benchmarks)
    assert mu.dims == (*SAMPLE_DIMS, "cell")
    assert list(mu["llm"].values) == llms and list(mu["benchmark"].values) == benchmarks
    bias = (
        post["intercept"].sel(benchmark="bias_00")
        + post["loading"].sel(benchmark="bias_00") * post["capability"].sel(llm="llm0001")
        + post["factor_loading"].sel(factor_benchmark="bias_00")
        * post["area_factor"].sel(llm="llm0001", factor="bias")
    )
    cap = post["intercept"].sel(benchmark="cap01") + post["loading"].sel(benchmark="cap01") * post[
        "capability"
    ].sel(llm="llm0003")
    np.testing.assert_allclose(mu.isel(cell=0).values, bias.values, rtol=1e-12)
    np.testing.assert_allclose(mu.isel(cell=1).values, cap.values, rtol=1e-12)
    np.testing.assert_array_equal(
        sd.isel(cell=1).values, post["residual_sd"].sel(benchmark="cap01").values
    )
    with pytest.raises(KeyError, match="nope"):
        cell_parameters(dt, ["nope"], ["cap01"])
    draws = posterior_predictive(dt, llms, benchmarks, seed=1)
    assert draws.dims == (*SAMPLE_DIMS, "cell") and list(draws["benchmark"].values) == benchmarks
    again = posterior_predictive(dt, llms, benchmarks, seed=1)
    np.testing.assert_array_equal(draws.values, again.values)


@pytest.mark.parametrize("factors", [(), ("bias",)])
def test_marginal_log_likelihood_of_two_populations(factors):
    """Each LLM's scores with its latents integrated out, against the multivariate normal
    with its own population's capability prior (one factor: the model's
    ``marginal_loglik_by_llm``; with an area factor: the conjugate Gaussian algebra)."""
    tree = simulated_fit_tree(16, 3, {"bias": 3, "alignment": 2}, factors=factors, seed=3)
    const = tree["constant_data"].to_dataset()
    labels = np.where(np.arange(const.sizes["llm"]) < 6, "base", "chat")
    tree["constant_data"] = xr.DataTree(const.assign(population_label=("llm", labels)))
    rng = np.random.default_rng(0)
    post = tree["posterior"].to_dataset()
    shape = (post.sizes["chain"], post.sizes["draw"], 2)
    post["population_mean"] = ((*SAMPLE_DIMS, "population"), rng.normal(0, 0.5, shape))
    post["population_log_sd"] = ((*SAMPLE_DIMS, "population"), rng.normal(0, 0.3, shape))
    tree["posterior"] = xr.DataTree(post.assign_coords(population=["base", "chat"]))
    got = marginal_llm_log_likelihood(tree)
    y = tree["observed_data"]["score"].values
    keys = list(const["benchmark"].values)
    for chain, draw, i in ((0, 0, 2), (1, 7, 5), (0, 11, 6), (1, 29, 15)):
        p = post.isel(chain=chain, draw=draw)
        pop = int(labels[i] == "chat")
        mean = float(p["population_mean"][pop])
        var = float(np.exp(p["population_log_sd"][pop])) ** 2
        cells = np.flatnonzero(const["llm_index"].values == i)
        b = const["benchmark_index"].values[cells]
        lam = p["loading"].values[b]
        cov = np.diag(p["residual_sd"].values[b] ** 2) + var * np.outer(lam, lam)
        if factors:
            gamma = np.array(
                [
                    float(p["factor_loading"].sel(factor_benchmark=keys[j]))
                    if keys[j].startswith("bias")
                    else 0.0
                    for j in b
                ]
            )
            cov += np.outer(gamma, gamma)
        expected = multivariate_normal(p["intercept"].values[b] + lam * mean, cov).logpdf(y[cells])
        assert float(got.isel(chain=chain, draw=draw, llm=i)) == pytest.approx(expected)
