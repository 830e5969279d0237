"""Capability-adjusted safety scores (``safetywash.analysis.adjusted``), on hand-made posteriors.

Adjustment is post-processing, so no test samples: posteriors are random draws (checked
against the arithmetic recomputed here) or the simulation's truth (checked for removing
the capability part).
"""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.special import expit

from safetywash.analysis.adjusted import (
    CSV_COLUMNS,
    adjusted_scores,
    adjusted_table,
    default_plot_benchmark,
    plot_adjusted,
)
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import FitInfo, constant_data, save_fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.simulate import simulate

SAMPLE_DIMS = ("chain", "draw")

#: 6 LLMs; bounded benchmarks are logit-transformed under ModelConfig(transform="logit").
CATALOG = pd.DataFrame(
    {
        "key": ["acc", "gen", "refuse", "harm", "tox"],
        "display_name": ["Accuracy", "General", "Refusal", "Harm", "Toxicity"],
        "role": ["capability", "capability", "safety", "safety", "safety"],
        "area": ["capability", "capability", "alignment", "bias", "bias"],
        "direction": ["higher", "higher", "higher", "lower", "lower"],
        "scale": ["fraction", "score", "fraction", "score", "fraction"],
        "lower": [0.0, np.nan, 0.0, np.nan, 0.0],
        "upper": [1.0, np.nan, 1.0, np.nan, 1.0],
        "chance": [0.25, np.nan, np.nan, np.nan, np.nan],
    }
)
WIDE = pd.DataFrame(
    {
        "acc": [0.3, 0.45, 0.6, 0.7, 0.8, 0.9],
        "gen": [10.0, 14.0, 13.0, 20.0, np.nan, 25.0],
        "refuse": [0.2, 0.5, np.nan, 0.6, 0.7, 0.65],
        "harm": [5.0, 3.0, 4.0, np.nan, 1.0, 2.0],
        "tox": [0.4, 0.35, 0.3, 0.2, 0.25, np.nan],
    },
    index=[f"m{i}" for i in range(1, 7)],
)


def random_fit(config: ModelConfig, *, seed: int = 0) -> xr.DataTree:
    """The tiny study with random posterior draws of the variables adjustment reads."""
    long = WIDE.stack().dropna().rename("value").reset_index()
    long.columns = ["llm", "benchmark", "value"]
    study = BenchmarkStudy.from_frames(long, None, CATALOG, name="tiny")
    data = prepare_data(study, config)
    rng = np.random.default_rng(seed)
    shape = (2, 50)
    n_llm, n_bench = len(data.coords["llm"]), len(data.coords["benchmark"])
    post = xr.Dataset(
        {
            "capability": ((*SAMPLE_DIMS, "llm"), rng.normal(size=(*shape, n_llm))),
            "loading": ((*SAMPLE_DIMS, "benchmark"), rng.normal(0.5, 0.3, (*shape, n_bench))),
            "intercept": ((*SAMPLE_DIMS, "benchmark"), rng.normal(0, 0.2, (*shape, n_bench))),
            "rho": ((*SAMPLE_DIMS, "benchmark"), rng.uniform(-1, 1, (*shape, n_bench))),
        },
        coords={"llm": data.coords["llm"], "benchmark": data.coords["benchmark"]},
    )
    dt = xr.DataTree.from_dict(
        {
            "posterior": post,
            "observed_data": xr.Dataset({"score": ("cell", data.y)}),
            "constant_data": constant_data(data),
        }
    )
    dt.attrs.update(
        FitInfo(
            model_config=config,
            sampler_settings=SamplerSettings(),
            study_sha256=study.sha256(),
            study_name=study.name,
            seed=0,
        ).to_attrs()
    )
    return dt


@pytest.fixture(scope="module")
def logit_fit():
    return random_fit(ModelConfig(transform="logit"))


@pytest.fixture(scope="module")
def std_fit():
    return random_fit(ModelConfig(), seed=1)


def _cell_draws(dt, llm, benchmark):
    """y, loading * theta and intercept draws of one observed cell, read directly."""
    const = dt["constant_data"]
    llms, keys = list(const["llm"].values), list(const["benchmark"].values)
    i, b = llms.index(llm), keys.index(benchmark)
    cell = np.flatnonzero(
        (const["llm_index"].values == i) & (const["benchmark_index"].values == b)
    ).item()
    y = dt["observed_data"]["score"].values[cell]
    post = dt["posterior"]
    lam = post["loading"].sel(benchmark=benchmark).values.ravel()
    theta = post["capability"].sel(llm=llm).values.ravel()
    alpha = post["intercept"].sel(benchmark=benchmark).values.ravel()
    return y, lam * theta, alpha


def _scale(dt, benchmark):
    """Raw values and model-scale scores of one benchmark's observed cells."""
    const = dt["constant_data"]
    b = list(const["benchmark"].values).index(benchmark)
    cells = const["benchmark_index"].values == b
    y = dt["observed_data"]["score"].values[cells]
    raw = const["raw_value"].values[cells]
    return raw, y


def test_model_scale_adjustment_is_y_minus_loading_times_capability(logit_fit):
    ds = adjusted_scores(logit_fit, ci_prob=0.8)
    for llm, key in (("m1", "refuse"), ("m5", "harm"), ("m2", "tox")):
        y, cap_part, alpha = _cell_draws(logit_fit, llm, key)
        r = ds.sel(llm=llm, benchmark=key)
        assert float(r.adjusted_std_median) == pytest.approx(np.median(y - cap_part))
        low, high = az.hdi(y - cap_part, prob=0.8)
        assert float(r.adjusted_std_hdi_low) == pytest.approx(low)
        assert float(r.adjusted_std_hdi_high) == pytest.approx(high)
        assert float(r.p_above_capability_prediction) == pytest.approx(
            np.mean(y > alpha + cap_part)
        )


def test_equal_tailed_intervals(logit_fit):
    ds = adjusted_scores(logit_fit, ci_prob=0.8, ci_kind="eti")
    y, cap_part, _ = _cell_draws(logit_fit, "m5", "harm")
    low, high = np.quantile(y - cap_part, [0.1, 0.9])
    r = ds.sel(llm="m5", benchmark="harm")
    assert float(r.adjusted_std_hdi_low) == pytest.approx(low)
    assert float(r.adjusted_std_hdi_high) == pytest.approx(high)
    assert ds.attrs["ci_kind"] == "eti"


def test_standardised_benchmark_in_oriented_units(logit_fit, std_fit):
    """Unbounded 'harm' (lower is safer): adjusted = -raw - scale * loading * theta."""
    for dt in (logit_fit, std_fit):
        ds = adjusted_scores(dt)
        raw = float(ds.raw_score.sel(llm="m2", benchmark="harm"))
        assert raw == 3.0 and float(ds.oriented_score.sel(llm="m2", benchmark="harm")) == -3.0
        y, cap_part, _ = _cell_draws(dt, "m2", "harm")
        raws, _ = _scale(dt, "harm")
        center, scale = np.mean(-raws), np.std(-raws)
        expected = -raw - scale * cap_part
        assert float(ds.adjusted_median.sel(llm="m2", benchmark="harm")) == pytest.approx(
            np.median(expected)
        )
        assert (y - cap_part) * scale + center == pytest.approx(expected)


def test_logit_benchmark_maps_back_through_the_inverse_logit(logit_fit, std_fit):
    ds = adjusted_scores(logit_fit)
    # 'tox': bounded [0, 1], lower is safer, logit-transformed
    y, cap_part, _ = _cell_draws(logit_fit, "m3", "tox")
    raws, ys = _scale(logit_fit, "tox")
    oriented_logit = -np.log(raws / (1 - raws))
    center, scale = oriented_logit.mean(), np.std(oriented_logit)
    np.testing.assert_allclose((oriented_logit - oriented_logit.mean()) / scale, ys)
    v = (y - cap_part) * scale + center
    expected = -(0 + expit(-v) * (1 - 0))
    assert float(ds.adjusted_median.sel(llm="m3", benchmark="tox")) == pytest.approx(
        np.median(expected)
    )
    assert np.all((-1 < expected) & (expected < 0))  # stays in the range
    # with the standardize transform the same benchmark is adjusted linearly
    y, cap_part, _ = _cell_draws(std_fit, "m3", "tox")
    lin = adjusted_scores(std_fit).adjusted_median.sel(llm="m3", benchmark="tox")
    assert float(lin) == pytest.approx(np.median(-0.3 - np.std(-raws) * cap_part))


def test_zero_loading_leaves_the_score_unchanged(logit_fit):
    dt = logit_fit.copy()
    post = dt["posterior"].to_dataset()
    post["loading"] = post["loading"].where(post["benchmark"] != "refuse", 0.0)
    dt["posterior"] = xr.DataTree(post)
    ds = adjusted_scores(dt)
    r = ds.sel(benchmark="refuse")
    observed = np.isfinite(r.raw_score.values)
    np.testing.assert_allclose(
        r.adjusted_median.values[observed], r.oriented_score.values[observed], rtol=1e-9
    )
    np.testing.assert_allclose(
        r.adjusted_hdi_low.values[observed], r.oriented_score.values[observed]
    )


def test_shape_missing_cells_and_selection(logit_fit):
    ds = adjusted_scores(logit_fit)
    assert list(ds["benchmark"].values) == ["refuse", "harm", "tox"]  # safety only
    assert ds["adjusted_median"].dims == ("llm", "benchmark")
    assert np.isnan(float(ds.adjusted_median.sel(llm="m3", benchmark="refuse")))
    assert np.isnan(float(ds.raw_score.sel(llm="m4", benchmark="harm")))
    assert int(np.isfinite(ds.adjusted_median).sum()) == 15
    assert ds["llm_name"].sel(llm="m1").item() == "m1"
    both = adjusted_scores(logit_fit, roles=("safety", "capability"))
    assert set(both["benchmark"].values) == set(WIDE.columns)
    one = adjusted_scores(logit_fit, benchmarks=["gen"])
    assert list(one["benchmark"].values) == ["gen"]
    with pytest.raises(ValueError, match="not in the fit"):
        adjusted_scores(logit_fit, benchmarks=["nope"])


def test_long_table(logit_fit):
    table = adjusted_table(adjusted_scores(logit_fit))
    assert tuple(table.columns) == CSV_COLUMNS
    assert len(table) == 15 and table[["llm", "benchmark"]].duplicated().sum() == 0
    assert list(pd.unique(table["benchmark"])) == ["refuse", "harm", "tox"]
    refuse = table[table["benchmark"] == "refuse"]
    assert refuse["adjusted_median"].is_monotonic_decreasing
    assert (table["adjusted_hdi_low"] <= table["adjusted_median"]).all()
    assert (table["adjusted_median"] <= table["adjusted_hdi_high"]).all()
    harm = table.set_index(["llm", "benchmark"]).loc[("m1", "harm")]
    assert harm["raw_score"] == 5.0 and harm["oriented_score"] == -5.0
    assert harm["direction"] == "lower" and harm["area"] == "bias"


def test_adjustment_removes_the_capability_trend():
    """At the true parameters, adjusted scores no longer track capability."""
    study, truth = simulate(200, 4, {"bias": 2}, loadings={"bias_00": 1.2}, seed=4)
    data = prepare_data(study)
    keys = list(data.coords["benchmark"])
    t = truth.sel(benchmark=keys, llm=data.coords["llm"])
    theta = t["capability"].values
    scale = data.scale.loc[keys].to_numpy()
    rep = lambda v, d: ((*SAMPLE_DIMS, d), np.broadcast_to(v, (1, 4, len(v))).copy())  # noqa: E731
    post = xr.Dataset(
        {
            "capability": rep(theta, "llm"),
            "loading": rep(t["loading"].values / scale, "benchmark"),
            "intercept": rep(np.zeros(len(keys)), "benchmark"),
        },
        coords={"llm": data.coords["llm"], "benchmark": keys},
    )
    dt = xr.DataTree.from_dict(
        {
            "posterior": post,
            "observed_data": xr.Dataset({"score": ("cell", data.y)}),
            "constant_data": constant_data(data),
        }
    )
    ds = adjusted_scores(dt, benchmarks=["bias_00"])
    observed = ds["oriented_score"].sel(benchmark="bias_00").values
    adjusted = ds["adjusted_median"].sel(benchmark="bias_00").values
    assert np.corrcoef(observed, theta)[0, 1] > 0.8
    assert abs(np.corrcoef(adjusted, theta)[0, 1]) < 0.25
    # the part removed is exactly loading * capability in oriented units
    np.testing.assert_allclose(
        observed - adjusted, t["loading"].sel(benchmark="bias_00").values * theta
    )


def test_plot_and_default_benchmark(logit_fit, tmp_path):
    ds = adjusted_scores(logit_fit)
    rho = np.abs(logit_fit["posterior"]["rho"].sel(benchmark=["refuse", "harm", "tox"]))
    expected = str(rho.median(SAMPLE_DIMS).idxmax().item())
    assert default_plot_benchmark(ds, logit_fit) == expected
    path = plot_adjusted(ds, "harm", tmp_path / "fig" / "harm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="not among"):
        plot_adjusted(ds, "acc", tmp_path / "x.png")


def _script():
    from safetywash.cli import main

    return lambda argv: main(["adjusted", *argv])


def test_script_writes_csv_and_figure(logit_fit, tmp_path, capsys):
    save_fit(logit_fit, tmp_path / "run" / "posterior.nc")
    out, fig = tmp_path / "adj.csv", tmp_path / "figs" / "adj.png"
    argv = [str(tmp_path / "run"), "--csv", str(out), "--figure", str(fig), "--benchmark", "tox"]
    assert _script()(argv) == 0
    table = pd.read_csv(out)
    assert tuple(table.columns) == CSV_COLUMNS and len(table) == 15
    expected = adjusted_table(adjusted_scores(logit_fit))
    np.testing.assert_allclose(table["adjusted_median"], expected["adjusted_median"])
    assert fig.is_file()
    printed = capsys.readouterr().out
    assert "Toxicity (tox)" in printed
    assert _script()([str(tmp_path / "run"), "--benchmark", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    # default CSV location: inside the run folder
    assert _script()([str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "adjusted_scores.csv").is_file()
    json.dumps(list(CSV_COLUMNS))
