"""Held-out prediction: the masking rule, the iterative-PCA imputer, the metrics, end to end."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from safetywash.analysis.holdout import (
    choose_rank,
    iterative_pca,
    model_scale_values,
    predictive_scores,
    run_holdout,
)
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.simulate import simulate
from safetywash.model.transform import ScoreTransform


# ---------------------------------------------------------------------- PCA
def test_iterative_pca_recovers_a_low_rank_matrix():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(40, 2)) @ rng.normal(size=(2, 12)) + rng.normal(size=12)
    observed = truth.copy()
    missing = rng.random(truth.shape) < 0.2
    observed[missing] = np.nan
    filled = iterative_pca(observed, 2)
    np.testing.assert_array_equal(filled[~missing], truth[~missing])
    np.testing.assert_allclose(filled[missing], truth[missing], atol=1e-3)
    rank1 = iterative_pca(observed, 1)
    assert np.abs(rank1[missing] - truth[missing]).max() > 0.1
    rank, inner = choose_rank(observed, (1, 2, 3), seed=0)
    assert rank == 2
    assert inner[1] > 10 * inner[2]
    with pytest.raises(ValueError, match="rank must be"):
        iterative_pca(observed, 12)


# ---------------------------------------------------------------------- metrics
def test_predictive_scores_by_hand():
    y = np.array([0.0, 1.0, 3.0])
    out = predictive_scores(y, np.zeros((1, 3)), np.ones((1, 3)))
    assert out["rmse"] == pytest.approx(np.sqrt(10 / 3))
    assert out["mlpd"] == pytest.approx(np.mean(stats.norm.logpdf(y)))
    assert out["coverage90"] == pytest.approx(2 / 3)  # 3 is beyond the 95 % quantile 1.645

    # A two-draw mixture: N(-1, 1) and N(1, 1) at y = 0.
    mix = predictive_scores(np.array([0.0]), np.array([[-1.0], [1.0]]), np.ones((2, 1)))
    assert mix["rmse"] == pytest.approx(0.0)
    assert mix["mlpd"] == pytest.approx(stats.norm.logpdf(1.0))
    assert mix["coverage90"] == 1.0
    # Log of the mean density, not the mean log density.
    mix2 = predictive_scores(np.array([0.0]), np.array([[0.0], [4.0]]), np.ones((2, 1)))
    want = np.log(0.5 * (stats.norm.pdf(0.0) + stats.norm.pdf(4.0)))
    assert mix2["mlpd"] == pytest.approx(want)


def test_model_scale_values_orient_then_scale():
    catalog = pd.DataFrame(
        {
            "key": ["up", "down"],
            "role": ["capability", "safety"],
            "area": ["", "bias"],
            "direction": ["higher", "lower"],
        }
    )
    scores = pd.DataFrame(
        {
            "llm": ["a", "b", "c"] * 2,
            "benchmark": ["up"] * 3 + ["down"] * 3,
            "value": [1.0, 2.0, 3.0, 10.0, 20.0, 30.0],
        }
    )
    study = BenchmarkStudy.from_frames(scores, None, catalog)
    fitted = ScoreTransform.fit(study)
    transform = dataclasses.replace(
        fitted, center=np.array([2.0, -20.0]), scale=np.array([0.5, 10.0])
    )
    dt = xr.DataTree.from_dict({"constant_data": transform.to_dataset()})
    cells = pd.DataFrame({"llm": ["a", "c"], "benchmark": ["up", "down"], "value": [3.0, 10.0]})
    np.testing.assert_allclose(model_scale_values(dt, cells), [2.0, 1.0])


# ---------------------------------------------------------------------- end to end
def _holdout_script():
    import safetywash.cli.holdout

    return safetywash.cli.holdout


def test_holdout_script_end_to_end(tmp_path, monkeypatch, capsys):
    study, _ = simulate(n_llms=30, n_capability=4, safety={"bias": 2, "calibration": 2}, seed=1)
    import safetywash.cli.common as study_options

    _holdout_script()
    monkeypatch.setattr(study_options, "load_dataset", lambda name, population, data_dir: study)
    out = tmp_path / "holdout.json"
    argv = ["--dataset", "safetywashing", "--fraction", "0.15", "--seed", "0"]
    argv += ["--json", str(out), "--draws", "100", "--tune", "150", "--chains", "2"]
    from safetywash.cli import main

    assert main(["holdout", *argv, "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert list(result) == ["dataset", "fraction", "n_cells", "model", "pca"]
    assert result["dataset"] == "safetywashing"
    assert result["fraction"] == 0.15
    assert result["n_cells"] == round(0.15 * study.n_cells)
    model, pca = result["model"], result["pca"]
    assert {"rmse", "mlpd", "coverage90"} <= set(model)
    assert "rmse" in pca and pca["rank"] in (1, 2, 3)
    assert np.isfinite([model["rmse"], model["mlpd"], pca["rmse"]]).all()
    assert 0.0 <= model["coverage90"] <= 1.0
    # A one-factor simulated study: both methods beat predicting the benchmark mean.
    assert model["rmse"] < pca["column_mean_rmse"]
    assert pca["rmse"] < pca["column_mean_rmse"]
    assert model["n_train_cells"] + result["n_cells"] == study.n_cells
    printed = capsys.readouterr().out
    assert "latent-factor model" in printed and "iterative PCA" in printed
    assert Counter(k for k in result) == Counter(["dataset", "fraction", "n_cells", "model", "pca"])


def test_holdout_with_area_factors_and_logit_transform():
    """Held-out scoring goes through the fit's own transform and likelihood, so neither the
    logit transform nor area factors are excluded any more."""
    study, _ = simulate(
        n_llms=30, n_capability=4, safety={"bias": 3, "calibration": 2}, factor_areas=["bias"],
        seed=2,
    )  # fmt: skip
    config = ModelConfig(transform="logit", factors=("bias",))
    settings = SamplerSettings(draws=100, tune=150, chains=2, seed=2)
    result = run_holdout(study, 0.15, 2, config=config, settings=settings)
    model, pca = result["model"], result["pca"]
    assert np.isfinite([model["rmse"], model["mlpd"], pca["rmse"]]).all()
    assert 0.0 <= model["coverage90"] <= 1.0
    assert model["rmse"] < pca["column_mean_rmse"]
