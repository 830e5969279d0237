"""Measurement noise: the catalog's n_items, the transform's noise variance, the residual
floor it puts under a benchmark, and the three variance shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safetywash.analysis.separability import (
    format_separability,
    noise_sd,
    separability,
    separability_table,
    variance_share_draws,
)
from safetywash.data.catalog import proportion_items
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.build import build_model
from safetywash.model.config import ModelConfig, Priors
from safetywash.model.data import prepare_data
from safetywash.model.likelihood import capability_correlation, variance_shares
from safetywash.model.simulate import PROPORTION_SPREAD, simulate
from safetywash.model.transform import LOGIT_EPS
from safetywash.report.tables import share_rows


@pytest.fixture(scope="module")
def study() -> BenchmarkStudy:
    """``frac``: a fraction over 100 items, chance 0.25; ``pct``: a percent over 50 items;
    ``open``: an open score with a count (not a proportion); ``nocount``: a fraction."""
    catalog = pd.DataFrame(
        {
            "key": ["frac", "pct", "open", "nocount"],
            "role": ["capability", "capability", "safety", "safety"],
            "area": ["capability", "capability", "bias", "bias"],
            "direction": ["higher", "lower", "higher", "higher"],
            "scale": ["fraction", "percent", "score", "fraction"],
            "lower": [0.0, 0.0, np.nan, 0.0],
            "upper": [1.0, 100.0, np.nan, 1.0],
            "chance": [0.25, np.nan, np.nan, np.nan],
            "n_items": [100, 50, 30, np.nan],
        }
    )
    scores = pd.DataFrame(
        {
            "llm": ["a", "b", "c", "d"] * 4,
            "benchmark": np.repeat(["frac", "pct", "open", "nocount"], 4),
            "value": [0.3, 0.5, 0.9, 1.0, 10, 40, 0, 80, 3.0, 1.0, 2.0, 5.0, 0.4, 0.6, 0.7, 0.9],
        }
    )
    return BenchmarkStudy.from_frames(scores, None, catalog)


def test_only_proportions_with_a_count_have_known_noise(study):
    items = proportion_items(study.benchmarks)
    assert items["frac"] == 100 and items["pct"] == 50
    assert np.isnan(items["open"]) and np.isnan(items["nocount"])


def _hand_noise(values, n, width, slope):
    """Mean over cells of p(1-p)/n at p shrunk to (n p + 1/2) / (n + 1), times the squared
    model-scale slope per stored unit (a function of the shrunk value)."""
    p = (np.asarray(values, dtype=float) / width * n + 0.5) / (n + 1)
    return np.mean(p * (1 - p) / n * (width * slope(p * width)) ** 2)


def test_noise_variance_matches_a_hand_computation(study):
    data = prepare_data(study, ModelConfig(transform="standardize"))
    frac = np.array([0.3, 0.5, 0.9, 1.0])
    pct = np.array([10, 40, 0, 80.0])
    want_frac = _hand_noise(frac, 100, 1.0, lambda v: 1 / frac.std())
    want_pct = _hand_noise(pct, 50, 100.0, lambda v: 1 / pct.std())
    np.testing.assert_allclose(data.noise_variance[:2], [want_frac, want_pct], rtol=1e-12)
    assert np.isnan(data.noise_variance[2:]).all()
    # With the logit transform: d/dv logit((v - 0.25) / 0.75) = 1 / (0.75 q (1 - q)).
    data = prepare_data(study, ModelConfig(transform="logit"))
    q = np.clip((frac - 0.25) / 0.75, LOGIT_EPS, 1 - LOGIT_EPS)
    sd = np.log(q / (1 - q)).std()

    def slope(v):
        share = np.clip((v - 0.25) / 0.75, LOGIT_EPS, 1 - LOGIT_EPS)
        return 1 / (sd * 0.75 * share * (1 - share))

    np.testing.assert_allclose(data.noise_variance[0], _hand_noise(frac, 100, 1, slope))


def test_model_residual_is_noise_plus_specific_where_noise_is_known(study):
    config = ModelConfig(residuals="centered")  # log_specific_sd as a variable of its own
    data = prepare_data(study, config)
    model = build_model(study, config)
    # No noise parameter: only the sum of noise and specific variance is identified where
    # the item count is unknown, so the model has no separate noise term there.
    assert not any("noise" in v.name for v in model.free_RVs + model.deterministics)
    point = model.initial_point()
    point["log_specific_sd"] = np.log([0.1, 0.2, 0.3, 0.4])
    outs = model.replace_rvs_by_values([model["specific_sd"], model["residual_sd"]])
    specific, sigma = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")(
        point
    )
    noise = np.sqrt(data.noise_variance[:2])
    np.testing.assert_allclose(specific, [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(sigma[:2], np.sqrt(noise**2 + [0.01, 0.04]))
    np.testing.assert_allclose(sigma[2:], [0.3, 0.4])
    assert (sigma[:2] >= noise).all()


def test_retired_noise_prior_is_ignored_in_a_saved_config():
    text = ModelConfig().to_json()
    assert "noise_sd_scale" not in text
    old = text.replace('"priors": {', '"priors": {"noise_sd_scale": 0.15, ')
    assert "noise_sd_scale" in old
    assert ModelConfig.from_json(old) == ModelConfig()
    with pytest.raises(TypeError):
        Priors(noise_sd_scale=0.15)


def test_shares_sum_to_one_and_capability_share_is_rho_squared():
    rng = np.random.default_rng(0)
    loading, gamma = rng.normal(0, 1, (2, 50))
    noise, specific = np.abs(rng.normal(0, 0.5, (2, 50)))
    sigma = np.sqrt(noise**2 + specific**2)
    cap, spec, noise_share = variance_shares(loading, sigma, noise, gamma)
    np.testing.assert_allclose(cap + spec + noise_share, 1.0)
    np.testing.assert_allclose(cap, capability_correlation(loading, sigma, gamma) ** 2)
    total = loading**2 + gamma**2 + noise**2 + specific**2
    np.testing.assert_allclose(spec, (specific**2 + gamma**2) / total)
    np.testing.assert_allclose(noise_share, noise**2 / total)


def test_simulated_proportions_carry_the_noise_the_model_computes():
    study, truth = simulate(
        300, 5, {"bias": 3}, n_items={"cap00": 200}, residuals={"cap00": 0.01}, seed=4
    )
    row = study.benchmarks.loc["cap00"]
    assert (row["scale"], row["lower"], row["upper"], row["n_items"]) == ("fraction", 0, 1, 200)
    data = prepare_data(study)
    raw_sd = study.scores.loc[study.scores["benchmark"] == "cap00", "value"].std(ddof=0)
    # The model-scale noise SD is the true one over the benchmark's SD in model units.
    model_noise = np.sqrt(data.noise_variance[0])
    want = float(truth["noise_sd"].sel(benchmark="cap00")) / (raw_sd / PROPORTION_SPREAD)
    np.testing.assert_allclose(model_noise, want, rtol=0.02)
    assert np.isnan(data.noise_variance[1:]).all()
    assert (truth["noise_sd"].drop_sel(benchmark="cap00") == 0).all()


@pytest.fixture(scope="module")
def indicator_fit():
    """A near-perfect indicator (benchmark-specific SD 0.01) over 150 items."""
    study, truth = simulate(
        80, 6, {"bias": 3}, n_items={"cap00": 150}, residuals={"cap00": 0.01}, seed=5
    )
    dt = fit(study, None, SamplerSettings(draws=500, tune=500, seed=1), progressbar=False)
    return study, truth, dt


def test_near_perfect_indicator_cannot_fall_below_its_noise(indicator_fit):
    study, truth, dt = indicator_fit
    post = dt["posterior"]
    floor = np.sqrt(prepare_data(study).noise_variance[0])
    np.testing.assert_allclose(float(noise_sd(dt).sel(benchmark="cap00")), floor)
    assert np.isnan(noise_sd(dt).drop_sel(benchmark="cap00")).all()
    np.testing.assert_allclose(
        post["residual_sd"].sel(benchmark="cap00").values,
        np.sqrt(floor**2 + post["specific_sd"].sel(benchmark="cap00").values ** 2),
    )
    assert (post["residual_sd"].sel(benchmark="cap00") >= floor).all()
    true_rho = float(truth["rho"].sel(benchmark="cap00"))
    assert true_rho < 0.95  # the noise keeps it from being a perfect measure
    summary = separability(dt, ci_prob=0.94)
    low, high = (float(summary[v].sel(benchmark="cap00")) for v in ("rho_hdi_low", "rho_hdi_high"))
    assert low <= true_rho <= high
    assert float(summary["rho_hdi_high"].sel(benchmark="cap00")) < 0.99
    assert bool(summary["noise_known"].sel(benchmark="cap00"))
    assert not bool(summary["noise_known"].sel(benchmark="cap01"))


def test_fitted_shares_sum_to_one_and_match_rho(indicator_fit):
    _, _, dt = indicator_fit
    shares = variance_share_draws(dt)
    known = shares.sel(benchmark="cap00")
    total = known["capability"] + known["specific"] + known["noise"]
    np.testing.assert_allclose(total.values, 1.0, atol=1e-12)
    np.testing.assert_allclose(shares["capability"].values, dt["posterior"]["rho"].values ** 2)
    # Noise not separated: no noise share, everything capability leaves is "specific".
    other = shares.drop_sel(benchmark="cap00")
    assert other["noise"].isnull().all()
    np.testing.assert_allclose((other["capability"] + other["specific"]).values, 1.0)
    summary = separability(dt)
    med = float(summary["capability_share_median"].sel(benchmark="cap02"))
    np.testing.assert_allclose(
        med, float((dt["posterior"]["rho"] ** 2).median(("chain", "draw")).sel(benchmark="cap02"))
    )
    assert np.isnan(float(summary["noise_share_median"].sel(benchmark="cap02")))
    assert 0 < float(summary["noise_share_median"].sel(benchmark="cap00")) < 1
    text = format_separability(separability_table(summary), 0.5)
    line = next(t for t in text.splitlines() if t.startswith("cap02"))
    assert line.rstrip().split()[-2].endswith("/n/a")
    assert "noise not separated: give n_items" in text
    rows = {r[0]: r for r in share_rows(separability_table(summary))}
    assert rows["cap02"][4:] == ["n/a", "not separated"]
    assert rows["cap00"][5] == "known (n items)" and rows["cap00"][4] != "n/a"


def test_simulated_proportions_stay_within_their_bounds():
    # The trust suite's near-perfect indicator at seed 3 draws one cell beyond 5 SDs.
    areas = {"alignment": 2, "truthfulness": 2, "machine_ethics": 2, "bias": 2}
    study, _ = simulate(
        n_llms=80,
        n_capability=8,
        safety=areas,
        n_items={"cap00": 1172},
        residuals={"cap00": 0.01},
        seed=3,
    )
    values = study.scores.loc[study.scores["benchmark"] == "cap00", "value"]
    assert values.between(0.0, 1.0).all()
    assert (values == 0.0).any()  # the draw that fell below 0 is stored at the bound
