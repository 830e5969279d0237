"""Choosing K: cross-validation folds, the one-standard-error rule, one compiled model per
candidate across folds, and the record a chosen fit carries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from fit_trees import BAD_DIAGNOSTICS, GOOD_DIAGNOSTICS
from safetywash.analysis.capability_dims import (
    candidate_dims,
    heldout_lpd,
    kfold_pointwise,
    pick_dims,
    select_capability_dims,
)
from safetywash.analysis.cellsplit import kfold_cells
from safetywash.analysis.dims_choice import DIMS_CHOICE_ATTR, describe_dims_choice, dims_choice
from safetywash.analysis.holdout import model_scale_values, training_study
from safetywash.analysis.predictive import cell_parameters
from safetywash.cli import main
from safetywash.inference.compiled import ModelCache, structure_key
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.simulate import simulate


@pytest.fixture(scope="module")
def study():
    return simulate(n_llms=30, n_capability=6, missing=0.1, seed=4)[0]


def test_the_one_standard_error_rule():
    rng = np.random.default_rng(0)
    base = rng.normal(-1.0, 0.5, 400)
    noise = rng.normal(0.0, 0.3, 400)
    noise -= noise.mean()
    close = {1: base, 2: base + 0.002 + noise}  # gain far below its SE
    chosen, table = pick_dims(close)
    diff = close[2] - close[1]
    assert table[1]["diff_se"] == pytest.approx(np.sqrt(400 * diff.var(ddof=1)))
    assert table[1]["elpd_diff"] == pytest.approx(diff.sum())
    assert chosen == 1
    other = rng.normal(0.0, 0.3, 400)
    far = {1: base, 2: base + 0.2 + noise, 3: base + 0.201 + other - other.mean()}
    chosen, table = pick_dims(far)
    assert chosen == 2 and table[3]["elpd_diff"] == 0.0


def test_candidates_follow_the_capability_benchmarks(study):
    assert candidate_dims(study, ModelConfig()) == [1, 2, 3]
    assert candidate_dims(study, ModelConfig(factors=("bias",))) == [1]
    few = simulate(n_llms=20, n_capability=4, seed=1)[0]
    assert candidate_dims(few, ModelConfig()) == [1]


@pytest.mark.parametrize("dims", [2])
def test_folds_share_one_compiled_model_with_the_draws_of_a_fresh_compile(study, dims):
    config = ModelConfig(capability_dims=dims, safety_loadings="centered")
    fold = kfold_cells(study, 5, seed=0)
    one, two = (training_study(study, fold == f) for f in (0, 1))
    a, b = prepare_data(one, config), prepare_data(two, config)
    assert not np.array_equal(a.llm_idx, b.llm_idx)
    assert structure_key(a, config) == structure_key(b, config)
    settings = SamplerSettings(draws=60, tune=60, chains=2, seed=5)
    cache = ModelCache()
    kwargs = {"progressbar": False, "log_likelihood": False, "cache": cache}
    fit(one, config, settings, **kwargs)
    reused = fit(two, config, settings, **kwargs)
    assert (cache.compiles, cache.reuses) == (1, 1)
    fresh = fit(two, config, settings, progressbar=False, log_likelihood=False)
    for name in ("rho", "capability", "loading", "residual_sd", "intercept"):
        np.testing.assert_array_equal(reused["posterior"][name], fresh["posterior"][name])


def test_heldout_density_is_the_mixture_over_draws(study):
    fold = kfold_cells(study, 5, seed=0)
    held = fold == 2
    dt = fit(
        training_study(study, held),
        ModelConfig(),
        SamplerSettings(draws=50, tune=100, chains=2, seed=1),
        progressbar=False,
        log_likelihood=False,
    )
    test = study.scores.loc[held].reset_index(drop=True)
    lpd = heldout_lpd(dt, test)
    y = model_scale_values(dt, test)
    mu, sd = cell_parameters(dt, test["llm"].to_numpy(), test["benchmark"].to_numpy())
    j = 7
    dens = np.exp(-0.5 * ((y[j] - mu.isel(cell=j)) / sd.isel(cell=j)) ** 2) / (
        np.sqrt(2 * np.pi) * sd.isel(cell=j)
    )
    assert lpd[j] == pytest.approx(float(np.log(dens.mean())), rel=1e-9)
    assert lpd.shape == (held.sum(),)


def test_only_eligible_candidates_are_chosen_or_measured_against():
    rng = np.random.default_rng(1)
    base = rng.normal(-1.0, 0.5, 400)
    noise, other = (x - x.mean() for x in rng.normal(0.0, 0.3, (2, 400)))
    pointwise = {1: base, 2: base + 0.1 + noise, 3: base + 0.3 + other}
    assert pick_dims(pointwise)[0] == 3
    chosen, table = pick_dims(pointwise, [1, 2])
    assert chosen == 2 and table[2]["elpd_diff"] == 0.0
    assert table[3]["elpd_diff"] == pytest.approx(-(pointwise[3] - pointwise[2]).sum())


def test_a_candidate_whose_fit_failed_the_diagnostics_is_not_chosen(study, monkeypatch):
    from safetywash.analysis import capability_dims as module

    rng = np.random.default_rng(2)
    base = rng.normal(-1.0, 0.5, 300)
    pointwise = {k: base + 0.2 * k + rng.normal(0, 0.05, 300) for k in (1, 2, 3)}
    failed = {3}

    def fake_fit(study, config, settings, **kwargs):
        tree = xr.DataTree()
        k = config.capability_dims
        tree.attrs["capability_dims"] = k
        diagnostics = BAD_DIAGNOSTICS if k in failed else GOOD_DIAGNOSTICS
        tree.attrs["diagnostics"] = json.dumps(diagnostics.to_dict())
        return tree

    monkeypatch.setattr(module, "fit_with_retry", fake_fit)
    monkeypatch.setattr(
        module, "loo_pointwise", lambda dt: (pointwise[dt.attrs["capability_dims"]], 0.5)
    )
    dt = select_capability_dims(study, ModelConfig())
    choice = dims_choice(dt)
    assert choice["chosen"] == 2 and dt.attrs["capability_dims"] == 2
    assert choice["candidates"]["3"]["trustworthy"] is False
    assert choice["candidates"]["3"]["elpd_diff"] < 0  # better, but not eligible
    assert "among the K whose fit passed" in choice["rule"]
    assert "K=3: ELPD" in describe_dims_choice(choice, 2)
    assert "its fit did not pass the diagnostics" in describe_dims_choice(choice, 2)
    failed.update({1, 2})  # none passed: the rule runs over every K and says so
    choice = dims_choice(select_capability_dims(study, ModelConfig()))
    assert choice["chosen"] == 3 and "no K's fit passed" in choice["rule"]


def test_a_choice_is_recorded_and_worded():
    record = {
        "chosen": 2,
        "method": "5-fold",
        "rule": "smallest K within one SE of the best ELPD",
        "candidates": {
            "1": {"elpd": -120.0, "elpd_diff": 20.0, "diff_se": 5.0},
            "2": {"elpd": -100.0, "elpd_diff": 0.0, "diff_se": 0.0},
        },
    }

    tree = xr.DataTree()
    tree.attrs[DIMS_CHOICE_ATTR] = json.dumps(record)
    assert dims_choice(tree) == record
    text = describe_dims_choice(record, 2)
    assert "5-fold" in text and "K=1: ELPD -120.0 (-20.0 ± 5.0)" in text and "(best)" in text
    assert describe_dims_choice(None, 1) == "1 capability dimension(s), as requested."
    only = {"method": "only candidate", "reason": "its 3 capability benchmark(s) identify one"}
    assert describe_dims_choice(only, 1) == f"1 capability dimension: {only['reason']}."


OWN_STUDY = Path(__file__).resolve().parents[1] / "data" / "examples" / "own_study.csv"
OWN_OPTIONS = [
    "--scores",
    str(OWN_STUDY),
    "--llm-column",
    "Model",
    "--llm-meta",
    "family=Model Family",
    "params=Model Size (B)",
    "--capability",
    "quiz_a",
    "quiz_b",
    "quiz_c",
    "--safety",
    "harmful_refusal=misuse",
]


def test_capability_dims_auto_on_a_study_that_supports_one(tmp_path, capsys):
    """Three capability quizzes identify one dimension: auto fits it alone (no LOO) and
    says why, in the output and in VERDICT."""
    out = tmp_path / "run"
    argv = ["fit", *OWN_OPTIONS, "--capability-dims", "auto", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    verdict = (out / "VERDICT").read_text()
    assert "1 capability dimension: its 3 capability benchmark(s) identify one dimension" in verdict
    assert "at least 5" in verdict
    assert "Pareto" not in capsys.readouterr().err


@pytest.mark.parametrize("value", ["4", "0", "two"])
def test_capability_dims_values_are_checked_before_any_work(tmp_path, capsys, value):
    argv = ["fit", *OWN_OPTIONS, "--capability-dims", value, "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: argument --capability-dims: must be")
    assert not (tmp_path / "r").exists()


def test_more_dimensions_than_the_study_identifies_is_one_error_line(tmp_path, capsys):
    argv = ["fit", *OWN_OPTIONS, "--capability-dims", "2", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: 2 capability dimensions need at least 5 capability benchmarks; study "
        "'own_study' has 3: use fewer (--capability-dims 1)"
    ]


def test_kfold_scores_every_held_out_cell_once_per_candidate(study):
    settings = SamplerSettings(draws=40, tune=60, chains=2, seed=2)
    pointwise, untrusted = kfold_pointwise(study, ModelConfig(), settings, [1, 2], folds=2)
    fold = kfold_cells(study, 2, seed=2)
    assert set(pointwise) == {1, 2} and set(untrusted) == {1, 2}
    for k in (1, 2):
        assert pointwise[k].shape == ((fold >= 0).sum(),)
        assert np.isfinite(pointwise[k]).all() and 0 <= untrusted[k] <= 2
    assert not np.allclose(pointwise[1], pointwise[2])


@pytest.mark.slow
def test_auto_chooses_two_dimensions_for_a_two_dimension_study():
    from axes_study import axes_study

    study, _ = axes_study()
    dt = select_capability_dims(study, ModelConfig(), SamplerSettings(seed=1), progressbar=False)
    choice = dims_choice(dt)
    assert choice["chosen"] == 2 and dt["posterior"].sizes["capability_axis"] == 1
    assert set(choice["candidates"]) == {"1", "2", "3"}
    assert choice["candidates"]["1"]["elpd_diff"] > choice["candidates"]["1"]["diff_se"]
