"""Comparisons of benchmark designs (hand-made posteriors) and model structures (real fits).

The design comparison is pure post-processing: every probability is recomputed directly
from small DataTrees built with numpy. The structure comparison fits one simulated study
(a bias factor in the truth) with and without a bias factor; those two fits are shared with
the other test modules of the session through files in the session's temporary folder.
"""

from __future__ import annotations

import json
import shutil

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy.stats import multivariate_normal

from fit_trees import GOOD_DIAGNOSTICS
from safetywash.analysis.design_text import (
    benchmark_comparison_json,
    describe_pair,
    format_benchmark_comparison,
)
from safetywash.analysis.designs import (
    BenchmarkNotInFitError,
    abs_rho_difference,
    check_benchmarks,
    compare_benchmarks,
)
from safetywash.analysis.fits import aggregate_of, shipped_catalog_of
from safetywash.analysis.latent import benchmark_parameters
from safetywash.analysis.loo import (
    llm_log_likelihood,
    loo_of,
    marginal_llm_log_likelihood,
    relative_efficiency,
)
from safetywash.analysis.structure_verdicts import (
    format_structures,
    structure_verdicts,
    structures_json,
)
from safetywash.analysis.structures import compare_structures
from safetywash.inference.fitfile import FitInfo, FitMismatchError, diagnostics_of, save_fit
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.simulate import simulate
from shared_fits import SHARED_SETTINGS, shared_fit

SAMPLE_DIMS = ("chain", "draw")


def _script():
    from safetywash.cli import main

    return lambda argv: main(["compare", *argv])


# =========================================================================== designs


def _catalog_defaults(n: int) -> dict:
    """The catalog columns the design comparison does not read, as a fit stores them."""
    text = {"direction": "higher", "scale": "fraction", "note": ""}
    numbers = {"lower": 0.0, "upper": 1.0, "chance": np.nan, "n_items": np.nan}
    return {
        **{f"benchmark_{k}": ("benchmark", [v] * n) for k, v in text.items()},
        **{f"benchmark_{k}": ("benchmark", np.full(n, v)) for k, v in numbers.items()},
    }


def toy_fit(rho: dict[str, np.ndarray], *, excluded=("ethics_cm",), parents=None) -> xr.DataTree:
    """A DataTree with only what the design comparison reads: rho draws and metadata."""
    parents = parents or {}
    keys = list(rho)
    values = np.stack([rho[k] for k in keys], axis=-1)
    chains, draws = values.shape[:2]
    post = xr.Dataset(
        {"rho": ((*SAMPLE_DIMS, "benchmark"), values)},
        coords={"chain": np.arange(chains), "draw": np.arange(draws), "benchmark": keys},
    )
    const = xr.Dataset(
        {
            "benchmark_display_name": ("benchmark", [f"Name of {k}" for k in keys]),
            "benchmark_area": ("benchmark", ["calibration"] * len(keys)),
            "benchmark_role": ("benchmark", ["safety"] * len(keys)),
            "benchmark_parent": ("benchmark", [parents.get(k, "") for k in keys]),
            **_catalog_defaults(len(keys)),
        },
        coords={"benchmark": keys},
    )
    dt = xr.DataTree.from_dict({"posterior": post, "constant_data": const})
    dt.attrs.update(
        FitInfo(
            model_config=ModelConfig(),
            sampler_settings=SamplerSettings(),
            study_sha256="0" * 64,
            study_name="safetywashing-chat",
            seed=0,
            excluded_benchmarks=tuple(excluded),
        ).to_attrs()
    )
    return dt


@pytest.fixture(scope="module")
def three():
    """Three benchmarks: a (|rho| ~ 0.2, negative), b (~0.5, correlated with a), c (~0.8)."""
    rng = np.random.default_rng(1)
    shared = rng.normal(size=(4, 500))
    a = -0.2 + 0.15 * shared + 0.05 * rng.normal(size=(4, 500))
    b = 0.5 + 0.15 * shared + 0.1 * rng.normal(size=(4, 500))
    c = 0.8 + 0.05 * rng.normal(size=(4, 500))
    return {"rmsce_mmlu": a, "brier_mmlu": b, "mmlu_x": c}


def test_pair_probability_and_difference_are_the_direct_ones(three):
    dt = toy_fit(three)
    a, b = np.abs(three["rmsce_mmlu"]), np.abs(three["brier_mmlu"])
    ds = compare_benchmarks(dt, ["rmsce_mmlu", "brier_mmlu"], ci_prob=0.9)
    pair = ds.sel(benchmark="rmsce_mmlu", other="brier_mmlu")
    assert float(pair.prob_less_entangled) == pytest.approx(np.mean(a < b))
    assert float(pair.difference_median) == pytest.approx(np.median(a - b))
    low, high = az.hdi((a - b).ravel(), prob=0.9)
    assert float(pair.difference_hdi_low) == pytest.approx(low)
    assert float(pair.difference_hdi_high) == pytest.approx(high)
    diff = abs_rho_difference(dt, "rmsce_mmlu", "brier_mmlu")
    np.testing.assert_allclose(diff.values, a - b)

    payload = benchmark_comparison_json(ds)
    assert payload["benchmarks"] == ["rmsce_mmlu", "brier_mmlu"]
    assert payload["prob_first_less_entangled"] == pytest.approx(np.mean(a < b))
    assert payload["difference_hdi"] == [pytest.approx(low), pytest.approx(high)]
    assert payload["ci_prob"] == 0.9
    json.dumps(payload)


def test_equal_tailed_intervals_of_the_differences(three):
    dt = toy_fit(three)
    ds = compare_benchmarks(dt, ["rmsce_mmlu", "brier_mmlu"], ci_prob=0.8, ci_kind="eti")
    d = (np.abs(three["rmsce_mmlu"]) - np.abs(three["brier_mmlu"])).ravel()
    low, high = np.quantile(d, [0.1, 0.9])
    pair = ds.sel(benchmark="rmsce_mmlu", other="brier_mmlu")
    assert float(pair.difference_hdi_low) == pytest.approx(low)
    assert float(pair.difference_hdi_high) == pytest.approx(high)
    assert "80% ETI" in describe_pair(ds, "rmsce_mmlu", "brier_mmlu")
    assert "80% ETI" in format_benchmark_comparison(ds)
    assert benchmark_comparison_json(ds)["ci_kind"] == "eti"
    with pytest.raises(ValueError, match="ci_kind"):
        compare_benchmarks(dt, ["rmsce_mmlu", "brier_mmlu"], ci_kind="hpd")


def test_entanglement_uses_absolute_rho():
    rng = np.random.default_rng(2)
    strong_negative = -0.8 + 0.05 * rng.normal(size=(2, 300))
    weak_positive = 0.3 + 0.05 * rng.normal(size=(2, 300))
    ds = compare_benchmarks(toy_fit({"neg": strong_negative, "pos": weak_positive}), ["neg", "pos"])
    assert float(ds.prob_less_entangled.sel(benchmark="neg", other="pos")) == 0.0
    assert float(ds.difference_median.sel(benchmark="neg", other="pos")) > 0.4
    assert list(ds["rank"].values) == [2, 1]
    # the sentence names the less entangled benchmark first, with its probability
    sentence = describe_pair(ds, "neg", "pos")
    assert sentence.startswith("Name of pos is less capability-entangled than Name of neg")
    assert "> 0.99 (all 600 draws)" in sentence


def test_ranking_and_pairwise_matrix(three):
    keys = ["mmlu_x", "rmsce_mmlu", "brier_mmlu"]
    ds = compare_benchmarks(toy_fit(three), keys, tau=0.4)
    for i in keys:
        for j in keys:
            p = float(ds.prob_less_entangled.sel(benchmark=i, other=j))
            if i == j:
                assert np.isnan(p)
            else:
                assert p == pytest.approx(np.mean(np.abs(three[i]) < np.abs(three[j])))
                assert p + float(ds.prob_less_entangled.sel(benchmark=j, other=i)) == 1.0
        assert float(ds.p_separable.sel(benchmark=i)) == pytest.approx(
            np.mean(np.abs(three[i]) < 0.4)
        )
    ranking = [str(k) for k in ds["benchmark"].values[np.argsort(ds["rank"].values)]]
    assert ranking == ["rmsce_mmlu", "brier_mmlu", "mmlu_x"]
    payload = benchmark_comparison_json(ds)
    assert "prob_first_less_entangled" not in payload  # only for a pair
    assert [r["benchmark"] for r in payload["ranking"]] == ranking
    matrix = np.array(payload["pairwise_prob_less_entangled"]["matrix"], dtype=float)
    assert payload["pairwise_prob_less_entangled"]["benchmarks"] == keys
    np.testing.assert_allclose(
        matrix, ds.prob_less_entangled.sel(benchmark=keys, other=keys).values
    )
    text = format_benchmark_comparison(ds)
    assert "P(|rho_row| < |rho_column|)" in text and "Ranking" in text


def test_unknown_keys_are_explained(three):
    dt = toy_fit(three)
    with pytest.raises(
        BenchmarkNotInFitError, match=r"'brier_mmlx'.*close matches: \['brier_mmlu'"
    ):
        check_benchmarks(dt, ["brier_mmlx", "rmsce_mmlu"])
    # Every benchmark of this fit is in the shipped catalog, with the parents the fit
    # stores: the left-out part's aggregate comes from that catalog (not the study name).
    rho = {"rmsce_mmlu": three["rmsce_mmlu"], "ethics_all": three["mmlu_x"]}
    catalogued = toy_fit(rho)
    catalogued.attrs["study_name"] = "renamed"
    with pytest.raises(BenchmarkNotInFitError) as err:
        check_benchmarks(catalogued, ["ethics_cm", "rmsce_mmlu"])
    message = str(err.value)
    assert "'aggregate' level" in message and "--level parts" in message
    assert "ethics_all" in message  # the parent, from the shipped catalog
    # mmlu_x is in no shipped catalog: nothing names the catalog, so no aggregate is named
    with pytest.raises(BenchmarkNotInFitError) as err:
        check_benchmarks(dt, ["ethics_cm", "rmsce_mmlu"])
    message = str(err.value)
    assert "was left out of it" in message and "its aggregate is" not in message
    with pytest.raises(ValueError, match="more than once"):
        check_benchmarks(dt, ["rmsce_mmlu", "rmsce_mmlu"])
    with pytest.raises(ValueError, match="at least two"):
        check_benchmarks(dt, ["rmsce_mmlu"])


def test_aggregate_of_reads_the_fit_metadata(three):
    rho = {"rmsce_mmlu": three["rmsce_mmlu"], "ethics_all": three["brier_mmlu"]}
    fit = toy_fit(rho)
    assert shipped_catalog_of(fit) is not None
    assert aggregate_of(fit, "ethics_cm") == "ethics_all"  # left out: from the catalog
    assert aggregate_of(fit, "ethics_all") == ""  # fitted: the parent the fit stores
    # A stored parent that the shipped catalog does not have: the catalog is not the fit's
    odd = toy_fit(rho, parents={"rmsce_mmlu": "ethics_all"})
    assert shipped_catalog_of(odd) is None
    assert aggregate_of(odd, "ethics_cm") == ""
    assert aggregate_of(odd, "rmsce_mmlu") == "ethics_all"


def test_script_compares_benchmarks(three, tmp_path, capsys):
    dt = toy_fit(three)
    save_fit(dt, tmp_path / "run" / "posterior.nc")
    out = tmp_path / "cmp.json"
    argv = [str(tmp_path / "run"), "--benchmarks", "rmsce_mmlu", "brier_mmlu", "--json", str(out)]
    assert _script()(argv) == 0
    printed = capsys.readouterr().out
    expected = benchmark_comparison_json(compare_benchmarks(dt, ["rmsce_mmlu", "brier_mmlu"]))
    assert json.loads(out.read_text()) == json.loads(json.dumps(expected))
    assert expected["sentence"] in printed
    assert _script()([str(tmp_path / "run"), "--benchmarks", "rmsce_mmlu", "nope"]) == 2
    assert "'nope' is not in this fit" in capsys.readouterr().err


def test_script_takes_the_interval_convention(three, tmp_path, capsys):
    dt = toy_fit(three)
    save_fit(dt, tmp_path / "run" / "posterior.nc")
    out = tmp_path / "cmp.json"
    keys = ["rmsce_mmlu", "brier_mmlu"]
    argv = [str(tmp_path / "run"), "--benchmarks", *keys, "--json", str(out)]
    assert _script()([*argv, "--ci-prob", "0.8", "--ci-kind", "eti"]) == 0
    payload = json.loads(out.read_text())
    d = (np.abs(three["rmsce_mmlu"]) - np.abs(three["brier_mmlu"])).ravel()
    assert payload["ci_kind"] == "eti" and payload["ci_prob"] == 0.8
    assert payload["difference_hdi"] == [pytest.approx(q) for q in np.quantile(d, [0.1, 0.9])]
    assert "80% ETI" in capsys.readouterr().out
    assert _script()([*argv, "--ci-kind", "central"]) == 2
    assert "--ci-kind" in capsys.readouterr().err


# =========================================================================== structures


@pytest.fixture(scope="module")
def structure_fits(tmp_path_factory):
    """The shared study fitted with one factor and with a bias factor (the truth)."""
    study, truth, one = shared_fit(tmp_path_factory)
    _, _, two = shared_fit(tmp_path_factory, ("bias",))
    return study, truth, {"one_factor": one, "bias_factor": two}


@pytest.fixture(scope="module")
def structures(structure_fits):
    """Both shared fits are short test fits that fail the diagnostics: weigh them anyway."""
    return compare_structures(structure_fits[2], allow_untrusted=True)


def test_llm_log_likelihood_sums_cells(structure_fits):
    dt = structure_fits[2]["one_factor"]
    summed = llm_log_likelihood(dt)
    cells = dt["log_likelihood"]["score"].values.astype(float)
    idx = dt["constant_data"]["llm_index"].values
    for i in (0, 7, 39):
        np.testing.assert_allclose(summed.values[:, :, i], cells[:, :, idx == i].sum(-1))
    np.testing.assert_allclose(summed.sum("llm").values, cells.sum(-1), rtol=1e-10)


def test_marginal_log_likelihood_matches_multivariate_normal(structure_fits):
    dt = structure_fits[2]["bias_factor"]
    marginal = marginal_llm_log_likelihood(dt)
    params = benchmark_parameters(dt)
    const = dt["constant_data"]
    cap = params.capability
    y = dt["observed_data"]["score"].values
    for s, i in ((0, 0), (123, 5), (599, 31)):
        cells = np.flatnonzero(const["llm_index"].values == i)
        b = const["benchmark_index"].values[cells]
        w = params.design(b)[s]
        # one population: capability is N(0, 1), the moments sampled capability is pinned to
        assert cap[s].mean() == pytest.approx(0, abs=1e-9) and cap[s].std() == pytest.approx(1)
        prior_var = np.ones(1 + len(params.factors))
        prior_mean = np.zeros(1 + len(params.factors))
        cov = np.diag(params.residual_sd[s, b] ** 2) + w @ np.diag(prior_var) @ w.T
        expected = multivariate_normal(params.intercept[s, b] + w @ prior_mean, cov).logpdf(
            y[cells]
        )
        chain, draw = divmod(s, dt["posterior"].sizes["draw"])
        assert float(marginal.isel(chain=chain, draw=draw, llm=i)) == pytest.approx(expected)


def test_marginal_log_likelihood_matches_the_model_module(structure_fits):
    """One factor: the same integrated log-likelihood as a capability='marginal' fit stores."""
    from safetywash.model.likelihood import marginal_loglik_by_llm

    dt = structure_fits[2]["one_factor"]
    params = benchmark_parameters(dt)
    const = dt["constant_data"]
    n = params.intercept.shape[0]
    expected = marginal_loglik_by_llm(
        dt["observed_data"]["score"].values,
        const["llm_index"].values,
        const["benchmark_index"].values,
        np.zeros(const.sizes["llm"], dtype=np.int64),
        params.intercept,
        params.loading,
        params.residual_sd,
        np.zeros((n, 1)),
        np.ones((n, 1)),
    )
    mine = marginal_llm_log_likelihood(dt).values.reshape(n, -1)
    np.testing.assert_allclose(mine, expected, rtol=1e-8)


def test_fits_with_per_llm_log_likelihood_use_the_marginal_level(structure_fits):
    fits = structure_fits[2]
    marginal = fits["one_factor"].copy()
    per_llm = marginal_llm_log_likelihood(marginal).astype("float32")
    marginal["log_likelihood"] = xr.DataTree(xr.Dataset({"score": per_llm}))
    ds = compare_structures({"one_factor": marginal, "bias_factor": fits["bias_factor"]})
    assert list(ds["loo_method"].values) == ["llm-marginal"]
    assert ds.attrs["method"] == "llm-marginal"
    with pytest.raises(ValueError, match="not available for every fit"):
        compare_structures({"a": marginal, "b": fits["bias_factor"]}, method="cell")


def test_needed_area_factor_wins(structures):
    ds = structures
    used = ds.attrs["method"]
    assert used in ("cell", "llm", "llm-marginal")
    assert set(ds["loo_method"].values) == {"cell", "llm", "llm-marginal"}
    diff = float(ds.elpd_diff.sel(fit="bias_factor", other="one_factor"))
    se = float(ds.elpd_diff_se.sel(fit="bias_factor", other="one_factor"))
    assert diff > 2 * se, format_structures(ds)
    assert float(ds.elpd_diff.sel(fit="one_factor", other="bias_factor")) == pytest.approx(-diff)
    assert float(ds.weight.sel(fit="bias_factor")) > 0.5
    verdicts = structure_verdicts(ds)
    assert len(verdicts) == 1
    v = verdicts[0]
    assert (v["area"], v["richer"], v["simpler"], v["supported"]) == (
        "bias",
        "bias_factor",
        "one_factor",
        True,
    )
    assert v["sentence"].startswith("A separate factor for area bias is supported")
    high = ds.n_high_k.sel(loo_method=used)
    assert v["reliable"] == (int(high.sum()) == 0)
    assert ("Warning: unreliable" in v["sentence"]) == (not v["reliable"])


def test_auto_level_has_fewest_high_pareto_k(structures):
    ds = structures
    share = (ds.n_high_k.max("fit") / ds.n_points).to_series()
    assert share[ds.attrs["method"]] == share.min()
    assert int(ds.n_points.sel(loo_method="cell")) == 40 * 12
    assert int(ds.n_points.sel(loo_method="llm")) == 40
    text = format_structures(ds)
    assert "PSIS-LOO used:" in text and "chosen automatically" in text
    payload = structures_json(ds)
    json.dumps(payload)
    assert payload["loo_method"] == ds.attrs["method"]
    assert payload["fits"][1]["factors"] == ["bias"]
    assert set(payload["fits"][0]["loo"]) == {"cell", "llm", "llm-marginal"}


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")
def test_fixed_level(structure_fits):
    ds = compare_structures(structure_fits[2], method="cell")
    assert ds.attrs["method"] == "cell" and list(ds["loo_method"].values) == ["cell"]
    loo = az.loo(structure_fits[2]["one_factor"], pointwise=True)
    assert float(ds.elpd.sel(fit="one_factor", loo_method="cell")) == pytest.approx(
        loo.elpd, rel=1e-3
    )


def test_fits_of_other_studies_are_refused(structure_fits):
    one = structure_fits[2]["one_factor"]
    other = one.copy()
    other.attrs = {**one.attrs, "study_sha256": "f" * 64}
    with pytest.raises(FitMismatchError, match="different studies"):
        compare_structures({"a": one, "b": other})
    logit = one.copy()
    logit.attrs = {**one.attrs, "model_config": ModelConfig(transform="logit").to_json()}
    with pytest.raises(FitMismatchError, match="differ in transform"):
        compare_structures({"a": one, "b": logit})


def test_script_compares_structures(structure_fits, tmp_path, capsys):
    fits = structure_fits[2]
    for name, dt in fits.items():
        save_fit(dt, tmp_path / name / "posterior.nc")
    out = tmp_path / "structures.json"
    argv = ["--fits", *(str(tmp_path / n) for n in fits), "--loo", "llm-marginal"]
    assert _script()([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert payload["loo_method"] == "llm-marginal"
    assert [f["name"] for f in payload["fits"]] == ["one_factor", "bias_factor"]
    assert payload["verdicts"][0]["sentence"] in printed


def _with_diagnostics(dt: xr.DataTree, diagnostics) -> xr.DataTree:
    out = dt.copy()
    out.attrs = {**dt.attrs, "diagnostics": json.dumps(diagnostics.to_dict())}
    return out


def test_untrusted_fits_are_marked_and_get_no_weight(structure_fits, structures):
    fits = structure_fits[2]
    assert not any(diagnostics_of(dt).trustworthy for dt in fits.values())
    ds = compare_structures(fits)
    assert ds.trustworthy.values.tolist() == [False, False]
    assert np.isnan(ds.weight.values).all()
    # everything but the weights is the same as when the untrusted fits are weighted
    for var in ("elpd", "elpd_diff", "elpd_diff_se"):
        np.testing.assert_array_equal(ds[var].values, structures[var].values)
    text = format_structures(ds)
    assert "one_factor none (untrusted), bias_factor none (untrusted)" in text
    assert "! UNTRUSTED (did not pass the convergence diagnostics): one_factor, bias_factor" in text
    assert "no stacking weight" in text
    assert text.count("\n!one_factor") == len(ds.loo_method)
    (verdict,) = structure_verdicts(ds)
    assert not verdict["trusted"]
    assert "Warning: UNTRUSTED, 'bias_factor' and 'one_factor'" in verdict["sentence"]
    payload = structures_json(ds)
    assert [f["weight"] for f in payload["fits"]] == [None, None]
    assert [f["trusted"] for f in payload["fits"]] == [False, False]
    assert "weighted anyway" in format_structures(structures)


def test_stacking_weights_are_over_the_trusted_fits(structure_fits, structures):
    one, two = structure_fits[2]["one_factor"], structure_fits[2]["bias_factor"]
    fits = {"one_factor": one, "bias_factor": _with_diagnostics(two, GOOD_DIAGNOSTICS)}
    ds = compare_structures(fits)
    assert ds.trustworthy.values.tolist() == [False, True]
    assert np.isnan(float(ds.weight.sel(fit="one_factor")))
    assert float(ds.weight.sel(fit="bias_factor")) == 1.0
    # weighted: the stacking weights arviz gives the two LOO results directly
    used = structures.attrs["method"]
    loos = {
        n: loo_of(dt, used, reff=relative_efficiency(dt)) for n, dt in structure_fits[2].items()
    }
    expected = az.compare(loos, round_to="none")["weight"]
    for name in loos:
        assert float(structures.weight.sel(fit=name)) == pytest.approx(expected[name], abs=1e-6)


def test_the_same_fit_twice_is_refused(structure_fits):
    one = structure_fits[2]["one_factor"]
    with pytest.raises(FitMismatchError, match="'a' and 'b' are the same fit"):
        compare_structures({"a": one, "b": one.copy()}, allow_untrusted=True)
    reseeded = one.copy()
    reseeded.attrs = {**one.attrs, "seed": int(one.attrs["seed"]) + 1}
    settings = json.loads(one.attrs["sampler_settings"])
    reseeded.attrs["sampler_settings"] = json.dumps({**settings, "seed": settings["seed"] + 1})
    ds = compare_structures({"a": one, "b": reseeded}, allow_untrusted=True, method="cell")
    assert list(ds.fit.values) == ["a", "b"]


def test_script_refuses_the_same_fit_twice(structure_fits, tmp_path, capsys):
    one = structure_fits[2]["one_factor"]
    save_fit(one, tmp_path / "run" / "posterior.nc")
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    cases = [
        ([str(tmp_path / "run"), str(tmp_path / "run")], "are the same file"),
        ([str(tmp_path / "run"), str(tmp_path / "run" / "posterior.nc")], "are the same file"),
        ([str(tmp_path / "run"), str(tmp_path / "copy")], "identical copies (same sha256)"),
    ]
    for fits, needle in cases:
        assert _script()(["--fits", *fits]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def test_script_weighs_untrusted_fits_only_when_allowed(structure_fits, tmp_path, capsys):
    for name, dt in structure_fits[2].items():
        save_fit(dt, tmp_path / name / "posterior.nc")
    argv = ["--fits", *(str(tmp_path / n) for n in structure_fits[2]), "--loo", "cell"]
    assert _script()([*argv, "--json", str(tmp_path / "a.json")]) == 0
    captured = capsys.readouterr()
    assert "none (untrusted)" in captured.out and captured.err == ""
    assert [f["weight"] for f in json.loads((tmp_path / "a.json").read_text())["fits"]] == [
        None,
        None,
    ]
    assert _script()([*argv, "--allow-untrusted", "--json", str(tmp_path / "b.json")]) == 0
    captured = capsys.readouterr()
    (warning,) = captured.err.splitlines()
    assert warning.startswith("warning: the stacking weights include untrusted fits")
    weights = [f["weight"] for f in json.loads((tmp_path / "b.json").read_text())["fits"]]
    assert sum(weights) == pytest.approx(1.0)


@pytest.mark.slow
def test_unneeded_area_factor_is_not_supported():
    """Negative control: no bias factor in the truth, so a bias factor is not supported."""
    study, _ = simulate(40, 5, {"bias": 4, "alignment": 3}, seed=8)
    settings = SamplerSettings(**SHARED_SETTINGS)
    fits = {
        "one": fit(study, ModelConfig(), settings, progressbar=False),
        "bias": fit(study, ModelConfig(factors=("bias",)), settings, progressbar=False),
    }
    ds = compare_structures(fits, method="llm-marginal")
    (verdict,) = structure_verdicts(ds)
    assert not verdict["supported"], format_structures(ds)
