"""The score transform (``safetywash.model.transform.ScoreTransform``), checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import constant_data, fitted_transform
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.transform import LOGIT_EPS, ScoreTransform


@pytest.fixture(scope="module")
def study() -> BenchmarkStudy:
    """``frac``: a fraction above its chance level 0.25; ``harm``: unbounded, lower = better;
    ``low``: a fraction with a score below its chance level 0.5 (floor: lower bound 0)."""
    catalog = pd.DataFrame(
        {
            "key": ["frac", "harm", "low"],
            "role": ["capability", "safety", "safety"],
            "area": ["capability", "bias", "bias"],
            "direction": ["higher", "lower", "higher"],
            "scale": ["fraction", "score", "fraction"],
            "lower": [0.0, np.nan, 0.0],
            "upper": [1.0, np.nan, 1.0],
            "chance": [0.25, np.nan, 0.5],
        }
    )
    scores = pd.DataFrame(
        {
            "llm": ["a", "b", "c", "d"] * 3,
            "benchmark": ["frac"] * 4 + ["harm"] * 4 + ["low"] * 4,
            "value": [0.3, 0.5, 0.9, 0.6, 3.0, 1.0, 2.0, 5.0, 0.4, 0.6, 0.7, 0.95],
        }
    )
    return BenchmarkStudy.from_frames(scores, None, catalog)


def _standardise(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_forward_orients_and_standardises(study):
    transform = ScoreTransform.fit(study, "standardize")
    raw = study.scores["value"].to_numpy()
    y = transform.forward(raw, study.benchmark_index)
    np.testing.assert_allclose(y[:4], _standardise(np.array([0.3, 0.5, 0.9, 0.6])))
    np.testing.assert_allclose(y[4:8], _standardise(-np.array([3.0, 1.0, 2.0, 5.0])))
    assert not transform.logit.any()
    np.testing.assert_allclose(transform.center, [0.575, -2.75, 0.6625])
    # The model's scores are exactly the transform's.
    np.testing.assert_array_equal(prepare_data(study).y, y)


def test_logit_uses_chance_floor_only_above_chance(study):
    transform = ScoreTransform.fit(study, "logit")
    np.testing.assert_array_equal(transform.logit, [True, False, True])
    np.testing.assert_array_equal(transform.floor[[0, 2]], [0.25, 0.0])
    assert np.isnan(transform.floor[1])
    y = transform.forward(study.scores["value"].to_numpy(), study.benchmark_index)
    frac = _logit((np.array([0.3, 0.5, 0.9, 0.6]) - 0.25) / 0.75)
    np.testing.assert_allclose(y[:4], _standardise(frac))
    np.testing.assert_allclose(y[8:], _standardise(_logit(np.array([0.4, 0.6, 0.7, 0.95]))))
    np.testing.assert_allclose(y[4:8], _standardise(-np.array([3.0, 1.0, 2.0, 5.0])))
    data = prepare_data(study, ModelConfig(transform="logit"))
    np.testing.assert_array_equal(data.y, y)
    # Below the floor the share is clipped, as in the fit.
    below = transform.forward([0.1], transform.positions(["frac"]))
    want = (_logit(np.array([LOGIT_EPS])) - transform.center[0]) / transform.scale[0]
    np.testing.assert_allclose(below, want)


@pytest.mark.parametrize("kind", ["standardize", "logit"])
def test_inverse_undoes_forward(study, kind):
    transform = ScoreTransform.fit(study, kind)
    b = study.benchmark_index
    raw = study.scores["value"].to_numpy()
    np.testing.assert_allclose(transform.inverse(transform.forward(raw, b), b), raw, rtol=1e-12)
    # Draws along leading axes, one benchmark index per last-axis entry.
    draws = np.stack([raw, raw])
    np.testing.assert_allclose(transform.inverse(transform.forward(draws, b), b), draws)
    # Clipping to the declared range: a fraction far above the scale maps to at most 1.
    frac = transform.positions(["frac", "harm"])
    clipped = transform.inverse(np.array([50.0, 50.0]), frac, clip=True)
    assert clipped[0] <= 1.0 and clipped[1] == transform.inverse([50.0], frac[1:])[0]


def test_transform_is_stored_and_read_back_from_a_fit(study):
    data = prepare_data(study, ModelConfig(transform="logit"))
    const = constant_data(data)
    dt = xr.DataTree.from_dict({"constant_data": const})
    read = fitted_transform(dt)
    for name in ("sign", "logit", "floor", "lower", "upper", "center", "scale"):
        np.testing.assert_array_equal(getattr(read, name), getattr(data.transform, name), name)
    assert list(read.benchmarks) == list(study.benchmarks.index)
    # The stored transform reproduces the stored model-scale scores from the raw ones.
    y = read.forward(const["raw_value"].values, const["benchmark_index"].values)
    np.testing.assert_array_equal(y, const["transformed_value"].values)
    with pytest.raises(KeyError, match="nope"):
        read.positions(["frac", "nope"])
    with pytest.raises(ValueError, match="transform_sd"):
        ScoreTransform.from_dataset(const.drop_vars("transform_sd"))


def test_auto_gives_the_logistic_treatment_to_proportions_that_crowd_a_bound():
    """``floor``: 3 of 8 scores within 5% of 0, spanning 0.4 -> logistic; ``ceiling``: 2 of 8
    within 5% of 1 (25%) above a chance floor -> logistic; ``narrow``: every score near 0
    (span < 0.1) -> standardised; ``rating``: crowds its bound but is not a proportion;
    ``spread``: no crowding; ``open``: unbounded."""
    values = {
        "floor": [0.0, 0.01, 0.04, 0.1, 0.2, 0.3, 0.35, 0.4],
        "ceiling": [0.5, 0.6, 0.7, 0.8, 0.9, 0.93, 0.97, 1.0],
        "narrow": [0.0, 0.001, 0.002, 0.004, 0.01, 0.02, 0.03, 0.05],
        "rating": [1.0, 1.1, 1.1, 2.0, 3.0, 3.5, 4.0, 4.5],
        "spread": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        "open": [3.0, 1.0, 2.0, 5.0, 7.0, 1.5, 2.5, 0.5],
    }
    keys = list(values)
    catalog = pd.DataFrame(
        {
            "key": keys,
            "role": ["capability"] * 3 + ["safety"] * 3,
            "area": ["capability"] * 3 + ["bias"] * 3,
            "direction": "higher",
            "scale": ["fraction", "percent", "fraction", "rating", "fraction", "score"],
            "lower": [0.0, 0.0, 0.0, 1.0, 0.0, np.nan],
            "upper": [1.0, 1.0, 1.0, 5.0, 1.0, np.nan],
            "chance": [np.nan, 0.25, np.nan, np.nan, np.nan, np.nan],
        }
    )
    scores = pd.DataFrame(
        {
            "llm": [f"m{i}" for i in range(8)] * len(keys),
            "benchmark": np.repeat(keys, 8),
            "value": np.concatenate([values[k] for k in keys]),
        }
    )
    study = BenchmarkStudy.from_frames(scores, None, catalog)
    auto = ScoreTransform.fit(study)
    np.testing.assert_array_equal(auto.logit, [True, True, False, False, False, False])
    np.testing.assert_array_equal(auto.floor[:2], [0.0, 0.25])
    # The logistic treatment by hand: clipped shares above the floor, logit, standardised.
    y = auto.forward(study.scores["value"].to_numpy(), study.benchmark_index)
    share = np.clip((np.array(values["ceiling"]) - 0.25) / 0.75, LOGIT_EPS, 1 - LOGIT_EPS)
    np.testing.assert_allclose(y[8:16], _standardise(_logit(share)))
    # A score at the bound sits where a 1% share would: no outlier far below the others.
    floor_share = np.clip(values["floor"], LOGIT_EPS, 1 - LOGIT_EPS)
    np.testing.assert_allclose(y[:8], _standardise(_logit(floor_share)))
    assert y[:8].min() > -2.5
    np.testing.assert_allclose(y[16:24], _standardise(np.array(values["narrow"])))
    # The choice is the default model's and is stored with the fit.
    data = prepare_data(study)
    assert ModelConfig().transform == "auto"
    np.testing.assert_array_equal(data.transform.logit, auto.logit)
    stored = constant_data(data)["logit_transformed"].values
    np.testing.assert_array_equal(stored, auto.logit)
    assert not ScoreTransform.fit(study, "standardize").logit.any()
    np.testing.assert_array_equal(
        ScoreTransform.fit(study, "logit").logit, [True, True, True, True, True, False]
    )
