"""The model builder and its pieces, without sampling (fast)."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from scipy import stats

from safetywash.model.build import (
    ModelConfig,
    build_model,
    capability_conditional,
    initial_point,
    marginal_loglik_by_llm,
    prepare_data,
    zero_sum_by_group,
    zero_sum_by_group_inverse,
)
from safetywash.model.simulate import simulate


@pytest.fixture(scope="module")
def small():
    return simulate(30, 4, {"bias": 3, "calibration": 3}, missing=0.3, seed=2)


def test_config_rejects_bad_choices():
    with pytest.raises(ValueError, match="transform"):
        ModelConfig(transform="log")
    with pytest.raises(ValueError, match="marginal"):
        ModelConfig(capability="marginal", factors=("bias",))
    with pytest.raises(ValueError, match="prior_scale"):
        ModelConfig(prior_scale=0)
    config = ModelConfig(factors=["bias"], prior_scale=2.0)
    assert ModelConfig.from_json(config.to_json()) == config


def test_zero_sum_map_is_orthonormal_and_invertible():
    groups = np.array([0, 1, 0, 2, 1, 2, 2, 0, 1, 0])
    rng = np.random.default_rng(0)
    w = rng.normal(size=len(groups) - 3)
    z = zero_sum_by_group(w, groups, 3)
    for g in range(3):
        assert abs(z[groups == g].sum()) < 1e-12
    np.testing.assert_allclose(zero_sum_by_group_inverse(z, groups, 3), w)
    jac = np.array([zero_sum_by_group(e, groups, 3) for e in np.eye(len(w))]).T
    np.testing.assert_allclose(jac.T @ jac, np.eye(len(w)), atol=1e-12)
    tensor = pt.vector("w")
    np.testing.assert_allclose(zero_sum_by_group(tensor, groups, 3, xp=pt).eval({tensor: w}), z)


def test_marginal_loglik_equals_multivariate_normal():
    rng = np.random.default_rng(1)
    n_llms, n_bench = 6, 5
    llm = np.repeat(np.arange(n_llms), n_bench)
    bench = np.tile(np.arange(n_bench), n_llms)
    keep = rng.random(len(llm)) > 0.3
    keep[::n_bench] = True  # every LLM keeps a score
    llm, bench = llm[keep], bench[keep]
    pops = np.array([0, 1, 0, 1, 0, 1])
    y = rng.normal(size=len(llm))
    a, lam = rng.normal(size=n_bench), rng.normal(size=n_bench)
    sig = np.exp(rng.normal(size=n_bench) * 0.3)
    mean, sd = np.array([0.4, -0.4]), np.array([1.3, 0.7])
    got = marginal_loglik_by_llm(y, llm, bench, pops, a, lam, sig, mean, sd)
    for i in range(n_llms):
        cells = llm == i
        b = bench[cells]
        cov = np.diag(sig[b] ** 2) + sd[pops[i]] ** 2 * np.outer(lam[b], lam[b])
        ref = stats.multivariate_normal(a[b] + lam[b] * mean[pops[i]], cov).logpdf(y[cells])
        assert got[i] == pytest.approx(ref, abs=1e-10)
    # Conditional of capability: Gaussian conjugacy, checked against a brute-force grid.
    m, s = capability_conditional(y, llm, bench, pops, a, lam, sig, mean, sd)
    grid = np.linspace(-8, 8, 40001)
    cells = llm == 0
    b = bench[cells]
    logp = stats.norm(mean[pops[0]], sd[pops[0]]).logpdf(grid)
    logp += stats.norm.logpdf(
        y[cells][:, None], a[b][:, None] + lam[b][:, None] * grid, sig[b][:, None]
    ).sum(0)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    assert m[0] == pytest.approx((w * grid).sum(), abs=1e-6)
    assert s[0] == pytest.approx(np.sqrt((w * (grid - m[0]) ** 2).sum()), abs=1e-6)


def test_model_has_named_dims_and_observed_cells_only(small):
    study, _ = small
    model = build_model(study)
    assert model.named_vars["score"].owner is not None
    assert set(model.coords) >= {"llm", "benchmark", "cell", "population", "area"}
    assert "model" not in model.coords
    assert len(model.coords["cell"]) == study.n_cells  # missing cells never enter
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def test_marginal_model_has_no_capability_variables(small):
    study, _ = small
    model = build_model(study, ModelConfig(capability="marginal"))
    assert "capability_z" not in model.named_vars
    assert "score" not in model.named_vars  # the likelihood is a per-LLM Potential
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def test_initial_point_follows_the_data(small):
    study, truth = small
    config = ModelConfig(factors=("bias",))
    data = prepare_data(study, config)
    start = initial_point(data, config)
    model = build_model(study, config)
    assert set(start) <= set(model.named_vars)
    # The data-driven capability start correlates with the truth (right sign).
    assert np.corrcoef(data.initial_capability, truth["capability"].values)[0, 1] > 0.8
    # Every safety loading starts with the sign of its true loading when that is clear.
    true = truth["loading"].to_series().reindex(data.safety_keys).to_numpy()
    slope = start.get("safety_loading")
    if slope is None:
        area_mean = start["area_loading_mean"][data.safety_area_idx]
        slope = area_mean + start["safety_loading_sd"] * start["safety_loading_z"]
    clear = np.abs(true) > 0.3
    assert (np.sign(slope[clear]) == np.sign(true[clear])).all()
    assert (start["factor_anchor_loading"] > 0).all()


@pytest.mark.parametrize("population", ["chat", "base"])
def test_logit_transform_is_finite_on_real_data(population, real_study):
    data = prepare_data(real_study(population), ModelConfig(transform="logit"))
    assert np.isfinite(data.y).all()
    assert (data.scale > 0).all()
    assert data.transformed.any()
    # WMDP's chance level equals its upper bound (guessing is the safest stored value), so
    # its floor must fall back to the lower bound rather than collapse every score.
    wmdp = data.study.benchmarks.index.get_loc("wmdp")
    assert np.ptp(data.y[data.benchmark_idx == wmdp]) > 1
