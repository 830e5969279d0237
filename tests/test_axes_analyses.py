"""The analyses of a fit with more than one capability dimension.

One study made from two capability dimensions (``axes_study``) is fitted with K = 1 and
K = 2 once per session. What reads a fit's parameters (new-LLM scoring, LOO, adjusted
scores, predictive checks, benchmark comparisons, prior sensitivity) is checked against
numbers computed here straight from the posterior draws; what does not support more than
one dimension yet (scoring or planning a new benchmark, SBC) must refuse such a fit with a
message that says what to run instead.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import multivariate_normal

from axes_study import axes_fit
from safetywash.analysis.adjusted import adjusted_scores, default_plot_benchmark
from safetywash.analysis.calibration import round_dataset
from safetywash.analysis.cutposterior import new_benchmark_prior
from safetywash.analysis.design_text import benchmark_comparison_json, format_benchmark_comparison
from safetywash.analysis.designs import compare_benchmarks
from safetywash.analysis.intervals import SAMPLE_DIMS
from safetywash.analysis.latent import (
    benchmark_parameters,
    gaussian_latent_posterior,
    latent_prior,
)
from safetywash.analysis.loo import marginal_llm_log_likelihood
from safetywash.analysis.newbenchmark import score_benchmarks
from safetywash.analysis.newllm import format_new_llm, new_llm_json, score_new_llm
from safetywash.analysis.plan import plan_evaluation
from safetywash.analysis.ppc import replicate_scores
from safetywash.analysis.sbc import run_sbc
from safetywash.analysis.sensitivity import format_sensitivity, prior_sensitivity
from safetywash.analysis.structure_verdicts import (
    capability_dims_verdicts,
    format_structures,
    structure_verdicts,
    structures_json,
)
from safetywash.analysis.structures import compare_structures
from safetywash.cli import main
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import fitted_transform, save_fit
from safetywash.model.axes import AXIS_DIM
from safetywash.model.config import ModelConfig
from safetywash.model.likelihood import predictive_draws

ONE_DIMENSION = "supports fits with one capability dimension only, and this fit has 2"


@pytest.fixture(scope="module")
def k2(tmp_path_factory):
    return axes_fit(tmp_path_factory, 2)


@pytest.fixture(scope="module")
def k1(tmp_path_factory):
    return axes_fit(tmp_path_factory, 1)


@pytest.fixture(scope="module")
def runs(k1, k2, tmp_path_factory):
    """Both fits saved as run folders."""
    root = tmp_path_factory.mktemp("axes_runs")
    for name, (_, _, dt) in (("k1", k1), ("k2", k2)):
        save_fit(dt, root / name / "posterior.nc")
    return root


def _flat(da: xr.DataArray, *dims: str) -> np.ndarray:
    """Draws as ``(chain * draw, *dims)``, chain-major."""
    values = da.transpose(*SAMPLE_DIMS, *dims).values
    return values.reshape(-1, *values.shape[2:])


def _draws(dt):
    """The posterior's arrays, read here without the package's readers."""
    post = dt["posterior"]
    return {
        "intercept": _flat(post["intercept"], "benchmark"),
        "loading": _flat(post["loading"], "benchmark"),
        "sigma": _flat(post["residual_sd"], "benchmark"),
        "axis": _flat(post["axis_loading"], "benchmark", AXIS_DIM),
        "theta": _flat(post["capability"], "llm"),
        "u": _flat(post["axis_score"], "llm", AXIS_DIM),
    }


def _cells_of(dt, llm: int):
    const = dt["constant_data"]
    cells = np.flatnonzero(const["llm_index"].values == llm)
    return cells, const["benchmark_index"].values[cells]


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ------------------------------------------------------------------ latent vector, LOO


def test_latent_posterior_has_the_axes_as_unit_normal_factors(k2):
    _, _, dt = k2
    params = benchmark_parameters(dt)
    d = _draws(dt)
    y = dt["observed_data"]["score"].values
    assert params.axes == ["axis_2"] and params.n_latent == 2
    cells, b = _cells_of(dt, 7)
    n = len(d["loading"])
    prior_mean, prior_sd = latent_prior(params, np.zeros(n), np.ones(n))
    mean, cov, logp = gaussian_latent_posterior(
        y[cells], params.intercept[:, b], params.design(b), params.residual_sd[:, b],
        prior_mean, prior_sd,
    )  # fmt: skip
    for s in (0, 151, 399):
        # (theta, u) ~ N(0, I); y = a + W (theta, u) + noise: condition the joint Gaussian
        w = np.column_stack([d["loading"][s, b], d["axis"][s, b, 0]])
        cov_y = w @ w.T + np.diag(d["sigma"][s, b] ** 2)
        gain = w.T @ np.linalg.inv(cov_y)
        resid = y[cells] - d["intercept"][s, b]
        np.testing.assert_allclose(mean[s], gain @ resid, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(cov[s], np.eye(2) - gain @ w, rtol=1e-8, atol=1e-10)
        expected = multivariate_normal(d["intercept"][s, b], cov_y).logpdf(y[cells])
        assert logp[s] == pytest.approx(expected, rel=1e-9)


def test_llm_marginal_log_likelihood_integrates_the_axes_out(k2):
    _, _, dt = k2
    d = _draws(dt)
    y = dt["observed_data"]["score"].values
    marginal = marginal_llm_log_likelihood(dt)
    n_draw = dt["posterior"].sizes["draw"]
    for s, i in ((0, 0), (123, 5), (399, 42)):
        cells, b = _cells_of(dt, i)
        w = np.column_stack([d["loading"][s, b], d["axis"][s, b, 0]])
        cov = w @ w.T + np.diag(d["sigma"][s, b] ** 2)
        expected = multivariate_normal(d["intercept"][s, b], cov).logpdf(y[cells])
        chain, draw = divmod(s, n_draw)
        assert float(marginal.isel(chain=chain, draw=draw, llm=i)) == pytest.approx(expected)


# ------------------------------------------------------------------------------ new LLM


def test_new_llm_gets_its_axis_scores(k2):
    study, _, dt = k2
    wide = study.to_wide()
    fitted = dt["posterior"]["axis_score"].sel({AXIS_DIM: "axis_2"}).mean(SAMPLE_DIMS)
    names = list(wide.index[::5])
    scored = []
    for name in names:
        row = wide.loc[name].dropna()
        result = score_new_llm(dt, row, seed=1)
        scored.append(float(result["axis_score_median"].sel({AXIS_DIM: "axis_2"})))
    # an LLM scored as new lands where the fit put it on the second axis
    assert np.corrcoef(scored, fitted.sel(llm=names).values)[0, 1] > 0.9
    text = format_new_llm(result)
    assert "Further capability axes" in text and "axis_2" in text
    payload = new_llm_json(result)
    assert set(payload["capability_axes"]) == {"axis_2"}
    assert payload["capability_axes"]["axis_2"]["median"] == pytest.approx(scored[-1])


def test_new_llm_predictions_carry_the_axes(k2):
    study, truth, dt = k2
    far = int(np.abs(truth.attrs["u"]).argmax())  # the LLM furthest out on the second axis
    row = study.to_wide().loc[f"llm{far:02d}"].dropna()
    result = score_new_llm(dt, row.drop(["safe0", "safe3"], errors="ignore"), seed=4)
    d = _draws(dt)
    theta = result["capability"].values.ravel()
    u = result["axis_score"].values.reshape(-1)
    keys = [str(k) for k in result["benchmark"].values]
    transform = fitted_transform(dt)
    predicted = result["predicted"].values.reshape(len(theta), -1)
    y = transform.forward(predicted, transform.positions(keys))
    mu = d["intercept"] + d["loading"] * theta[:, None] + d["axis"][..., 0] * u[:, None]
    z2 = ((y - mu) / d["sigma"]) ** 2
    without = ((y - mu + d["axis"][..., 0] * u[:, None]) / d["sigma"]) ** 2
    # the predictions are the model's: mean + residual noise, the axis term included
    assert z2.mean() == pytest.approx(1.0, abs=0.08)
    assert without.mean() > 3


def test_score_llm_command_prints_and_writes_the_axes(k2, runs, tmp_path, capsys):
    study, _, _ = k2
    row = study.to_wide().iloc[0].dropna()
    csv = tmp_path / "new.csv"
    csv.write_text("benchmark,value\n" + "".join(f"{k},{v}\n" for k, v in row.items()))
    out = tmp_path / "out.json"
    assert main(["score-llm", str(runs / "k2"), "--scores", str(csv), "--json", str(out)]) == 0
    assert "Further capability axes" in capsys.readouterr().out
    assert set(json.loads(out.read_text())["capability_axes"]) == {"axis_2"}


# ------------------------------------------------------------------------- structures


@pytest.fixture(scope="module")
def dims_comparison(k1, k2):
    return compare_structures({"k1": k1[2], "k2": k2[2]}, allow_untrusted=True)


def test_extra_capability_dimension_is_supported_at_cell_and_llm_marginal(dims_comparison):
    ds = dims_comparison
    assert ds["capability_dims"].values.tolist() == [1, 2]
    for level in ("cell", "llm-marginal"):
        pair = {"fit": "k2", "other": "k1", "loo_method": level}
        d = float(ds["elpd_diff_by_level"].sel(pair))
        assert d > 2 * float(ds["elpd_diff_se_by_level"].sel(pair)), (level, d)
    (verdict,) = capability_dims_verdicts(ds)
    assert (verdict["richer"], verdict["simpler"]) == ("k2", "k1")
    assert verdict["supported"] and verdict["capability_dims"] == 2
    assert verdict["sentence"].startswith("2 capability dimensions are supported over 1: ")
    assert structure_verdicts(ds) == []
    text = format_structures(ds)
    assert verdict["sentence"] in text and "K: capability dimensions" in text
    payload = structures_json(ds)
    assert [f["capability_dims"] for f in payload["fits"]] == [1, 2]
    assert payload["capability_dims_verdicts"][0]["supported"]


def _fake_comparison(fits: dict[str, tuple[str, int]], elpd: dict[str, float]) -> xr.Dataset:
    """A comparison of fits ``name -> (factors, K)`` at one level with these ELPDs."""
    names = list(fits)
    values = np.array([elpd[n] for n in names])
    diff = values[:, None] - values[None, :]
    se = np.full(diff.shape, 1.0)
    level = ("fit", "other", "loo_method")
    return xr.Dataset(
        {
            "elpd_diff": (("fit", "other"), diff),
            "elpd_diff_se": (("fit", "other"), se),
            "elpd_diff_by_level": (level, diff[..., None]),
            "elpd_diff_se_by_level": (level, se[..., None]),
            "n_high_k": (("fit", "loo_method"), np.zeros((len(names), 1), dtype=int)),
            "n_points": ("loo_method", [60]),
            "good_k": ("loo_method", [0.7]),
        },
        coords={
            "fit": names,
            "other": names,
            "loo_method": ["llm-marginal"],
            "factors": ("fit", [fits[n][0] for n in names]),
            "capability_dims": ("fit", [fits[n][1] for n in names]),
            "trustworthy": ("fit", [True] * len(names)),
        },
        attrs={"method": "llm-marginal", "se_multiple": 2.0},
    )


def test_area_and_dimension_verdicts_compare_like_with_like():
    fits = {"k2": ("", 2), "bias": ("bias", 1), "one": ("", 1), "k3": ("", 3)}
    ds = _fake_comparison(fits, {"k2": 10.0, "bias": 5.0, "one": 0.0, "k3": 11.0})
    (area,) = structure_verdicts(ds)
    # the area factor is judged against the one-factor fit, not the two-dimension one
    assert (area["richer"], area["simpler"], area["elpd_diff"]) == ("bias", "one", 5.0)
    assert area["supported"]
    pairs = {(v["richer"], v["simpler"]): v for v in capability_dims_verdicts(ds)}
    assert set(pairs) == {("k2", "one"), ("k3", "k2")}
    assert pairs[("k2", "one")]["supported"] and not pairs[("k3", "k2")]["supported"]
    assert pairs[("k3", "k2")]["sentence"].startswith("3 capability dimensions are not supported")
    del fits["k2"]
    ds = _fake_comparison(fits, {"bias": 5.0, "one": 0.0, "k3": 11.0})
    (joint,) = capability_dims_verdicts(ds)
    assert (
        joint["simpler"] == "one"
        and "(jointly: the fits differ by 2 dimensions)" in (joint["sentence"])
    )


def test_compare_command_shows_k_and_the_verdict(runs, tmp_path, capsys):
    out = tmp_path / "loo.json"
    argv = ["compare", "--fits", str(runs / "k1"), str(runs / "k2"), "--loo", "llm-marginal"]
    assert main([*argv, "--allow-untrusted", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 capability dimensions are supported over 1" in text
    payload = json.loads(out.read_text())
    assert {f["name"]: f["capability_dims"] for f in payload["fits"]} == {"k1": 1, "k2": 2}
    assert payload["loo_method"] == "llm-marginal"


# ------------------------------------------------------------------ ppc and adjusted


def test_replicates_carry_the_axes(k2):
    _, _, dt = k2
    d = _draws(dt)
    const = dt["constant_data"]
    i, b = const["llm_index"].values, const["benchmark_index"].values
    rep = replicate_scores(dt, max_draws=None, seed=9)
    mu = (
        d["intercept"][:, b]
        + d["loading"][:, b] * d["theta"][:, i]
        + (d["axis"][:, b, :] * d["u"][:, i, :]).sum(-1)
    )
    expected = predictive_draws(mu, d["sigma"][:, b], np.random.default_rng(9))
    np.testing.assert_allclose(rep.values, expected, rtol=1e-9, atol=1e-12)


def test_adjusted_scores_remove_every_capability_dimension(k2):
    _, _, dt = k2
    d = _draws(dt)
    const = dt["constant_data"]
    i, b = const["llm_index"].values, const["benchmark_index"].values
    y = dt["observed_data"]["score"].values
    part = d["loading"][:, b] * d["theta"][:, i] + (d["axis"][:, b, :] * d["u"][:, i, :]).sum(-1)
    adjusted = np.median(y - part, axis=0)
    above = (y > d["intercept"][:, b] + part).mean(axis=0)
    ds = adjusted_scores(dt)
    keys = list(dt["posterior"]["benchmark"].values)
    llms = list(dt["posterior"]["llm"].values)
    for c in np.flatnonzero(np.isin(b, [keys.index(k) for k in ds["benchmark"].values]))[::7]:
        cell = ds.sel(llm=llms[i[c]], benchmark=keys[b[c]])
        assert float(cell["adjusted_std_median"]) == pytest.approx(adjusted[c], rel=1e-9)
        assert float(cell["p_above_capability_prediction"]) == pytest.approx(above[c])
    assert ds.attrs["capability_dims"] == 2 and "capability axes" in ds.attrs["definition"]
    r = dt["posterior"]["subspace_r"].sel(benchmark=ds["benchmark"].values).median(SAMPLE_DIMS)
    assert default_plot_benchmark(ds, dt) == str(r["benchmark"].values[int(np.argmax(r.values))])


# --------------------------------------------------------------------------- designs


def test_benchmark_comparison_adds_the_subspace_r(k2):
    _, _, dt = k2
    keys = ["safe0", "safe4", "cap2"]
    ds = compare_benchmarks(dt, keys, tau=0.5)
    post = dt["posterior"]
    r = {k: _flat(post["subspace_r"].sel(benchmark=k)) for k in keys}
    rho = {k: np.abs(_flat(post["rho"].sel(benchmark=k))) for k in keys}
    for a in keys:
        assert float(ds["p_separable_subspace"].sel(benchmark=a)) == pytest.approx(
            (r[a] < 0.5).mean()
        )
        assert float(ds["subspace_r_median"].sel(benchmark=a)) == pytest.approx(np.median(r[a]))
        assert float(ds["p_separable"].sel(benchmark=a)) == pytest.approx((rho[a] < 0.5).mean())
        for b in keys:
            if a != b:
                p = float(ds["prob_less_entangled_subspace"].sel(benchmark=a, other=b))
                assert p == pytest.approx((r[a] < r[b]).mean())
    text = format_benchmark_comparison(ds)
    assert "P(R<0.5)" in text and "By R (all 2 capability dimensions)" in text
    payload = benchmark_comparison_json(compare_benchmarks(dt, keys[:2]))
    sub = payload["subspace"]
    assert sub["capability_dims"] == 2
    assert sub["prob_first_less_entangled"] == pytest.approx((r["safe0"] < r["safe4"]).mean())
    assert sub["difference_median"] == pytest.approx(np.median(r["safe0"] - r["safe4"]))


def test_one_dimension_comparison_has_no_subspace(k1):
    ds = compare_benchmarks(k1[2], ["safe0", "safe4"])
    assert "subspace_r_mean" not in ds and "subspace" not in benchmark_comparison_json(ds)
    assert "P(R<" not in format_benchmark_comparison(ds)


# ---------------------------------------------------------------------------- refused


def _new_benchmark(study: BenchmarkStudy) -> BenchmarkStudy:
    """A new safety benchmark scored on 20 LLMs of the study."""
    llms = list(study.llms.index[:20])
    rng = np.random.default_rng(0)
    scores = {"llm": llms, "benchmark": "fresh", "value": rng.normal(size=len(llms))}
    catalog = {"key": ["fresh"], "role": ["safety"], "area": ["misuse"], "direction": ["higher"]}
    return BenchmarkStudy.from_frames(
        pd.DataFrame(scores), None, pd.DataFrame({**catalog, "scale": ["score"]})
    )


def test_new_benchmark_scoring_and_planning_refuse_two_dimensions(k2):
    study, _, dt = k2
    with pytest.raises(ValueError, match=ONE_DIMENSION) as err:
        score_benchmarks(dt, _new_benchmark(study))
    assert "--capability-dims 1" in str(err.value) and "--add-scores" in str(err.value)
    with pytest.raises(ValueError, match=ONE_DIMENSION):
        plan_evaluation(dt, ns=(4,), n_simulations=10)
    with pytest.raises(ValueError, match=ONE_DIMENSION):
        new_benchmark_prior(dt, None, rng=np.random.default_rng(0))


def test_score_benchmark_and_plan_commands_refuse_two_dimensions(k2, runs, tmp_path, capsys):
    study, _, _ = k2
    csv = tmp_path / "fresh.csv"
    rows = "".join(f"{n},{v:.3f}\n" for v, n in enumerate(study.llms.index[:12]))
    csv.write_text("llm,fresh\n" + rows)
    run = str(runs / "k2")
    assert main(["score-benchmark", run, "--scores", str(csv), "--safety", "fresh=misuse"]) == 2
    line = _error(capsys)
    assert "scoring a new benchmark without refitting " + ONE_DIMENSION in line
    assert "--capability-dims 1" in line and "--add-scores NEW.csv --capability-dims 2" in line
    assert capsys.readouterr().out == ""
    assert main(["plan", run, "--n", "4", "--simulations", "10"]) == 2
    assert "planning a new benchmark's evaluation " + ONE_DIMENSION in _error(capsys)


def test_sbc_refuses_more_than_one_capability_dimension(k2):
    with pytest.raises(ValueError, match="one capability dimension only, not capability_dims=2"):
        run_sbc(1, config=ModelConfig(capability_dims=2))
    with pytest.raises(ValueError, match="this fit has 2: fit the round with capability_dims=1"):
        round_dataset(k2[0], None, k2[2])


# ------------------------------------------------------------------------- sensitivity


def test_sensitivity_reads_subspace_separability(k1, k2):
    _, _, dt = k2
    ds = prior_sensitivity(dt, {})
    r = dt["posterior"]["subspace_r"]
    expected = (r < 0.5).mean(SAMPLE_DIMS)
    np.testing.assert_allclose(ds["p_separable"].isel(prior_scale=0).values, expected.values)
    assert ds.attrs["capability_dims"] == 2 and "P = P(R < 0.5)" in format_sensitivity(ds)
    wider = k1[2].copy()
    wider.attrs["model_config"] = ModelConfig(prior_scale=2.0).to_json()
    with pytest.raises(ValueError, match=r"prior scale 2\.0 has 1 capability dimensions"):
        prior_sensitivity(dt, {2.0: wider})


@pytest.mark.slow
def test_sensitivity_refits_keep_the_capability_dimensions(k2):
    from safetywash.analysis.sensitivity import refit_prior_scales
    from safetywash.inference.fitfile import fit_config
    from safetywash.inference.settings import SamplerSettings

    _, _, dt = k2
    settings = SamplerSettings(draws=150, tune=200, chains=2, seed=2)
    refits = refit_prior_scales(dt, [2.0], settings=settings)
    refit = refits[2.0]
    assert fit_config(refit).capability_dims == 2 and "subspace_r" in refit["posterior"]
    ds = prior_sensitivity(dt, refits)
    expected = (refit["posterior"]["subspace_r"] < 0.5).mean(SAMPLE_DIMS)
    np.testing.assert_allclose(ds["p_separable"].sel(prior_scale=2.0).values, expected.values)


# ----------------------------------------------------------------- marginal, K = 3 (slow)


@pytest.mark.slow
def test_marginal_fit_stores_what_llm_marginal_loo_computes(k1, k2, tmp_path_factory):
    _, _, marginal = axes_fit(tmp_path_factory, 2, capability="marginal")
    stored = marginal["log_likelihood"]["score"].transpose(*SAMPLE_DIMS, "llm").values
    np.testing.assert_allclose(
        marginal_llm_log_likelihood(marginal).values, stored, rtol=1e-5, atol=1e-4
    )
    ds = compare_structures({"k1": k1[2], "k2": marginal}, allow_untrusted=True)
    assert list(ds["loo_method"].values) == ["llm-marginal"]
    sampled = compare_structures({"k1": k1[2], "k2": k2[2]}, method="llm-marginal")
    # the same model sampled or integrated: the same predictive density, nearly
    assert float(ds["elpd"].sel(fit="k2").squeeze()) == pytest.approx(
        float(sampled["elpd"].sel(fit="k2").squeeze()), abs=10.0
    )


@pytest.mark.slow
def test_three_dimensions_against_two_and_one(k1, k2, tmp_path_factory):
    _, _, k3 = axes_fit(tmp_path_factory, 3)
    ds = compare_structures({"k1": k1[2], "k2": k2[2], "k3": k3}, allow_untrusted=True)
    pairs = {(v["richer"], v["simpler"]): v for v in capability_dims_verdicts(ds)}
    assert set(pairs) == {("k2", "k1"), ("k3", "k2")}
    assert pairs[("k2", "k1")]["supported"]
    # the truth has two dimensions: a third is not supported
    assert not pairs[("k3", "k2")]["supported"]
    params = benchmark_parameters(k3)
    assert params.axes == ["axis_2", "axis_3"] and params.n_latent == 3
    d = _draws(k3)
    y = k3["observed_data"]["score"].values
    cells, b = _cells_of(k3, 11)
    w = np.column_stack([d["loading"][5, b], d["axis"][5, b, :]])
    cov = w @ w.T + np.diag(d["sigma"][5, b] ** 2)
    expected = multivariate_normal(d["intercept"][5, b], cov).logpdf(y[cells])
    got = marginal_llm_log_likelihood(k3).isel(chain=0, draw=5, llm=11)
    assert float(got) == pytest.approx(expected)
