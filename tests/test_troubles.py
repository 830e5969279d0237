"""Why an untrusted fit failed and what to run: causes read off the fit, the retry in `fit`."""

import json

import numpy as np
import pytest
import xarray as xr

from fit_trees import BAD_DIAGNOSTICS, GOOD_DIAGNOSTICS, simulated_fit_tree
from safetywash.analysis import retry as retry_module
from safetywash.analysis.troubles import (
    CAPABILITY_SPACE,
    FEW_OBSERVATIONS,
    RETRY_FLAGS,
    fit_troubles,
    slowest_among,
    suggested_flags,
)
from safetywash.cli import fit as fit_command
from safetywash.cli.app import main
from safetywash.inference.diagnostics import Diagnostics
from safetywash.inference.fitfile import FitInfo, cell_index, fit_info


def _subjects(troubles):
    return [t.subject for t in troubles]


def test_trusted_fit_has_no_troubles():
    assert fit_troubles(simulated_fit_tree(diagnostics=GOOD_DIAGNOSTICS)) == []


def test_plain_sampler_trouble_asks_for_longer_tuning():
    troubles = fit_troubles(simulated_fit_tree(safety={"bias": 3, "calibration": 3}))
    assert troubles[-1].subject == BAD_DIAGNOSTICS.worst_rhat
    assert troubles[-1].flags == RETRY_FLAGS
    assert "R-hat 1.300, 3 divergences" in troubles[-1].line()


def test_heywood_case_is_named_with_its_remedy():
    dt = simulated_fit_tree()
    key = str(dt["posterior"]["benchmark"].values[0])
    rho = dt["posterior"]["rho"].values
    rho[..., 0] = 0.995
    dt["posterior"]["residual_sd"].values[..., 0] = 0.05
    troubles = fit_troubles(dt)
    heywood = [t for t in troubles if t.subject == key]
    assert len(heywood) == 1
    assert "Heywood case" in heywood[0].problem and "median 0.995" in heywood[0].problem
    assert "residual SD median 0.05" in heywood[0].problem
    assert suggested_flags(troubles)["--capability-mode"] == "marginal"
    keys = set(dt["posterior"]["benchmark"].values.astype(str))
    assert [t for t in troubles if t.subject in keys] == heywood  # the others are far below


def test_heywood_case_reads_the_subspace_r_with_more_than_one_dimension():
    dt = simulated_fit_tree()
    post = dt["posterior"].to_dataset()
    keys = post["benchmark"].values.astype(str)
    post["rho"].values[...] = 0.6  # far from a Heywood case on the general factor
    r = post["rho"].copy(data=np.full(post["rho"].shape, 0.8))
    r.values[..., 1] = 0.99  # but an almost perfect measure of the capability subspace
    dt["posterior"] = xr.DataTree(post.assign(subspace_r=r))
    heywood = [t for t in fit_troubles(dt) if t.subject in set(keys)]
    assert [t.subject for t in heywood] == [keys[1]]
    assert heywood[0].problem.startswith("R median 0.990") and heywood[0].kind == "near_perfect"


def _near_perfect_tree(capability):

    dt = simulated_fit_tree()
    dt["posterior"]["rho"].values[..., 0] = 0.995
    dt.attrs["capability_mode"] = capability
    return dt


def test_retry_integrates_capability_out_next_to_a_near_perfect_benchmark():
    from safetywash.inference.settings import SamplerSettings

    flags, config, settings = retry_module.retry_plan(
        _near_perfect_tree("sampled"), SamplerSettings()
    )
    # Integrated out, draws are cheap: the retry also doubles them.
    assert flags == {**RETRY_FLAGS, "--capability-mode": "marginal", "--draws": "2000"}
    assert config.capability == "marginal"
    assert (settings.tune, settings.target_accept, settings.draws) == (2000, 0.99, 2000)
    # already marginal: longer tuning and draws only, and no advice to do what was done
    dt = _near_perfect_tree("marginal")
    flags, config, settings = retry_module.retry_plan(dt, SamplerSettings(draws=700))
    assert flags == {**RETRY_FLAGS, "--draws": "1400"} and config.capability == "auto"
    assert settings.draws == 1400
    assert "--capability-mode" not in suggested_flags(fit_troubles(dt))
    # no near-perfect benchmark: the capability mode is kept
    plain = simulated_fit_tree()
    flags, config, _ = retry_module.retry_plan(plain, SamplerSettings())
    assert flags == RETRY_FLAGS and config.capability == "auto"


#: Capability and rho mixed slowest: R-hat and ESS fail there, no divergence.
SLOW_CAPABILITY = Diagnostics(1.03, "rho", 150.0, "rho", 380.0, "capability", 0, 60)


def test_retry_integrates_capability_out_when_sampled_capabilities_mixed_slowest():
    from safetywash.inference.settings import SamplerSettings

    dt = simulated_fit_tree(diagnostics=SLOW_CAPABILITY)
    dt.attrs["capability_mode"] = "sampled"
    found = [t for t in fit_troubles(dt) if t.kind == "capability_space"]
    assert len(found) == 1 and found[0].flags["--capability-mode"] == "marginal"
    flags, config, settings = retry_module.retry_plan(dt, SamplerSettings())
    assert flags == {**RETRY_FLAGS, "--capability-mode": "marginal", "--draws": "2000"}
    assert config.capability == "marginal" and settings.draws == 2000
    # Already marginal, or with area factors (no marginal form): a plain retry.
    dt.attrs["capability_mode"] = "marginal"
    assert not [t for t in fit_troubles(dt) if t.kind == "capability_space"]
    flags, _, _ = retry_module.retry_plan(dt, SamplerSettings())
    assert "--capability-mode" not in flags
    factored = simulated_fit_tree(diagnostics=SLOW_CAPABILITY)
    factored.attrs["capability_mode"] = "sampled"
    factored.attrs["model_config"] = json.dumps(
        json.loads(factored.attrs["model_config"]) | {"factors": ["bias"]}
    )
    assert fit_info(factored).model_config.factors == ("bias",)
    assert not [t for t in fit_troubles(factored) if t.kind == "capability_space"]
    # Slowest elsewhere (R-hat on the residual spread, ESS on rho): the mode is kept.
    mixed = simulated_fit_tree(
        diagnostics=Diagnostics(1.03, "residual_log_sd", 420.0, "rho", 420.0, "rho", 0, 60)
    )
    mixed.attrs["capability_mode"] = "sampled"
    assert not [t for t in fit_troubles(mixed) if t.kind == "capability_space"]


def test_divergences_alone_read_the_slowest_variables():
    """A fit that failed on divergences alone (R-hat and ESS pass) is retried with
    capability integrated out when capability and rho still mixed slowest, else plainly."""
    from safetywash.inference.settings import SamplerSettings

    passing = Diagnostics(1.008, "capability", 414.0, "rho", 747.0, "capability", 4, 60)
    assert not passing.trustworthy
    dt = simulated_fit_tree(diagnostics=passing)
    dt.attrs["capability_mode"] = "sampled"
    assert slowest_among(passing, CAPABILITY_SPACE)
    assert [t.kind for t in fit_troubles(dt)].count("capability_space") == 1
    flags, config, _ = retry_module.retry_plan(dt, SamplerSettings())
    assert flags == {**RETRY_FLAGS, "--capability-mode": "marginal", "--draws": "2000"}
    assert config.capability == "marginal"
    # Failing figures still decide when there are any: R-hat fails on the intercepts.
    failing = Diagnostics(1.03, "intercept", 414.0, "rho", 747.0, "capability", 4, 60)
    assert not slowest_among(failing, CAPABILITY_SPACE)
    elsewhere = Diagnostics(1.008, "intercept", 414.0, "loading", 747.0, "intercept", 4, 60)
    assert not slowest_among(elsewhere, CAPABILITY_SPACE)
    plain = simulated_fit_tree(diagnostics=elsewhere)
    plain.attrs["capability_mode"] = "sampled"
    assert retry_module.retry_plan(plain, SamplerSettings())[0] == RETRY_FLAGS


def test_thin_areas_and_few_observations():
    dt = simulated_fit_tree(safety={"bias": 1, "calibration": 2, "alignment": 3})
    subjects = _subjects(fit_troubles(dt))
    assert "area bias" in subjects and "area calibration" in subjects
    assert "area alignment" not in subjects
    line = next(t.line() for t in fit_troubles(dt) if t.subject == "area bias")
    assert "has 1 benchmark:" in line
    # drop cells of one benchmark until it has fewer than the threshold
    _, bench_idx = cell_index(dt)
    counts = np.bincount(bench_idx)
    assert counts.min() >= FEW_OBSERVATIONS  # the simulated study is complete
    sparse = simulated_fit_tree(n_llms=FEW_OBSERVATIONS - 1)
    few = [t for t in fit_troubles(sparse) if t.subject.startswith("benchmark ")]
    assert len(few) == sparse["posterior"].sizes["benchmark"]
    assert f"has {FEW_OBSERVATIONS - 1} observations" in few[0].problem


def test_scores_crowding_a_bound():
    dt = simulated_fit_tree()
    const = dt["constant_data"].to_dataset()
    key = str(const["benchmark"].values[2])
    _, bench_idx = cell_index(dt)
    raw = const["raw_value"].values.copy()
    mine = np.flatnonzero(bench_idx == 2)
    raw[mine] = np.linspace(0.0, 1.0, mine.size)
    raw[mine[: mine.size // 3]] = 0.99  # a third at the ceiling
    lower = const["benchmark_lower"].values.copy()
    upper = const["benchmark_upper"].values.copy()
    lower[2], upper[2] = 0.0, 1.0
    dt["constant_data"] = const.assign(
        raw_value=(const["raw_value"].dims, raw),
        benchmark_lower=(const["benchmark_lower"].dims, lower),
        benchmark_upper=(const["benchmark_upper"].dims, upper),
    )
    crowded = [t for t in fit_troubles(dt) if t.subject == f"benchmark {key}"]
    assert len(crowded) == 1 and crowded[0].flags == {"--transform": "logit"}
    assert "within 5% of a bound" in crowded[0].problem
    # a benchmark the fit already gave the logistic treatment is not flagged again
    logit = dt["constant_data"]["logit_transformed"].values.copy()
    logit[2] = True
    dt["constant_data"] = (
        dt["constant_data"]
        .to_dataset()
        .assign(logit_transformed=(dt["constant_data"]["logit_transformed"].dims, logit))
    )
    assert not [t for t in fit_troubles(dt) if t.subject == f"benchmark {key}"]


def test_suggested_command_replaces_values_and_adds_overwrite():
    argv = ["fit", "--population", "chat", "--tune", "500", "--out", "runs/x"]
    text = fit_command.suggested_command(argv, {"--tune": "2000", "--target-accept": "0.99"})
    assert text == (
        "safetywash fit --population chat --tune 2000 --out runs/x --target-accept 0.99 --overwrite"
    )


def _tree_with(diagnostics, seed=0):
    dt = simulated_fit_tree(diagnostics=diagnostics, seed=seed)
    return dt


def test_fit_retries_once_at_defaults_and_records_it(monkeypatch, tmp_path, capsys):
    calls = []

    def fake_fit(study, config, settings, **kwargs):
        calls.append(settings)
        return _tree_with(BAD_DIAGNOSTICS if len(calls) == 1 else GOOD_DIAGNOSTICS)

    monkeypatch.setattr(retry_module, "fit", fake_fit)
    monkeypatch.setattr(fit_command, "study_from_args", lambda *a, **k: _study())
    monkeypatch.setattr(fit_command, "store_paper_baseline", lambda dt, study: dt)
    status = main(["fit", "--out", str(tmp_path / "run"), "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert [(s.tune, s.target_accept) for s in calls] == [(1000, 0.95), (2000, 0.99)]
    assert "retrying once with --tune 2000 --target-accept 0.99" in out
    verdict = (tmp_path / "run" / "VERDICT").read_text()
    assert verdict.startswith("TRUSTED") and "Retried once" in verdict


def test_a_residual_form_given_on_the_command_line_is_kept_on_the_retry(monkeypatch, tmp_path):
    configs = []

    def fake_fit(study, config, settings, **kwargs):
        configs.append(config)
        dt = _tree_with(BAD_DIAGNOSTICS if len(configs) % 2 else GOOD_DIAGNOSTICS)
        dt.attrs["model_config"] = config.to_json()  # as a fit records the config it used
        return dt

    monkeypatch.setattr(retry_module, "fit", fake_fit)
    monkeypatch.setattr(fit_command, "study_from_args", lambda *a, **k: _study())
    monkeypatch.setattr(fit_command, "store_paper_baseline", lambda dt, study: dt)
    assert main(["fit", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert [c.residuals for c in configs] == ["auto", "auto"]
    configs.clear()
    argv = ["fit", "--out", str(tmp_path / "run2"), "--no-progress", "--residuals", "centered"]
    assert main(argv) == 0
    assert [c.residuals for c in configs] == ["centered", "centered"]


def test_no_retry_when_asked_or_settings_chosen(monkeypatch, tmp_path, capsys):
    calls = []

    def fake_fit(study, config, settings, **kwargs):
        calls.append(settings)
        return _tree_with(BAD_DIAGNOSTICS)

    monkeypatch.setattr(retry_module, "fit", fake_fit)
    monkeypatch.setattr(fit_command, "study_from_args", lambda *a, **k: _study())
    monkeypatch.setattr(fit_command, "store_paper_baseline", lambda dt, study: dt)
    status = main(["fit", "--out", str(tmp_path / "a"), "--no-retry", "--no-progress"])
    assert status == 2 and len(calls) == 1
    err = capsys.readouterr().err
    assert "Likely causes:" in err
    assert f"Try: safetywash fit --out {tmp_path / 'a'} --no-retry --no-progress" in err
    calls.clear()
    status = main(["fit", "--out", str(tmp_path / "b"), "--tune", "300", "--no-progress"])
    assert status == 2 and len(calls) == 1
    assert "--tune 2000" in (tmp_path / "b" / "VERDICT").read_text()


def test_retry_that_still_fails_escalates(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(retry_module, "fit", lambda *a, **k: _tree_with(BAD_DIAGNOSTICS))
    monkeypatch.setattr(fit_command, "study_from_args", lambda *a, **k: _study())
    monkeypatch.setattr(fit_command, "store_paper_baseline", lambda dt, study: dt)
    assert main(["fit", "--out", str(tmp_path / "c"), "--no-progress"]) == 2
    verdict = (tmp_path / "c" / "VERDICT").read_text()
    assert "Retried once" in verdict
    assert "--tune 4000 --draws 2000 --target-accept 0.99 --overwrite" in verdict


def _study():
    from safetywash.model.simulate import simulate

    return simulate(24, 4, {"bias": 3, "calibration": 3}, seed=0)[0]


def test_fit_info_ignores_the_retry_record():
    dt = _tree_with(GOOD_DIAGNOSTICS)
    dt.attrs["retried_after"] = json.dumps({"first_attempt": {}, "retry_flags": RETRY_FLAGS})
    assert isinstance(fit_info(dt), FitInfo)


@pytest.mark.parametrize("flag", ["--no-retry", "--residuals"])
def test_fit_help_documents_the_retry(flag, capsys):
    assert main(["fit", "--help"]) == 0
    assert flag in capsys.readouterr().out
