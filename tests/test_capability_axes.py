"""More than one capability dimension: identification, orientation, rho and R, predictions.

The fitted tests use a study simulated from known parameters (two capability dimensions:
a general factor with positive capability loadings and one further axis orthogonal to it
over the capability benchmarks, ``tests/axes_study.py``) and check recovery, chain agreement
of every factor, the marginal path against the sampled one, and predictions against a hand
computation.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from axes_study import N_CAP, axes_study
from safetywash.analysis.intervals import SAMPLE_DIMS, interval_bounds
from safetywash.analysis.predictive import cell_parameters
from safetywash.analysis.separability import separability
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.axes import AXIS_DIM, orient_axes
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.likelihood import capability_correlation, subspace_correlation


def test_orient_axes_undoes_any_rotation_or_reflection():
    rng = np.random.default_rng(0)
    loading, score = rng.normal(size=(9, 2)), rng.normal(size=(30, 2))
    rows = np.arange(6)
    for seed in range(5):
        turn = ortho_group.rvs(2, random_state=seed)  # rotations and reflections alike
        turned, scores = orient_axes(
            (loading @ turn)[None], (score @ turn)[None], loading[rows], rows
        )
        np.testing.assert_allclose(turned[0], loading, atol=1e-10)
        np.testing.assert_allclose(scores[0], score, atol=1e-10)


def test_subspace_r_is_the_multiple_correlation_with_the_factors():
    rng = np.random.default_rng(1)
    loading, axes, sigma = 0.6, np.array([0.5, -0.3]), 0.7
    factors = rng.standard_normal((200_000, 3))
    y = factors @ np.r_[loading, axes] + sigma * rng.standard_normal(len(factors))
    fitted = factors @ np.linalg.lstsq(factors, y, rcond=None)[0]
    r = subspace_correlation(np.array(loading), np.array(sigma), axis_loading=axes[None, :])
    rho = capability_correlation(np.array(loading), np.array(sigma), axis_loading=axes[None, :])
    assert r == pytest.approx(np.corrcoef(fitted, y)[0, 1], abs=0.005)
    assert rho == pytest.approx(np.corrcoef(factors[:, 0], y)[0, 1], abs=0.005)


@pytest.mark.parametrize("dims", [0, 4, 1.5, True])
def test_capability_dims_out_of_range_is_refused(dims):
    with pytest.raises(ValueError, match="capability_dims"):
        ModelConfig(capability_dims=dims)


def test_capability_dims_with_area_factors_is_refused():
    with pytest.raises(ValueError, match="area factors"):
        ModelConfig(capability_dims=2, factors=("bias",))


def test_too_few_capability_benchmarks_for_the_dimensions_is_refused():
    study, _ = _simulated_study(n_cap=4)
    with pytest.raises(ValueError, match=r"at least 5 capability benchmarks; .* has 4"):
        prepare_data(study, ModelConfig(capability_dims=2))
    assert prepare_data(study, ModelConfig()).capability_dims == 1


def _simulated_study(n_cap: int = N_CAP, seed: int = 3):
    """The shared two-dimension study (:func:`axes_study.axes_study`) and its truth's rho,
    R and axis loadings."""
    study, truth = axes_study(n_cap, seed)
    general, axis, sigma = (truth[k].to_numpy() for k in ("general", "axis", "sigma"))
    truth["rho"] = capability_correlation(general, sigma, axis_loading=axis[:, None])
    truth["r"] = subspace_correlation(general, sigma, axis_loading=axis[:, None])
    return study, truth


@pytest.fixture(scope="module")
def two_dims():
    study, truth = _simulated_study()
    settings = SamplerSettings(draws=400, tune=600, chains=4, seed=11)
    sampled = fit(study, ModelConfig(capability_dims=2), settings, progressbar=False)
    marginal = fit(
        study,
        ModelConfig(capability_dims=2, capability="marginal"),
        settings,
        progressbar=False,
    )
    return study, truth, sampled, marginal


def test_two_dimensions_recover_rho_and_subspace_r(two_dims):
    _, truth, dt, _ = two_dims
    post = dt["posterior"]
    for name, var in (("rho", "rho"), ("r", "subspace_r")):
        low, high = interval_bounds(post[var], ci_prob=0.9, ci_kind="eti")
        inside = (low.values <= truth[name].values) & (truth[name].values <= high.values)
        assert inside.mean() >= 0.75, (name, inside)
    summary = separability(dt)
    gap = summary["subspace_r_median"] - np.abs(summary["rho_median"])
    # The benchmarks with the largest true axis loadings gain most from the subspace.
    strong = truth["axis"].abs().sort_values().index[-4:]
    weak = truth["axis"].abs().sort_values().index[:4]
    assert float(gap.sel(benchmark=strong).mean()) > float(gap.sel(benchmark=weak).mean()) + 0.05


def test_every_factor_agrees_between_chains_and_with_the_truth(two_dims):
    _, truth, dt, _ = two_dims
    post = dt["posterior"]
    diagnostics = dt.attrs["diagnostics"]
    assert '"divergences": 0' in diagnostics
    axis = post["axis_loading"].sel({AXIS_DIM: "axis_2"})
    per_chain = axis.mean("draw").values  # chain x benchmark
    for chain in per_chain:
        # same sign and order as the truth in every chain: no reflected or swapped axis
        assert np.corrcoef(chain, truth["axis"].values)[0, 1] > 0.9
    general = post["loading"].mean("draw").values
    for chain in general:
        assert np.corrcoef(chain, general.mean(axis=0))[0, 1] > 0.98
    score = post["axis_score"].sel({AXIS_DIM: "axis_2"}).mean("draw").values
    assert min(np.corrcoef(score)[0]) > 0.95


def test_marginal_path_agrees_with_the_sampled_one(two_dims):
    _, _, sampled, marginal = two_dims
    for var in ("rho", "subspace_r"):
        a = sampled["posterior"][var].median(SAMPLE_DIMS).values
        b = marginal["posterior"][var].median(SAMPLE_DIMS).values
        np.testing.assert_allclose(a, b, atol=0.05)
    axis = marginal["posterior"]["axis_score"].sel({AXIS_DIM: "axis_2"})
    reference = sampled["posterior"]["axis_score"].sel({AXIS_DIM: "axis_2"})
    assert np.corrcoef(axis.mean(SAMPLE_DIMS), reference.mean(SAMPLE_DIMS))[0, 1] > 0.9


def test_predictions_carry_the_axes(two_dims):
    _, _, dt, _ = two_dims
    post = dt["posterior"].isel(chain=[0], draw=slice(0, 5))
    llms, benchmarks = ["llm03", "llm07"], ["safe2", "cap1"]
    mu, _ = cell_parameters(dt, llms, benchmarks)
    mu = mu.isel(chain=[0], draw=slice(0, 5))
    for c, (m, b) in enumerate(zip(llms, benchmarks, strict=True)):
        expected = (
            post["intercept"].sel(benchmark=b)
            + post["loading"].sel(benchmark=b) * post["capability"].sel(llm=m)
            + (post["axis_loading"].sel(benchmark=b) * post["axis_score"].sel(llm=m)).sum(AXIS_DIM)
        )
        np.testing.assert_allclose(mu.isel(cell=c).values, expected.values, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("capability", ["sampled", "marginal"])
def test_eight_seeds_agree_on_every_factor_and_cover_the_truth(capability):
    """Eight sampler seeds on one simulated study: every chain of every seed reports the
    axis with the truth's orientation (no reflected or swapped axis), and the 90% intervals
    of rho and R cover the truth at about their rate, pooled over the seeds."""
    study, truth = _simulated_study()
    config = ModelConfig(capability_dims=2, capability=capability)
    covered = []
    for seed in range(8):
        dt = fit(study, config, SamplerSettings(seed=seed), progressbar=False)
        axis = dt["posterior"]["axis_loading"].sel({AXIS_DIM: "axis_2"}).mean("draw").values
        assert min(np.corrcoef(c, truth["axis"].values)[0, 1] for c in axis) > 0.9, seed
        for name, var in (("rho", "rho"), ("r", "subspace_r")):
            low, high = interval_bounds(dt["posterior"][var], ci_prob=0.9, ci_kind="eti")
            covered += list(
                (low.values <= truth[name].values) & (truth[name].values <= high.values)
            )
    assert 0.75 <= np.mean(covered) <= 0.99
