"""The log benchmark-specific SDs, whitened by each benchmark's own least-squares residual
(with residuals left to "auto"): the estimates, the start, and the same model as centred."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from safetywash.inference.compiled import data_containers
from safetywash.model.build import build_model
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.hierarchy import RESIDUAL_ERRORS, RESIDUAL_ESTIMATES
from safetywash.model.pooling import WHITENING_ERRORS, pooling, start_capability
from safetywash.model.simulate import simulate


@pytest.fixture(scope="module")
def study():
    """cap00 a proportion of 200 items (known noise) whose specific SD is small, cap01 one
    of 40 items (noise above its residual), the rest open scores; 30 LLMs."""
    study, _ = simulate(
        30,
        5,
        {"bias": 3},
        n_items={"cap00": 200, "cap01": 40},
        residuals={"cap00": 0.05, "cap01": 0.01},
        seed=3,
    )
    return study


def _by_hand(data):
    """Each benchmark's log specific SD and its standard error, from scipy's least-squares
    line of its scores on the data-driven capability, less its known noise variance."""
    theta = start_capability(data)
    noise = np.nan_to_num(data.noise_variance)
    estimate, error = [], []
    for b in range(len(data.coords["benchmark"])):
        cells = data.benchmark_idx == b
        x, y = theta[data.llm_idx[cells]], data.y[cells]
        line = stats.linregress(x, y)
        n = cells.sum()
        resid = np.sum((y - line.intercept - line.slope * x) ** 2) / (n - 2)
        specific = resid - noise[b]
        if specific <= 0:
            estimate.append(0.0)
            error.append(WHITENING_ERRORS[1])
            continue
        estimate.append(0.5 * np.log(specific))
        error.append(resid / specific / np.sqrt(2 * (n - 2)))
    return np.array(estimate), np.array(error)


def test_estimates_are_each_benchmarks_least_squares_specific_sd(study):
    data = prepare_data(study)
    pool = pooling(data)
    assert not pool.residual
    estimate, error = _by_hand(data)
    np.testing.assert_allclose(pool.residual_estimates, estimate, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(pool.residual_errors, error, rtol=1e-8)
    keys = data.coords["benchmark"]
    # The known noise is taken out: the 40-item benchmark's residual is all noise, so its
    # member is left non-centred; the 200-item one's error is inflated by the noise share.
    assert pool.residual_errors[keys.index("cap01")] == WHITENING_ERRORS[1]
    plain = 1 / np.sqrt(2 * (np.bincount(data.benchmark_idx)[keys.index("cap00")] - 2))
    assert pool.residual_errors[keys.index("cap00")] > plain
    # Refits get them through data containers; a form the user chose is not whitened.
    values = data_containers(data)
    np.testing.assert_array_equal(values[RESIDUAL_ESTIMATES], pool.residual_estimates)
    np.testing.assert_array_equal(values[RESIDUAL_ERRORS], pool.residual_errors)
    for form in ("centered", "noncentered"):
        chosen = pooling(data, ModelConfig(residuals=form))
        assert chosen.residual == (form == "centered") and not chosen.residual_estimates
    # A compiled model is reused whatever the values (a structure of its own when whitened).
    moved = replace(pool, residual_estimates=tuple(np.add(pool.residual_estimates, 1.0)))
    assert moved.structure() == pool.structure()
    assert replace(pool, residual_estimates=(), residual_errors=()).structure() != pool.structure()


def test_whitened_specific_sds_have_the_centred_model_s_density(study):
    """The density of z (its own and the potential's) at the z of any log specific SDs x,
    less log dx/dz, is log Normal(x; m, s) at every (m, s): x = c + d z, with c and d the
    mean and SD of x given m, s and its estimate (normal-normal precision formulas)."""
    data = prepare_data(study)
    pool = pooling(data)
    estimate, error = np.array(pool.residual_estimates), np.array(pool.residual_errors)
    model = build_model(study)
    names = model.named_vars
    assert "log_specific_sd_wz" in names and "log_specific_sd" not in names
    terms = model.logp(vars=[model["log_specific_sd_wz"]], sum=False)[0].sum()
    terms = terms + model.replace_rvs_by_values([model["log_specific_sd_whitening"]])[0]
    logp = model.compile_fn(terms, inputs=model.value_vars, on_unused_input="ignore")
    specific = model.compile_fn(
        model.replace_rvs_by_values([model["specific_sd"]])[0],
        inputs=model.value_vars,
        on_unused_input="ignore",
    )
    point = model.initial_point()
    rng = np.random.default_rng(0)
    for m, s in [(-0.7, 0.05), (0.1, 0.5), (-2.0, 1.5)]:
        x = rng.normal(m, s, len(estimate))
        precision = 1 / s**2 + 1 / error**2
        c, d = (m / s**2 + estimate / error**2) / precision, 1 / np.sqrt(precision)
        point["residual_log_mean"] = np.asarray(m)
        point["residual_log_sd_log__"] = np.asarray(np.log(s))
        point["log_specific_sd_wz"] = (x - c) / d
        np.testing.assert_allclose(specific(point), np.exp(x), rtol=1e-9)
        np.testing.assert_allclose(
            logp(point) - np.log(d).sum(), stats.norm.logpdf(x, m, s).sum(), rtol=1e-9
        )
