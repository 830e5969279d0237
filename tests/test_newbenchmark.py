"""Scoring a new safety benchmark without refitting (``safetywash.analysis.newbenchmark``).

The cut posterior of one capability draw is checked against brute-force quadrature over
(intercept, loading, log residual SD); the whole scorer against a refit that includes the
benchmark (a simulated study, few draws: the small version of
``benchmarks/bench_score_benchmark.py``); the command against the library.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

import safetywash.analysis.cutposterior as cutposterior
from safetywash.analysis.cutposterior import BenchmarkPrior, cut_posterior, new_benchmark_prior
from safetywash.analysis.newbenchmark import (
    align_to_fit,
    benchmark_scores_json,
    score_benchmarks,
)
from safetywash.analysis.separability import separability
from safetywash.cli import main
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import save_fit
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.simulate import simulate
from shared_fits import shared_fit

#: A safety benchmark of the shared simulated study (true rho 0.52), scored as a new one.
LEFT_OUT = "alignment_00"


# --------------------------------------------------------------------------- the cut posterior


def _quadrature(theta, y, prior: BenchmarkPrior):
    """Posterior moments by brute force over a 3-D grid (intercept, loading, log sigma)."""
    a = np.linspace(-1.5, 1.5, 121)[:, None, None]
    lam = np.linspace(-1.0, 2.5, 161)[None, :, None]
    log_sd = np.linspace(np.log(0.05), np.log(2.0), 161)[None, None, :]
    sd = np.exp(log_sd)
    resid2 = sum((yi - a - lam * ti) ** 2 for ti, yi in zip(theta, y, strict=True))
    logp = (
        -len(y) * log_sd
        - 0.5 * resid2 / sd**2
        - 0.5 * (a / prior.intercept_sd) ** 2
        - 0.5 * ((lam - prior.loading_loc[0]) / prior.loading_sd[0]) ** 2
        - 0.5 * ((log_sd - prior.log_sd_loc[0]) / prior.log_sd_sd[0]) ** 2
    )
    w = np.exp(logp - logsumexp(logp))
    rho = lam / np.sqrt(lam**2 + sd**2)
    out = {}
    for name, value in (("loading", lam), ("residual_sd", sd), ("rho", rho)):
        mean = float((w * value).sum())
        out[name] = (mean, float(np.sqrt((w * (value - mean) ** 2).sum())))
    out["p_separable"] = float((w * (np.abs(rho) < 0.5)).sum())
    return out


def _prior(n: int, loc: float, sd: float) -> BenchmarkPrior:
    return BenchmarkPrior(
        loading_loc=np.full(n, loc),
        loading_sd=np.full(n, sd),
        log_sd_loc=np.full(n, np.log(0.5)),
        log_sd_sd=np.full(n, 0.4),
        intercept_sd=1.0,
    )


@pytest.mark.parametrize("chunk_cells", [cutposterior.CHUNK_CELLS, 96 * 700])
def test_cut_posterior_matches_quadrature(chunk_cells, monkeypatch):
    """Two capability draws with their own priors, in one call (several chunks or one):
    each half of the draws has the posterior that quadrature gives for its own draw."""
    monkeypatch.setattr(cutposterior, "CHUNK_CELLS", chunk_cells)
    rng = np.random.default_rng(0)
    n, half = 9, 15000
    thetas = [rng.standard_normal(n), rng.standard_normal(n)]
    y = 0.2 + 0.6 * thetas[0] + 0.45 * rng.standard_normal(n)
    priors = [_prior(half, 0.3, 0.5), _prior(half, -0.2, 0.3)]
    theta = np.vstack([np.tile(thetas[0], (half, 1)), np.tile(thetas[1], (half, 1))])
    prior = BenchmarkPrior(
        *(np.concatenate([getattr(p, f) for p in priors]) for f in ("loading_loc", "loading_sd")),
        *(np.concatenate([getattr(p, f) for p in priors]) for f in ("log_sd_loc", "log_sd_sd")),
        intercept_sd=1.0,
    )
    draws = cut_posterior(theta, y, prior, np.random.default_rng(1))
    draws["rho"] = draws["loading"] / np.sqrt(draws["loading"] ** 2 + draws["residual_sd"] ** 2)
    for k in range(2):
        part = slice(k * half, (k + 1) * half)
        exact = _quadrature(thetas[k], y, priors[k])
        for name in ("loading", "residual_sd", "rho"):
            mean, sd = exact[name]
            got = draws[name][part]
            assert abs(got.mean() - mean) < 5 * sd / np.sqrt(half) + 0.002, (k, name)
            assert abs(got.std() / sd - 1) < 0.04, (k, name)
        p = exact["p_separable"]
        got_p = (np.abs(draws["rho"][part]) < 0.5).mean()
        assert abs(got_p - p) < 5 * np.sqrt(p * (1 - p) / half) + 0.002, k


# --------------------------------------------------------------------------- against a refit


@pytest.fixture(scope="module")
def full_fit(tmp_path_factory):
    return shared_fit(tmp_path_factory)


#: A simulated study whose truthfulness area has one benchmark (true rho 0.76): left out of
#: the fit, its area is new to the fit, so the refit has nothing to pool it with that the
#: cut posterior lacks (the cut's prior of a benchmark in a known area is that area's fitted
#: mean, which a refit would move towards the new benchmark).
OWN_AREA_STUDY = {
    "n_llms": 30,
    "n_capability": 5,
    "safety": {"alignment": 3, "bias": 3, "truthfulness": 1},
    "seed": 3,
}
OWN_AREA_KEY = "truthfulness_00"


@pytest.fixture(scope="module")
def own_area_fits():
    study, _ = simulate(**OWN_AREA_STUDY)
    settings = SamplerSettings(draws=300, tune=500, chains=2, seed=1)
    keep = [b for b in study.benchmarks.index if b != OWN_AREA_KEY]
    full = fit(study, settings=settings, progressbar=False)
    left_out = fit(study.subset(benchmarks=keep), settings=settings, progressbar=False)
    return study, full, left_out


def _one(study: BenchmarkStudy, key: str, new_key: str | None = None) -> BenchmarkStudy:
    one = study.subset(benchmarks=[key])
    if new_key is None:
        return one
    catalog = one.benchmarks.rename(index={key: new_key}).rename_axis("key").reset_index()
    return BenchmarkStudy.from_frames(one.scores.assign(benchmark=new_key), one.llms, catalog)


def test_scored_back_benchmark_agrees_with_the_refit(own_area_fits):
    """Leave one safety benchmark out of the fit, score it back: its rho as in the fit that
    included it (the issue's targets: medians within 0.05, interval widths within 25%)."""
    study, full, left_out = own_area_fits
    ref = separability(full).sel(benchmark=OWN_AREA_KEY)
    got = score_benchmarks(left_out, _one(study, OWN_AREA_KEY), seed=3).sel(benchmark=OWN_AREA_KEY)
    assert int(got.n_llms) == study.n_llms
    assert abs(float(got.rho_median - ref.rho_median)) < 0.05
    ratio = float(got.rho_hdi_high - got.rho_hdi_low) / float(ref.rho_hdi_high - ref.rho_hdi_low)
    assert abs(ratio - 1) < 0.25, ratio


def test_scored_onto_the_fit_that_has_it(full_fit):
    """Scored onto the fit that already has it (under another key), a benchmark gets the
    fit's own posterior of its parameters: the cut at the same capability draws."""
    study, _, full = full_fit
    for key in (LEFT_OUT, "bias_02"):
        got = score_benchmarks(full, _one(study, key, "again"), seed=4).sel(benchmark="again")
        post = full["posterior"]
        for name in ("loading", "residual_sd", "rho"):
            mine, theirs = got[name], post[name].sel(benchmark=key)
            assert abs(float(mine.median() - theirs.median())) < 0.25 * float(theirs.std())
            assert abs(float(mine.std() / theirs.std()) - 1) < 0.15, (key, name)


def test_prior_of_a_new_area_and_a_known_area(full_fit):
    _, _, full = full_fit
    rng = np.random.default_rng(0)
    known = new_benchmark_prior(full, "bias", rng=rng)
    post = full["posterior"]
    np.testing.assert_allclose(
        known.loading_loc, post["area_loading_mean"].sel(area="bias").values.ravel()
    )
    np.testing.assert_allclose(known.loading_sd, post["safety_loading_sd"].values.ravel())
    other = new_benchmark_prior(full, "robotics", rng=rng)
    expected = np.hypot(post["area_loading_sd"], post["safety_loading_sd"]).values.ravel()
    np.testing.assert_allclose(other.loading_sd, expected)
    np.testing.assert_allclose(other.loading_loc, post["safety_loading_mean"].values.ravel())


def test_only_new_safety_benchmarks_with_enough_llms(full_fit):
    study, _, full = full_fit
    with pytest.raises(ValueError, match="already in the fit"):
        score_benchmarks(full, _one(study, LEFT_OUT))
    with pytest.raises(ValueError, match="role 'capability'"):
        score_benchmarks(full, _one(study, "cap00", "new_cap"))
    few = _one(study, LEFT_OUT, "new").subset(llms=list(study.llms.index[:2]), min_llms=1)
    with pytest.raises(ValueError, match="scored on 2 LLM"):
        score_benchmarks(full, few)


# --------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def run_file(full_fit, tmp_path_factory):
    path = tmp_path_factory.mktemp("score_benchmark") / "fit.nc"
    save_fit(full_fit[2], path)
    return path


def _user_file(study: BenchmarkStudy, path, *, unknown: bool = True) -> list[str]:
    """alignment_00 and bias_02 as 'mine' and 'other', LLM names in other spellings."""
    wide = study.subset(benchmarks=[LEFT_OUT, "bias_02"]).to_wide()
    wide = wide.rename(columns={LEFT_OUT: "mine", "bias_02": "other"})
    names = [
        f"org/{n}" if i % 3 == 0 else (n.upper() if i % 3 == 1 else n)
        for i, n in enumerate(wide.index)
    ]
    wide.index = pd.Index(names, name="model")
    if unknown:
        wide.loc["no-such-llm"] = [1.0, 2.0]
    wide.to_csv(path)
    return names


def test_command_matches_names_and_writes_the_json(full_fit, run_file, tmp_path, capsys):
    study, _, full = full_fit
    csv, out = tmp_path / "new.csv", tmp_path / "out.json"
    _user_file(study, csv)
    argv = ["score-benchmark", str(run_file), "--scores", str(csv), "--llm-column", "model"]
    argv += ["--safety", "mine=alignment", "other=truthfulness", "--lower-is-better", "other"]
    assert main([*argv, "--json", str(out), "--seed", "2", "--tau", "0.4"]) == 0
    text = capsys.readouterr().out
    assert f"{study.n_llms} of {study.n_llms + 1} matched" in text
    assert "(id without organisation)" in text and "(id ignoring case)" in text
    assert "no-such-llm (line " in text
    payload = json.loads(out.read_text())
    assert payload["run"] == str(run_file)
    assert list(payload["benchmarks"]) == ["mine", "other"]
    keys = {"n_llms", "rho_median", "rho_interval", "ci_prob", "p_separable", "tau"}
    assert all(set(v) == keys for v in payload["benchmarks"].values())
    # the library on the same scores (fit LLM ids, the declared directions) gives the same
    catalog = pd.DataFrame(
        {"key": ["mine", "other"], "role": "safety", "area": ["alignment", "truthfulness"],
         "direction": ["higher", "lower"]}
    )  # fmt: skip
    scores = study.subset(benchmarks=[LEFT_OUT, "bias_02"]).scores.replace(
        {"benchmark": {LEFT_OUT: "mine", "bias_02": "other"}}
    )
    new = BenchmarkStudy.from_frames(scores, study.llms, catalog)
    expected = benchmark_scores_json(score_benchmarks(full, new, seed=2, tau=0.4), str(run_file))
    assert payload == expected
    assert payload["benchmarks"]["mine"]["n_llms"] == study.n_llms


def test_command_with_a_metadata_file(full_fit, run_file, tmp_path, capsys):
    """The metadata's direction orients the scores: reversed, rho changes sign (in an area
    the fit does not have, whose loading prior is centred near 0)."""
    study, _, _ = full_fit
    csv, meta = tmp_path / "new.csv", tmp_path / "meta.csv"
    _user_file(study, csv, unknown=False)
    base = ["score-benchmark", str(run_file), "--scores", str(csv), "--llm-column", "model"]
    medians = {}
    for direction in ("higher", "lower"):
        meta.write_text(
            "key,display_name,role,area,direction\n"
            f"mine,My benchmark,safety,truthfulness,{direction}\n"
            "other,Other,safety,bias,higher\n"
        )
        out = tmp_path / f"{direction}.json"
        assert main([*base, "--metadata", str(meta), "--json", str(out)]) == 0
        assert "My benchmark" in capsys.readouterr().out
        medians[direction] = json.loads(out.read_text())["benchmarks"]["mine"]["rho_median"]
    assert medians["higher"] > 0.2 and abs(medians["higher"] + medians["lower"]) < 0.1


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_command_refuses_bad_input(full_fit, run_file, tmp_path, capsys):
    study, _, _ = full_fit
    csv = tmp_path / "new.csv"
    names = _user_file(study, csv)
    base = ["score-benchmark", str(run_file), "--scores", str(csv), "--llm-column", "model"]
    assert main([*base, "--safety", "mine=alignment"]) == 2
    line = _error(capsys)
    assert "['other']" in line and "not declared" in line
    # A misspelt paper area is refused naming the score file's header and the column.
    assert main([*base, "--safety", "mine=aligment", "other=bias"]) == 2
    line = _error(capsys)
    assert f"{csv}, line 1, column 'mine'" in line and "nearly the paper's area 'alignment'" in line
    # A column given two areas is refused, not settled by the last one.
    assert main([*base, "--safety", "mine=alignment", "other=bias", "mine=bias"]) == 2
    line = _error(capsys)
    assert "argument --safety: 'mine' is given twice (alignment, bias)" in line
    assert main([*base, "--safety", "mine=alignment", "other=bias", "--strict-names"]) == 2
    line = _error(capsys)
    assert "no-such-llm" in line and f"line {len(names) + 2}" in line
    meta = tmp_path / "meta.csv"
    meta.write_text("key,role,area,direction\nmine,capability,capability,higher\n"
                    "other,safety,bias,higher\n")  # fmt: skip
    assert main([*base, "--metadata", str(meta)]) == 2
    assert "role 'capability'" in _error(capsys)
    few = tmp_path / "few.csv"
    few.write_text(f"model,mine\n{names[0]},0.1\n{names[1]},0.4\nelse,0.3\n")
    argv = ["score-benchmark", str(run_file), "--scores", str(few), "--llm-column", "model"]
    assert main([*argv, "--safety", "mine=alignment"]) == 2
    assert "scored on 2 LLM(s) of the fit" in _error(capsys)


def test_align_to_fit_refuses_a_file_of_strangers(full_fit):
    study, _, full = full_fit
    one = _one(study, LEFT_OUT, "new")
    renamed = one.scores.assign(llm="x-" + one.scores["llm"])
    strangers = BenchmarkStudy.from_frames(renamed, None, one.benchmarks.rename_axis("key"))
    with pytest.raises(ValueError, match="none of its"):
        align_to_fit(strangers, full)


def test_variance_shares_of_a_scored_benchmark(full_fit):
    """A proportion over a known number of items: its shares sum to 1 in every draw, the
    capability share is rho**2 and the noise share is the known noise over the total;
    without an item count the noise is not separated (NaN)."""
    study, _, full = full_fit
    one = _one(study, "bias_02", "prop")
    values = one.scores["value"].to_numpy(dtype=float)
    share = 0.2 + 0.6 * (values - values.min()) / (values.max() - values.min())
    catalog = one.benchmarks.rename_axis("key").reset_index()
    catalog = catalog.assign(direction="higher", scale="fraction", lower=0.0, upper=1.0)
    counted = BenchmarkStudy.from_frames(
        one.scores.assign(value=share), one.llms, catalog.assign(n_items=250)
    )
    got = score_benchmarks(full, counted, seed=5).sel(benchmark="prop")
    total = got["capability_share"] + got["specific_share"] + got["noise_share"]
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)
    np.testing.assert_allclose(got["capability_share"], got["rho"] ** 2, rtol=1e-12)
    # independent: p(1 - p) / n averaged over the LLMs, on the standardised scale
    p = (250 * share + 0.5) / 251
    noise = np.mean(p * (1 - p) / 250) / np.var(share)  # the transform's SD: ddof 0
    variance = got["loading"] ** 2 + got["residual_sd"] ** 2
    expected = np.minimum(noise, got["residual_sd"] ** 2) / variance
    np.testing.assert_allclose(got["noise_share"], expected, rtol=1e-6)
    uncounted = BenchmarkStudy.from_frames(one.scores.assign(value=share), one.llms, catalog)
    plain = score_benchmarks(full, uncounted, seed=5).sel(benchmark="prop")
    assert plain["noise_share"].isnull().all()
    np.testing.assert_allclose(plain["capability_share"] + plain["specific_share"], 1.0)
