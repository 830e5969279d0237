"""Scoring a new LLM against a fitted study without refitting (``safetywash.analysis.newllm``).

Most checks need no sampling: a *point-mass fit* puts every posterior draw at the true
parameters of a simulated study (re-expressed on the model's standardised scale), so the
new LLM's conjugate posterior is exact and its calibration can be checked against the
truth over hundreds of LLMs. One real fit (shared with the other test modules of this
session through a file in the session's temporary folder) checks the held-out case.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import multivariate_normal

from safetywash.analysis.latent import benchmark_parameters, gaussian_latent_posterior
from safetywash.analysis.newllm import (
    format_new_llm,
    new_llm_json,
    new_llm_table,
    score_new_llm,
)
from safetywash.analysis.newscores import read_new_scores, validate_new_scores
from safetywash.data.errors import StudyValidationError
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import FitInfo, constant_data, fitted_transform, save_fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.simulate import simulate
from safetywash.model.transform import LOGIT_EPS
from shared_fits import shared_fit

SAMPLE_DIMS = ("chain", "draw")


def point_mass_fit(
    study: BenchmarkStudy,
    truth: xr.Dataset,
    *,
    chains: int = 2,
    draws: int = 20,
    config: ModelConfig | None = None,
) -> xr.DataTree:
    """A fit-shaped DataTree whose every draw is the simulation's truth.

    The truth is re-expressed as the model parameterises it: capability standardised to
    mean 0 and SD 1 (intercepts and loadings absorb the shift and scale), then every
    benchmark parameter divided by the benchmark's standardisation scale.
    """
    config = config or ModelConfig(
        factors=tuple(truth["factor"].values) if "factor" in truth else ()
    )
    data = prepare_data(study, config)
    keys = list(data.coords["benchmark"])
    llms = list(data.coords["llm"])
    t = truth.sel(benchmark=keys, llm=llms)
    theta = t["capability"].values
    m, s = theta.mean(), theta.std()
    center, scale = data.center.loc[keys].to_numpy(), data.scale.loc[keys].to_numpy()
    intercept = (t["intercept"].values + t["loading"].values * m - center) / scale
    loading = t["loading"].values * s / scale
    sigma = t["residual_sd"].values / scale
    gamma = t["factor_loading"].values / scale
    rho = loading / np.sqrt(loading**2 + gamma**2 + sigma**2)

    def rep(values, dims):
        arr = np.broadcast_to(values, (chains, draws, *np.shape(values))).copy()
        return ((*SAMPLE_DIMS, *dims), arr)

    post = xr.Dataset(
        {
            "capability": rep((theta - m) / s, ("llm",)),
            "intercept": rep(intercept, ("benchmark",)),
            "loading": rep(loading, ("benchmark",)),
            "residual_sd": rep(sigma, ("benchmark",)),
            "rho": rep(rho, ("benchmark",)),
        },
        coords={
            "chain": np.arange(chains),
            "draw": np.arange(draws),
            "benchmark": keys,
            "llm": llms,
        },
    )
    if data.factor_keys:
        pos = [keys.index(k) for k in data.factor_keys]
        post["factor_loading"] = rep(gamma[pos], ("factor_benchmark",))
        post["area_factor"] = rep(t["area_factor"].values, ("llm", "factor"))
        post = post.assign_coords(factor_benchmark=data.factor_keys, factor=data.factor_names)
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
            excluded_benchmarks=("bias_99",),
        ).to_attrs()
    )
    return dt


@pytest.fixture(scope="module")
def truth_study():
    """200 LLMs, no missing cells, a bias factor: the truth-based calibration study."""
    study, truth = simulate(
        n_llms=200,
        n_capability=5,
        safety={"bias": 3, "alignment": 3},
        factor_areas=["bias"],
        seed=21,
    )
    # 1000 draws: the intervals are quantiles of one predictive draw per posterior draw
    return study, truth, point_mass_fit(study, truth, draws=500)


@pytest.fixture(scope="module")
def small_truth():
    study, truth = simulate(n_llms=12, n_capability=3, safety={"alignment": 2}, seed=2)
    return study, truth, point_mass_fit(study, truth)


# --------------------------------------------------------------------------- Gaussian algebra


def test_conjugate_posterior_matches_brute_force():
    rng = np.random.default_rng(0)
    n_s, n, k = 5, 6, 2
    y = rng.normal(size=n)
    a = rng.normal(size=(n_s, n))
    w = rng.normal(size=(n_s, n, k))
    sig = rng.uniform(0.3, 1.5, size=(n_s, n))
    m = rng.normal(size=(n_s, k))
    sd = rng.uniform(0.5, 2, size=(n_s, k))
    mean, cov, logp = gaussian_latent_posterior(y, a, w, sig, m, sd)
    for s in range(n_s):
        prior_cov = np.diag(sd[s] ** 2)
        noise = np.diag(sig[s] ** 2)
        marginal_cov = noise + w[s] @ prior_cov @ w[s].T
        expected = multivariate_normal(a[s] + w[s] @ m[s], marginal_cov).logpdf(y)
        assert logp[s] == pytest.approx(expected, rel=1e-10)
        gain = prior_cov @ w[s].T @ np.linalg.inv(marginal_cov)
        np.testing.assert_allclose(mean[s], m[s] + gain @ (y - a[s] - w[s] @ m[s]), rtol=1e-9)
        np.testing.assert_allclose(cov[s], prior_cov - gain @ w[s] @ prior_cov, atol=1e-12)


def test_scale_maps_round_trip_on_the_fit(truth_study):
    _, _, dt = truth_study
    transform = fitted_transform(dt)
    const = dt["constant_data"]
    b = const["benchmark_index"].values
    y = transform.forward(const["raw_value"].values, b)
    np.testing.assert_allclose(y, dt["observed_data"]["score"].values, atol=1e-12)
    back = transform.inverse(y, b, clip=True)
    np.testing.assert_allclose(back, const["raw_value"].values, atol=1e-9)


def test_fit_without_its_transform_is_refused(small_truth):
    """A fit must carry its score transform: none is reconstructed from the raw scores."""
    study, _, dt = small_truth
    tampered = dt.copy()
    tampered["constant_data"] = xr.DataTree(
        dt["constant_data"].to_dataset().drop_vars("transform_sd")
    )
    with pytest.raises(ValueError, match="transform_sd"):
        score_new_llm(tampered, study.to_wide().iloc[0][["cap00"]])


@pytest.mark.filterwarnings("ignore:(divide by zero|invalid value):RuntimeWarning")
def test_logit_scale_maps_reproduce_prepare_data(real_study):
    """On the real study, with bounded benchmarks logit-transformed (no sampling)."""
    study = real_study("chat")
    config = ModelConfig(transform="logit")
    data = prepare_data(study, config)
    dt = xr.DataTree.from_dict(
        {
            "constant_data": constant_data(data),
            "observed_data": xr.Dataset({"score": ("cell", data.y)}),
        }
    )
    transform = fitted_transform(dt)
    assert transform.logit.any() and not transform.logit.all()
    np.testing.assert_allclose(transform.scale, data.scale.to_numpy(), rtol=1e-12)
    b = data.benchmark_idx
    # benchmarks whose every score lies below the chance floor have no spread on the logit
    # scale (a library issue, reported): compare the finite cells only
    finite = np.isfinite(data.y)
    assert finite.mean() > 0.9
    y = transform.forward(data.study.scores["value"].to_numpy(), b)
    np.testing.assert_allclose(y[finite], data.y[finite], atol=1e-9)
    # inverse: exact except where the logit clipped the share at its bounds
    raw = dt["constant_data"]["raw_value"].values
    back = transform.inverse(data.y, b, clip=True)
    floor, upper = transform.floor[b], transform.upper[b]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (raw - floor) / (upper - floor)
    inside = finite & (~transform.logit[b] | (np.abs(share - 0.5) < 0.5 - LOGIT_EPS))
    np.testing.assert_allclose(back[inside], raw[inside], rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------- calibration


def _held_out_check(dt, study, truth, give):
    """Score every LLM from the benchmarks in ``give``; return coverage figures."""
    wide = study.to_wide()
    theta = truth["capability"].sel(llm=wide.index).values
    theta_std = (theta - theta.mean()) / theta.std()
    covered, total, theta_in, z = 0, 0, 0, []
    for i, llm in enumerate(wide.index):
        row = wide.loc[llm].dropna()
        result = score_new_llm(dt, row[row.index.isin(give)], seed=i)
        held = row[~row.index.isin(give)]
        low = result["predicted_low"].sel(benchmark=held.index).values
        high = result["predicted_high"].sel(benchmark=held.index).values
        covered += int(((low <= held.values) & (held.values <= high)).sum())
        total += len(held)
        draws = result["capability"].values.ravel()
        theta_in += int(
            float(result.capability_low) <= theta_std[i] <= float(result.capability_high)
        )
        z.append((theta_std[i] - draws.mean()) / draws.std())
    return covered / total, theta_in / len(wide), np.array(z)


def test_new_llm_predictions_are_calibrated_against_the_truth(truth_study):
    study, truth, dt = truth_study
    give = ["cap00", "cap01", "cap02", "cap03", "cap04", "alignment_00", "bias_00"]
    coverage, theta_coverage, z = _held_out_check(dt, study, truth, give)
    detail = f"coverage {coverage:.3f}, theta coverage {theta_coverage:.3f}, z sd {z.std():.2f}"
    assert 0.86 <= coverage <= 0.94, detail  # 800 held-out cells, 90% intervals
    assert 0.83 <= theta_coverage <= 0.96, detail  # 200 LLMs
    assert abs(z.mean()) < 0.2 and 0.85 < z.std() < 1.15, detail


def test_bias_factor_is_used_for_prediction(truth_study):
    """Giving one bias score narrows the other bias predictions (shared area factor)."""
    study, _, dt = truth_study
    row = study.to_wide().iloc[0]
    caps = [f"cap{j:02d}" for j in range(5)]
    without = score_new_llm(dt, row[caps])
    with_bias = score_new_llm(dt, row[[*caps, "bias_00"]])
    width = lambda r: (r.predicted_high - r.predicted_low).sel(benchmark=["bias_01", "bias_02"])  # noqa: E731
    assert np.all(width(with_bias).values < width(without).values)
    assert "area_factor" in with_bias and with_bias.sizes["factor"] == 1
    # alignment benchmarks have no factor: their width barely changes
    w0 = float((without.predicted_high - without.predicted_low).sel(benchmark="alignment_01"))
    w1 = float((with_bias.predicted_high - with_bias.predicted_low).sel(benchmark="alignment_01"))
    assert w1 == pytest.approx(w0, rel=0.15)


def test_more_scores_pin_capability_down(small_truth):
    study, _, dt = small_truth
    row = study.to_wide().iloc[3]
    one = score_new_llm(dt, row[["cap00"]])
    allcaps = score_new_llm(dt, row[["cap00", "cap01", "cap02"]])
    spread = lambda r: float(r.capability_high - r.capability_low)  # noqa: E731
    assert spread(allcaps) < spread(one)
    assert bool(allcaps.is_observed.sel(benchmark="cap01"))
    assert not bool(one.is_observed.sel(benchmark="cap01"))


def test_result_structure_and_json(small_truth):
    study, _, dt = small_truth
    row = study.to_wide().iloc[0]
    result = score_new_llm(dt, row[["cap00", "alignment_00"]], ci_prob=0.8, seed=3)
    assert result["capability"].dims == SAMPLE_DIMS
    assert result["predicted"].dims == (*SAMPLE_DIMS, "benchmark")
    assert result.attrs["ci_prob"] == 0.8 and result.attrs["population"] == "chat"
    draws = result["predicted"].sel(benchmark="cap01").values.ravel()
    assert float(result.predicted_low.sel(benchmark="cap01")) == pytest.approx(
        np.quantile(draws, 0.1)
    )
    payload = new_llm_json(result)
    json.dumps(payload)
    assert {p["benchmark"] for p in payload["predictions"]} == {"cap01", "cap02", "alignment_01"}
    assert {p["benchmark"] for p in payload["observed"]} == {"cap00", "alignment_00"}
    assert 0 <= payload["capability"]["share_of_fitted_llms_below"] <= 1
    again = score_new_llm(dt, row[["cap00", "alignment_00"]], ci_prob=0.8, seed=3)
    np.testing.assert_array_equal(again["capability"].values, result["capability"].values)


# --------------------------------------------------------------------------- a real fit


@pytest.fixture(scope="module")
def real_fit(tmp_path_factory):
    return shared_fit(tmp_path_factory)


def test_held_out_scores_of_a_fitted_llm(real_fit):
    """An LLM of the fit, given half of its scores: held-out scores and theta recovered."""
    study, _, dt = real_fit
    wide = study.to_wide()
    fitted = dt["posterior"]["capability"]
    rng = np.random.default_rng(5)
    covered, total, errors = 0, 0, []
    for llm in wide.index[::4]:
        row = wide.loc[llm].dropna()
        give = rng.permutation(row.index)[: len(row) // 2]
        result = score_new_llm(dt, row[give], seed=1)
        held = row.drop(give)
        low = result["predicted_low"].sel(benchmark=held.index).values
        high = result["predicted_high"].sel(benchmark=held.index).values
        covered += int(((low <= held.values) & (held.values <= high)).sum())
        total += len(held)
        sd = float(result["capability"].std())
        errors.append((float(result.capability_median) - float(fitted.sel(llm=llm).mean())) / sd)
    assert covered / total >= 0.8, (covered, total)
    assert np.max(np.abs(errors)) < 2.5, errors  # within the new posterior's spread


# --------------------------------------------------------------------------- input validation


def _scores(text: str, write_csv) -> pd.DataFrame:
    return read_new_scores(write_csv("new.csv", text))


def test_valid_scores_in_fit_order(small_truth, write_csv):
    _, _, dt = small_truth
    values = validate_new_scores(
        _scores("benchmark,value\nalignment_00,0.5\ncap01, 1.25\n", write_csv), dt
    )
    assert list(values.index) == ["cap01", "alignment_00"]
    assert values["cap01"] == 1.25


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("benchmark,value\ncap00,1\ncap0l,2\n", 3, "unknown benchmark 'cap0l'; close matches"),
        ("benchmark,value\ncap00,1\ncap01,2\ncap00,3\n", 4, "given twice (first on line 2)"),
        ("benchmark,value\ncap00,abc\n", 2, "'abc' is not a finite number"),
        ("benchmark,value\ncap00,\n", 2, "missing value"),
        ("benchmark,value\ncap00,inf\n", 2, "not a finite number"),
        ("benchmark,value\nbias_99,1\n", 2, "left out of this fit"),
        # a blank line still counts: the bad row is on line 4 of the file
        ("benchmark,value\ncap00,1\n\ncap01,abc\n", 4, "'abc' is not a finite number"),
    ],
)
def test_bad_scores_name_the_line(small_truth, write_csv, text, line, message):
    _, _, dt = small_truth
    with pytest.raises(StudyValidationError) as err:
        validate_new_scores(_scores(text, write_csv), dt, source="new.csv")
    assert err.value.line == line
    assert message in str(err.value) and "new.csv" in str(err.value)


def test_bad_header_and_empty_file(small_truth, write_csv):
    _, _, dt = small_truth
    with pytest.raises(StudyValidationError, match="benchmark,value"):
        read_new_scores(write_csv("bad.csv", "bench,score\ncap00,1\n"))
    with pytest.raises(StudyValidationError, match="no scores"):
        validate_new_scores(_scores("benchmark,value\n", write_csv), dt)


def test_score_file_encoding_is_named(small_truth, write_csv, tmp_path):
    _, _, dt = small_truth
    path = tmp_path / "latin.csv"
    path.write_bytes("benchmark,value\ncap00,1\ncap01,2\xe9\n".encode("latin-1"))
    with pytest.raises(StudyValidationError) as err:
        read_new_scores(path)
    assert err.value.line == 3 and "latin.csv" in str(err.value) and "UTF-8" in str(err.value)
    with pytest.raises(StudyValidationError, match="finite number"):
        validate_new_scores(read_new_scores(path, encoding="latin-1"), dt)


def test_out_of_range_value(write_csv):
    scores = pd.DataFrame(
        {
            "llm": np.repeat(["a", "b", "c", "d"], 2),
            "benchmark": ["acc", "s"] * 4,
            "value": [0.2, 1.0, 0.5, 2.0, 0.7, 0.5, 0.9, 3.0],
        }
    )
    catalog = pd.DataFrame(
        {
            "key": ["acc", "s"],
            "role": ["capability", "safety"],
            "area": ["capability", "bias"],
            "direction": ["higher", "lower"],
            "lower": [0.0, np.nan],
            "upper": [1.0, np.nan],
        }
    )
    study = BenchmarkStudy.from_frames(scores, None, catalog)
    data = prepare_data(study)
    dt = xr.DataTree.from_dict({"constant_data": constant_data(data)})
    dt.attrs["model_config"] = ModelConfig().to_json()
    with pytest.raises(StudyValidationError, match=r"outside the declared range \[0, 1\]"):
        validate_new_scores(_scores("benchmark,value\nacc,1.5\n", write_csv), dt)


# --------------------------------------------------------------------------- script


def _script():
    from safetywash.cli import main

    return lambda argv: main(["score-llm", *argv])


def test_script_scores_and_writes_json(small_truth, tmp_path, capsys):
    study, _, dt = small_truth
    run = tmp_path / "run"
    save_fit(dt, run / "posterior.nc")
    row = study.to_wide().iloc[2]
    csv = tmp_path / "new.csv"
    csv.write_text(f"benchmark,value\ncap00,{row['cap00']}\nalignment_01,{row['alignment_01']}\n")
    out = tmp_path / "out.json"
    assert _script()([str(run), "--scores", str(csv), "--json", str(out), "--name", "X"]) == 0
    text = capsys.readouterr().out
    assert "Capability of X" in text and "alignment_00" in text  # a predicted benchmark
    payload = json.loads(out.read_text())
    expected = new_llm_json(score_new_llm(dt, row[["cap00", "alignment_01"]], seed=0))
    assert payload["capability"] == expected["capability"]
    assert [p["benchmark"] for p in payload["predictions"]] == [
        p["benchmark"] for p in expected["predictions"]
    ]


def test_console_output_shows_given_scores_against_their_prediction(small_truth):
    study, _, dt = small_truth
    row = study.to_wide().iloc[2][["cap00", "alignment_01"]].copy()
    result = score_new_llm(dt, row, seed=0)
    text = format_new_llm(result, name="X")
    given = text.split("Scores given vs what its capability predicts")[1].split("Predicted")[0]
    table = new_llm_table(result).set_index("benchmark")
    for key in ("cap00", "alignment_01"):
        r = table.loc[key]
        where = (
            "above"
            if r.observed > r.predicted_high
            else ("below" if r.observed < r.predicted_low else "within")
        )
        line = next(x for x in given.splitlines() if x.strip().startswith(r.display_name))
        assert f"{r.observed:.4g}" in line and f"{r.predicted_median:.4g}" in line
        assert f": {where} " in line
    # a score far above anything capability predicts is reported as such
    row["alignment_01"] = float(table.loc["alignment_01", "predicted_high"]) + 100.0
    far = new_llm_table(score_new_llm(dt, row, seed=0)).set_index("benchmark")
    assert far.loc["alignment_01", "observed"] > far.loc["alignment_01", "predicted_high"]
    assert ": above " in format_new_llm(score_new_llm(dt, row, seed=0))


def test_script_names_a_non_utf8_score_file(small_truth, tmp_path, capsys):
    study, _, dt = small_truth
    save_fit(dt, tmp_path / "posterior.nc")
    row = study.to_wide().iloc[2]
    csv = tmp_path / "latin.csv"
    csv.write_bytes(f"benchmark,value\n\ncap00,{row['cap00']}\n# caf\xe9,1\n".encode("latin-1"))
    assert _script()([str(tmp_path), "--scores", str(csv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert "latin.csv" in err[0] and "line 4" in err[0] and "UTF-8" in err[0]
    assert _script()([str(tmp_path), "--scores", str(csv), "--encoding", "latin-1"]) == 2
    assert "unknown benchmark '# café'" in capsys.readouterr().err


def test_script_reports_bad_input(small_truth, tmp_path, capsys):
    _, _, dt = small_truth
    save_fit(dt, tmp_path / "posterior.nc")
    csv = tmp_path / "new.csv"
    csv.write_text("benchmark,value\ncap00,0.1\ncap00,0.2\n")
    assert _script()([str(tmp_path), "--scores", str(csv)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "given twice" in err


def test_parameters_of_a_factor_fit(truth_study):
    _, _, dt = truth_study
    params = benchmark_parameters(dt)
    assert params.factors == ["bias"]
    bias = [i for i, k in enumerate(params.benchmarks) if k.startswith("bias")]
    assert np.all(params.factor_of[bias] == 0)
    assert np.all(params.factor_loading[:, bias] > 0)
    others = [i for i in range(len(params.benchmarks)) if i not in bias]
    assert np.all(params.factor_of[others] == -1) and np.all(params.factor_loading[:, others] == 0)
    design = params.design(np.array(bias[:1] + others[:1]))
    assert design.shape == (1000, 2, 2) and np.all(design[:, 1, 1] == 0)
