"""SBC machinery: a fixed design, scores on the model scale, one compiled model per structure.

The refits of an SBC run reuse one compiled model per model structure; these tests check
that a reused model gives exactly the draws of a fresh compile, that the structure key
separates what the model is built from and ignores the scores, and a few rounds of
``run_sbc`` end to end. The calibration itself (100 rounds per regime) is in
``tests/test_inference.py``, marked ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest

from safetywash.analysis.calibration import RANK_DRAWS, summarize_sbc
from safetywash.analysis.sbc import design_cells, on_model_scale, run_sbc
from safetywash.inference.compiled import ModelCache, structure_key
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.pooling import pooling
from safetywash.model.simulate import simulate

SAFETY = {"alignment": 2, "bias": 2}
# Explicit parameterisations: the pooling choice, hence the structure, cannot change
# with the scores, so every study of one design shares one compiled model.
FIXED_POOLING = ModelConfig(
    capability_loadings="noncentered", safety_loadings="centered", residuals="centered"
)


def _design(missing: float = 0.2) -> dict:
    return {
        "n_llms": 18,
        "n_capability": 4,
        "safety": SAFETY,
        "missing": missing,
        "mechanism": "random",
        "factor_areas": (),
        "truth": "prior",
    }


def _study(seed: int, cells: np.ndarray | None, config: ModelConfig = FIXED_POOLING):
    design = _design()
    return simulate(
        design["n_llms"],
        design["n_capability"],
        design["safety"],
        missing=design["missing"],
        truth="prior",
        priors=config.scaled_priors,
        observed=cells,
        seed=seed,
    )


@pytest.fixture(scope="module")
def cells() -> np.ndarray:
    return design_cells(_design(), FIXED_POOLING, seed=3)


def test_design_cells_are_the_pattern_of_the_seeds_study(cells):
    study, known = _study(3, None)
    llms, keys = list(known["llm"].values), list(known["benchmark"].values)
    pairs = zip(study.scores["llm"], study.scores["benchmark"], strict=True)
    observed = {(llms.index(i), keys.index(b)) for i, b in pairs}
    assert observed == set(zip(*np.nonzero(cells), strict=True))
    assert 0.6 < cells.mean() < 0.95  # about 20% missing
    # Another seed draws new parameters and scores on the same cells.
    other, _ = _study(4, cells)
    assert len(other.scores) == cells.sum()
    assert not np.allclose(np.sort(other.scores["value"]), np.sort(study.scores["value"]))


def test_simulate_refuses_cells_of_another_shape(cells):
    with pytest.raises(ValueError, match="observed must have shape"):
        _study(1, cells[:, :-1])


def test_model_scale_scores_are_the_oriented_simulated_scores(cells):
    study, _ = _study(5, cells)
    data = on_model_scale(prepare_data(study, FIXED_POOLING))
    scores = data.study.scores
    sign = np.where(study.benchmarks.loc[scores["benchmark"], "direction"] == "lower", -1.0, 1.0)
    np.testing.assert_array_equal(data.y, sign * scores["value"].to_numpy())
    assert np.all(data.transform.center == 0) and np.all(data.transform.scale == 1)
    # A real study's path standardises: same cells, different numbers.
    standardised = prepare_data(study, FIXED_POOLING)
    assert not np.allclose(standardised.y, data.y)
    np.testing.assert_array_equal(standardised.benchmark_idx, data.benchmark_idx)


def test_structure_key_ignores_scores_but_not_design_or_config(cells):
    a = on_model_scale(prepare_data(_study(5, cells)[0], FIXED_POOLING))
    b = on_model_scale(prepare_data(_study(6, cells)[0], FIXED_POOLING))
    assert structure_key(a, FIXED_POOLING) == structure_key(b, FIXED_POOLING)
    fewer = cells.copy()
    fewer[np.argmax(cells[:, 0]), 0] = False
    c = prepare_data(_study(6, fewer)[0], FIXED_POOLING)
    assert structure_key(c, FIXED_POOLING) != structure_key(b, FIXED_POOLING)
    other = ModelConfig(capability_loadings="centered", safety_loadings="centered")
    assert structure_key(b, other) != structure_key(b, FIXED_POOLING)


# Capability loadings and log specific SDs whitened, by estimates and errors read off each
# study's scores.
WHITENED = ModelConfig(safety_loadings="centered")


@pytest.mark.parametrize("config", [FIXED_POOLING, WHITENED], ids=["fixed", "whitened"])
def test_a_reused_compiled_model_gives_the_draws_of_a_fresh_compile(cells, config):
    """Same data and seed: bit-identical draws whether the model was compiled for this
    study or compiled for another study of the design and given this one's scores (and,
    whitened, its own estimates and errors)."""
    settings = SamplerSettings(draws=60, tune=60, chains=2, seed=11)
    first = on_model_scale(prepare_data(_study(5, cells, config)[0], config))
    second_study = _study(6, cells, config)[0]
    second = on_model_scale(prepare_data(second_study, config))
    if config is WHITENED:
        one, two = pooling(first, config), pooling(second, config)
        assert one.capability_errors and two.capability_errors
        assert not np.allclose(one.capability_estimates, two.capability_estimates)
        assert one.residual_errors and two.residual_errors
        assert not np.allclose(one.residual_estimates, two.residual_estimates)
    cache = ModelCache()
    kwargs = {"progressbar": False, "log_likelihood": False}
    fit(first.study, config, settings, data=first, cache=cache, **kwargs)
    reused = fit(second_study, config, settings, data=second, cache=cache, **kwargs)
    assert (cache.compiles, cache.reuses, len(cache)) == (1, 1, 1)
    fresh = fit(second_study, config, settings, data=second, **kwargs)
    for name in ("rho", "capability", "loading", "residual_sd", "intercept"):
        np.testing.assert_array_equal(reused["posterior"][name], fresh["posterior"][name])
    assert "log_likelihood" not in reused.children


def test_a_few_rounds_compile_once_per_structure():
    """Three rounds in this process: ranks in range, the same observed cells every
    round, and one compile for the one structure (fixed pooling)."""
    ds = run_sbc(
        3,
        **_design(),
        draws=60,
        tune=60,
        chains=2,
        seed=21,
        config=FIXED_POOLING,
    )
    assert ((ds["rank"] >= 0) & (ds["rank"] <= RANK_DRAWS)).all()
    assert ds["n_rank_draws"].values.tolist() == [RANK_DRAWS] * 3
    assert (ds["n_observed"] == ds["n_observed"].isel(round=0)).all()
    assert len(set(ds["structure"].values.tolist())) == 1
    # The first round may find the structure compiled by an earlier test in this process.
    assert not ds["compiled"].values[1:].any()
    assert ds.attrs["data_scale"] == "model" and ds.attrs["fixed_design"] == 1
    # rho_true is the truth's own rho: |rho| < 1 and different across rounds.
    assert (np.abs(ds["rho_true"]) < 1).all()
    assert not np.allclose(ds["rho_true"].isel(round=0), ds["rho_true"].isel(round=1))
    summary = summarize_sbc(ds)
    assert summary["n_structures"] == 1 and summary["n_compiles"] <= 1
    assert set(summary["by_role"]) == {"capability", "safety"}


def test_rounds_are_fitted_as_the_fit_command_does_retrying_an_untrusted_first_attempt(
    monkeypatch,
):
    """With the test's short tuning as 'the default', every round (60 draws x 2 chains:
    bulk ESS far below the threshold, so never trusted) is retried once and says so;
    ``retry=False`` keeps first attempts."""
    import functools

    import safetywash.analysis.retry as retry_module

    monkeypatch.setattr(
        retry_module, "SamplerSettings", functools.partial(SamplerSettings, draws=60, tune=60)
    )
    monkeypatch.setattr(retry_module, "RETRY_FLAGS", {"--tune": "80", "--target-accept": "0.99"})
    common = {**_design(), "draws": 60, "tune": 60, "chains": 2, "config": FIXED_POOLING}
    retried = run_sbc(2, seed=31, **common)
    assert not retried["trustworthy"].values.any()
    assert retried["retried"].values.all() and retried.attrs["retry"] == 1
    assert summarize_sbc(retried)["n_retried"] == 2
    first = run_sbc(2, seed=31, retry=False, **common)
    assert not first["retried"].values.any() and first.attrs["retry"] == 0
    # Same seeds, other sampler settings on the retry: other draws.
    assert not np.array_equal(first["rho_median"].values, retried["rho_median"].values)


def test_summary_text_reports_roles_trust_compiles_and_time():
    from safetywash.cli.sbc import summary_text

    def figures(c50, c90, p):
        return {
            "coverage50": c50,
            "coverage90": c90,
            "uniformity_p": p,
            "mean_rank": 0.5,
            "mae_median": 0.04,
        }

    summary = {
        "n_rounds": 100,
        "n_benchmarks": 22,
        "rank_draws": 99,
        "bins": 10,
        **figures(0.49, 0.9, 0.31),
        "by_role": {"capability": figures(0.52, 0.88, 0.12), "safety": figures(0.47, 0.91, 0.6)},
        "n_untrusted": 3,
        "n_flipped": 0,
        "max_rhat": 1.02,
        "min_ess": 120.0,
        "divergences": 7,
        "n_compiles": 4,
        "n_structures": 2,
        "n_retried": 5,
        "wall_seconds": 512.25,
    }
    lines = summary_text(summary).splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    assert rows["capability"][:3] == ["0.520", "0.880", "0.120"]
    assert rows["safety"][:3] == ["0.470", "0.910", "0.600"]
    assert rows["all"][:3] == ["0.490", "0.900", "0.310"]
    assert "untrusted fits: 3 of 100" in lines[5]
    assert lines[6] == "retried fits: 5 of 100"
    assert lines[7] == "compiled models: 4 for 2 structure(s)"
    assert lines[8] == "wall time: 512.2 s"
