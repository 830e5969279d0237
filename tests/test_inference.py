"""Inference on simulated studies: recovery, reproducibility, sign, saving, calibration.

Every fit costs ~10-30 s (mostly nutpie's compilation), so the default suite shares fits
through module-scoped fixtures and runs eight in total: two recovery fits (60 LLMs x 16
benchmarks, half the cells missing at random / by era), two small sign fits, two more
small fits for reproducibility, and a two-round SBC through ``safetywash sbc``. Heavier
checks (sign over 20 seeds, a two-factor fit, the 100-round SBC) are marked ``slow``: run
them with ``pytest -m slow`` (the SBC: two regimes of 100 rounds, a few minutes each).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from safetywash.analysis.baseline import (
    BASELINE_VARIABLE,
    capability_benchmarks_for,
    fitted_baseline,
    oriented_baseline,
    store_paper_baseline,
)
from safetywash.analysis.calibration import (
    RANK_DRAWS,
    rank_uniformity,
    sbc_rank,
    summarize_sbc,
    thin_indices,
)
from safetywash.analysis.sbc import run_sbc
from safetywash.inference.diagnostics import fit_diagnostics
from safetywash.inference.fitfile import (
    FIT_FORMAT,
    UNCONSTRAINED_GROUP,
    FitMismatchError,
    benchmark_table,
    cell_index,
    diagnostics_of,
    fit_info,
    fitted_transform,
    llm_table,
    load_fit,
    save_fit,
    study_from_fit,
)
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.build import SAMPLER_SPACE_VARIABLES
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.pooling import pooling, whitening
from safetywash.model.simulate import simulate

SAMPLE_DIMS = ("chain", "draw")

SAFETY8 = {"alignment": 2, "bias": 2, "calibration": 2, "weaponization": 2}
RECOVERY_STUDY = {"n_llms": 60, "n_capability": 8, "safety": SAFETY8, "missing": 0.5}
RECOVERY_SETTINGS = SamplerSettings(draws=1000, tune=1000, seed=3)

SMALL_STUDY = {"n_llms": 30, "n_capability": 5, "safety": {"alignment": 2, "bias": 3}}
SMALL_DRAWS = {"draws": 200, "tune": 300}
SIGN_SEEDS = (3, 5)
SLOW_SIGN_SEEDS = tuple(range(100, 120))

GROUPS = (
    "posterior",
    "unconstrained_posterior",
    "sample_stats",
    "observed_data",
    "constant_data",
    "log_likelihood",
)
ATTRS = ("safetywash_version", "model_config", "study_sha256", "seed")


# --------------------------------------------------------------------------- helpers


def _posterior(dt: xr.DataTree) -> xr.Dataset:
    return dt["posterior"].to_dataset()


def _rho_interval(dt: xr.DataTree, prob: float) -> tuple[np.ndarray, np.ndarray]:
    q = _posterior(dt)["rho"].quantile([(1 - prob) / 2, (1 + prob) / 2], dim=SAMPLE_DIMS)
    return q.values[0], q.values[1]


def _chain_capability_corr(dt: xr.DataTree, truth: xr.Dataset) -> np.ndarray:
    means = _posterior(dt)["capability"].mean("draw").transpose("chain", "llm")
    true = truth["capability"].sel(llm=means["llm"]).values
    return np.array([np.corrcoef(m, true)[0, 1] for m in means.values])


def _recovery_checks(study, truth: xr.Dataset, dt: xr.DataTree) -> dict:
    """Figures the recovery tests assert on (returned so a failure message shows them)."""
    post = _posterior(dt)
    rho_true = truth["rho"].sel(benchmark=post["benchmark"]).values
    cap_true = truth["capability"].sel(llm=post["llm"]).values
    low, high = _rho_interval(dt, 0.9)
    median = post["rho"].median(SAMPLE_DIMS).values
    return {
        "capability_corr": float(np.corrcoef(post["capability"].mean(SAMPLE_DIMS), cap_true)[0, 1]),
        "rho_mae": float(np.abs(median - rho_true).mean()),
        "rho_max_error": float(np.abs(median - rho_true).max()),
        "covered90": int(((low <= rho_true) & (rho_true <= high)).sum()),
        "n_benchmarks": len(rho_true),
        "missing_fraction": float(study.missing_fraction),
        "verdict": diagnostics_of(dt).verdict(),
    }


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def random_fit():
    """60 LLMs x (8 capability + 8 safety), half the cells missing completely at random."""
    study, truth = simulate(**RECOVERY_STUDY, mechanism="random", seed=3)
    return study, truth, fit(study, None, RECOVERY_SETTINGS, progressbar=False)


@pytest.fixture(scope="module")
def era_fit():
    """The same design with cells missing by LLM era (older LLMs lack newer benchmarks)."""
    study, truth = simulate(**RECOVERY_STUDY, mechanism="era", seed=4)
    return study, truth, fit(study, None, RECOVERY_SETTINGS, progressbar=False)


def _small(seed: int, sampler_seed: int | None = None):
    study, truth = simulate(**SMALL_STUDY, missing=0.2, seed=seed)
    settings = SamplerSettings(**SMALL_DRAWS, seed=seed if sampler_seed is None else sampler_seed)
    return study, truth, fit(study, None, settings, progressbar=False)


@pytest.fixture(scope="module")
def small_fits() -> dict:
    """Small studies (30 LLMs x 10 benchmarks), study seed = sampler seed, for SIGN_SEEDS."""
    return {seed: _small(seed) for seed in SIGN_SEEDS}


# --------------------------------------------------------------------------- (a), (b) recovery


def test_recovery_missing_at_random(random_fit):
    study, truth, dt = random_fit
    figures = _recovery_checks(study, truth, dt)
    print(json.dumps(figures, indent=1))  # shown with -rA / -s
    assert 0.4 < figures["missing_fraction"] < 0.6, figures
    assert figures["capability_corr"] > 0.9, figures
    assert figures["rho_mae"] < 0.15, figures
    assert figures["covered90"] >= figures["n_benchmarks"] - 3, figures
    diag = diagnostics_of(dt)
    # Trustworthy, or at worst mildly short of it: the hierarchical SD of the safety
    # loadings (2 benchmarks per area) mixes slowly, so its ESS can fall a little under 400
    # and a few of the 4000 transitions can diverge.
    assert diag.max_rhat < 1.02, diag.verdict()
    assert diag.min_ess_bulk > 200 and diag.min_ess_tail > 200, diag.verdict()
    assert diag.divergences < 10, diag.verdict()


def test_recovery_missing_by_era(era_fit):
    study, truth, dt = era_fit
    figures = _recovery_checks(study, truth, dt)
    print(json.dumps(figures, indent=1))  # shown with -rA / -s
    assert figures["missing_fraction"] > 0.2, figures
    assert figures["capability_corr"] > 0.9, figures
    assert figures["rho_mae"] < 0.15, figures
    assert figures["covered90"] >= figures["n_benchmarks"] - 3, figures
    diag = diagnostics_of(dt)
    assert diag.max_rhat < 1.02, diag.verdict()
    assert diag.min_ess_bulk > 200 and diag.min_ess_tail > 200, diag.verdict()
    assert diag.divergences < 10, diag.verdict()


def test_fit_has_the_documented_structure(random_fit):
    study, _, dt = random_fit
    assert set(GROUPS) <= set(dt.children)
    post = _posterior(dt)
    assert post["capability"].dims == ("chain", "draw", "llm")
    for name in ("loading", "rho", "residual_sd"):
        assert post[name].dims == ("chain", "draw", "benchmark")
    assert post.sizes["chain"] == RECOVERY_SETTINGS.chains
    assert post.sizes["draw"] == RECOVERY_SETTINGS.draws
    assert dt["observed_data"]["score"].size == study.n_cells
    assert np.all(np.abs(post["rho"].values) <= 1)


def test_posterior_holds_interpretable_variables_only(random_fit):
    study, _, dt = random_fit
    post = _posterior(dt)
    moved = set(SAMPLER_SPACE_VARIABLES) & set(dt[UNCONSTRAINED_GROUP].data_vars)
    assert "capability_z" in moved and "log_specific_sd_wz" in moved
    assert not set(SAMPLER_SPACE_VARIABLES) & set(post.data_vars)
    assert "capability_basis" not in post.dims
    table = az.summary(dt)
    names = {str(i).split("[")[0] for i in table.index}
    assert {"rho", "loading", "capability", "residual_sd", "intercept", "specific_sd"} <= names
    assert not names & set(SAMPLER_SPACE_VARIABLES)
    # The moved whitened coordinates give what stays: log specific SD = centre + scale * z,
    # centre and scale from the pooled mean and spread and each benchmark's estimate.
    pool = pooling(prepare_data(study))
    centre, scale = whitening(
        post["residual_log_mean"].values[..., None],
        post["residual_log_sd"].values[..., None],
        np.array(pool.residual_estimates),
        np.array(pool.residual_errors),
    )
    z = dt[UNCONSTRAINED_GROUP]["log_specific_sd_wz"].values
    np.testing.assert_allclose(np.exp(centre + scale * z), post["specific_sd"].values, rtol=1e-6)
    # The verdict is computed on what stays in posterior.
    stored = diagnostics_of(dt)
    assert stored == fit_diagnostics(dt)
    assert stored.worst_rhat in post.data_vars and stored.worst_ess_bulk in post.data_vars


def test_cells_carry_llm_and_benchmark_coordinates(random_fit):
    study, _, dt = random_fit
    llm_idx, bench_idx = cell_index(dt)
    llms, benchmarks = llm_table(dt).index.to_numpy(), benchmark_table(dt).index.to_numpy()
    for group in ("observed_data", "log_likelihood"):
        ds = dt[group].to_dataset()
        np.testing.assert_array_equal(ds["llm"].values, llms[llm_idx])
        np.testing.assert_array_equal(ds["benchmark"].values, benchmarks[bench_idx])
    key = str(benchmarks[3])
    score = dt["observed_data"]["score"]
    chosen = score.where(score["benchmark"] == key, drop=True)
    assert chosen.size == int((study.scores["benchmark"] == key).sum())
    np.testing.assert_array_equal(chosen.values, score.values[bench_idx == 3])


def test_fit_file_decoders_rebuild_the_study(random_fit):
    study, _, dt = random_fit
    info = fit_info(dt)
    assert info.model_config == ModelConfig() and info.sampler_settings == RECOVERY_SETTINGS
    assert info.study_sha256 == study.sha256() and info.seed == RECOVERY_SETTINGS.seed
    assert info.diagnostics == diagnostics_of(dt)
    assert info.to_attrs() == dict(dt.attrs)
    rebuilt = study_from_fit(dt)
    assert rebuilt.sha256() == study.sha256()
    pd.testing.assert_frame_equal(benchmark_table(dt), study.benchmarks, check_dtype=False)
    pd.testing.assert_frame_equal(llm_table(dt), study.llms, check_dtype=False)
    const = dt["constant_data"]
    y = fitted_transform(dt).forward(const["raw_value"].values, const["benchmark_index"].values)
    np.testing.assert_array_equal(y, dt["observed_data"]["score"].values)


def test_paper_baseline_is_stored_by_the_analysis_layer(random_fit):
    study, _, dt = random_fit
    assert BASELINE_VARIABLE not in dt["constant_data"]  # fit() only fits
    stored = store_paper_baseline(dt, study)
    assert BASELINE_VARIABLE not in dt["constant_data"]  # the input tree is left as it was
    want = oriented_baseline(study).reindex(benchmark_table(dt).index)
    np.testing.assert_array_equal(fitted_baseline(stored).to_numpy(), want.to_numpy())
    attrs = stored["constant_data"][BASELINE_VARIABLE].attrs
    assert json.loads(attrs["capability_benchmarks"]) == list(capability_benchmarks_for(study))
    xr.testing.assert_identical(stored["posterior"].to_dataset(), dt["posterior"].to_dataset())
    other, _ = simulate(**RECOVERY_STUDY, seed=98)
    with pytest.raises(ValueError, match="not made from"):
        store_paper_baseline(dt, other)


def test_fit_reading_modules_do_not_import_pymc():
    modules = (
        "safetywash.inference.fitfile",
        "safetywash.model.config",
        "safetywash.model.transform",
        "safetywash.model.likelihood",
        "safetywash.model.data",
        "safetywash.analysis.predictive",
        "safetywash.analysis.intervals",
        "safetywash.analysis.calibration",
    )
    code = f"import sys; import {', '.join(modules)}; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


# --------------------------------------------------------------------------- (c) seeds


def test_same_seed_gives_identical_draws(small_fits):
    # small_fits[3] compiled this model once already. Both fits compared here therefore use
    # PyTensor's warm compile cache: a freshly compiled gradient can differ from the cached
    # one in the last bits (seen: ~1e-13 relative), which HMC amplifies, so "same seed, same
    # numbers" holds for the same compile-cache state (as on any rerun on one machine).
    study = small_fits[3][0]
    _, _, first = _small(3)
    _, _, again = _small(3)
    a, b = _posterior(first)["rho"].values, _posterior(again)["rho"].values
    assert np.array_equal(a, b)
    assert np.array_equal(_posterior(first)["capability"].values, _posterior(again)["capability"])
    assert first.attrs["study_sha256"] == again.attrs["study_sha256"] == study.sha256()


def test_other_seed_gives_other_draws(small_fits):
    _, _, first = small_fits[3]
    _, _, other = _small(3, sampler_seed=4)
    assert other.attrs["study_sha256"] == first.attrs["study_sha256"]
    assert other.attrs["seed"] == 4
    assert not np.array_equal(_posterior(first)["rho"].values, _posterior(other)["rho"].values)


# --------------------------------------------------------------------------- (d) sign


@pytest.mark.parametrize("seed", SIGN_SEEDS)
def test_no_chain_flips_sign_small_studies(small_fits, seed):
    _, truth, dt = small_fits[seed]
    corr = _chain_capability_corr(dt, truth)
    assert np.all(corr > 0), f"seed {seed}: per-chain correlations {np.round(corr, 3)}"


def test_no_chain_flips_sign_recovery_fits(random_fit, era_fit):
    for _, truth, dt in (random_fit, era_fit):
        corr = _chain_capability_corr(dt, truth)
        assert np.all(corr > 0.9), np.round(corr, 3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SIGN_SEEDS)
def test_no_chain_flips_sign_many_seeds(seed):
    _, truth, dt = _small(seed)
    corr = _chain_capability_corr(dt, truth)
    assert np.all(corr > 0), f"seed {seed}: per-chain correlations {np.round(corr, 3)}"


# --------------------------------------------------------------------------- (e) save / load


def test_save_load_round_trip(random_fit, tmp_path):
    study, _, dt = random_fit
    path = save_fit(dt, tmp_path / "fits" / "fit.nc")
    assert path == tmp_path / "fits" / "fit.nc" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["fit.nc"]  # no temp file left

    loaded = load_fit(path, study=study, config=ModelConfig())
    for group in GROUPS:
        xr.testing.assert_equal(loaded[group].to_dataset(), dt[group].to_dataset())
    assert np.array_equal(loaded["posterior"]["rho"].values, dt["posterior"]["rho"].values)
    for name in ATTRS:
        assert loaded.attrs[name] == dt.attrs[name]

    with xr.open_datatree(path, engine="h5netcdf") as opened:
        assert set(GROUPS) <= set(opened.children)
        assert set(ATTRS) <= set(opened.attrs)
        assert ModelConfig.from_json(opened.attrs["model_config"]) == ModelConfig()
        assert opened.attrs["study_sha256"] == study.sha256()
        assert int(opened.attrs["seed"]) == RECOVERY_SETTINGS.seed

    table = az.summary(loaded, var_names=["rho"])
    assert len(table) == loaded["posterior"].sizes["benchmark"]
    assert np.isfinite(table["mean"].to_numpy(dtype=float)).all()


def test_load_refuses_other_study_or_config(random_fit, tmp_path):
    _, _, dt = random_fit
    path = save_fit(dt, tmp_path / "fit.nc")
    other_study, _ = simulate(**RECOVERY_STUDY, seed=99)
    with pytest.raises(FitMismatchError, match="another study"):
        load_fit(path, study=other_study)
    with pytest.raises(FitMismatchError, match="config"):
        load_fit(path, config=ModelConfig(prior_scale=2.0))
    with pytest.raises(FitMismatchError):
        load_fit(path, config=ModelConfig(transform="logit"))


def test_load_refuses_older_fit_format(random_fit, tmp_path):
    _, _, dt = random_fit
    old = dt.copy()
    del old.attrs["fit_format"]  # fits written before the attr existed are format 1
    path = save_fit(old, tmp_path / "old.nc")
    with pytest.raises(FitMismatchError, match=f"format-1 fit; .* reads format {FIT_FORMAT}"):
        load_fit(path, check_version=False)
    assert int(load_fit(save_fit(dt, tmp_path / "new.nc")).attrs["fit_format"]) == FIT_FORMAT


def test_interrupted_save_leaves_nothing(random_fit, tmp_path, monkeypatch):
    _, _, dt = random_fit
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "fit.nc"
    original = xr.DataTree.to_netcdf
    calls = []

    def partial_then_interrupt(self, filepath, *args, **kwargs):
        calls.append(Path(filepath))
        Path(filepath).write_bytes(b"\x89HDF\r\n\x1a\npartial")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.DataTree, "to_netcdf", partial_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_fit(dt, target)
    assert calls and calls[0] != target  # written to a temp file, not the target
    assert list(folder.iterdir()) == []

    # An existing fit survives an interrupted overwrite.
    monkeypatch.setattr(xr.DataTree, "to_netcdf", original)
    save_fit(dt, target)
    before = target.read_bytes()
    monkeypatch.setattr(xr.DataTree, "to_netcdf", partial_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_fit(dt, target)
    assert [p.name for p in folder.iterdir()] == ["fit.nc"]
    assert target.read_bytes() == before


def _numeric_arrays(dt: xr.DataTree) -> dict[str, xr.Variable]:
    """Every non-scalar numeric variable of a tree, by its path in the file."""
    return {
        f"{node.path.strip('/')}/{name}": var
        for node in dt.subtree
        for name, var in node.to_dataset().variables.items()
        if var.ndim and var.dtype.kind in "biuf"
    }


def test_saved_fit_is_checksummed_and_compressed(random_fit, tmp_path):
    import h5py

    _, _, dt = random_fit
    path = save_fit(dt, tmp_path / "fit.nc")
    arrays = _numeric_arrays(dt)
    assert "posterior/rho" in arrays and "log_likelihood/score" in arrays
    with h5py.File(path, "r") as handle:
        for name in arrays:
            assert handle[name].fletcher32, name
            assert handle[name].compression == "gzip", name
    plain = tmp_path / "plain.nc"
    dt.to_netcdf(plain, engine="h5netcdf")  # no encoding: neither checksums nor compression
    with h5py.File(plain, "r") as handle:
        assert not handle["posterior/rho"].fletcher32
    assert path.stat().st_size < plain.stat().st_size


def _flip_bytes_in(path: Path, variable: str, n: int = 4) -> None:
    """Invert ``n`` bytes in the middle of the stored data of one variable (its middle chunk)."""
    import h5py

    with h5py.File(path, "r") as handle:
        data = handle[variable].id
        chunk = data.get_chunk_info(data.get_num_chunks() // 2)
    with open(path, "r+b") as handle:
        handle.seek(chunk.byte_offset + chunk.size // 2)
        original = handle.read(n)
        handle.seek(chunk.byte_offset + chunk.size // 2)
        handle.write(bytes(b ^ 0xFF for b in original))


@pytest.mark.parametrize("variable", ["posterior/capability", "sample_stats/step_size"])
def test_flipped_data_bytes_fail_the_checksum(random_fit, tmp_path, variable):
    from safetywash.inference.netcdf import FitFileError

    _, _, dt = random_fit
    path = save_fit(dt, tmp_path / "fit.nc")
    assert dt[variable].size >= 100
    _flip_bytes_in(path, variable)
    with pytest.raises(FitFileError) as caught:
        load_fit(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: variable /{variable} cannot be read")
    assert "corrupted" in message and "checksum" in message


def test_damaged_or_foreign_files_are_named(random_fit, tmp_path):
    from safetywash.inference.netcdf import FitFileError

    _, _, dt = random_fit
    good = save_fit(dt, tmp_path / "fit.nc")
    data = good.read_bytes()
    cases = {
        "truncated.nc": (data[: len(data) // 2], f"truncated ({len(data) // 2} of {len(data)}"),
        "text.nc": (b"llm,benchmark,value\nx,y,1\n", "not an HDF5/NetCDF-4 file"),
        "empty.nc": (b"", "the file is empty"),
    }
    for name, (content, needle) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(FitFileError, match=re.escape(needle)) as caught:
            load_fit(tmp_path / name)
        assert str(caught.value).startswith(f"{tmp_path / name}: ")
    xr.Dataset({"x": ("a", np.arange(3.0))}).to_netcdf(tmp_path / "other.nc", engine="h5netcdf")
    with pytest.raises(FitMismatchError, match="is not a safetywash fit"):
        load_fit(tmp_path / "other.nc")
    with pytest.raises(FileNotFoundError, match="no fit at"):
        load_fit(tmp_path / "missing.nc")


# --------------------------------------------------------------------------- (f) area factor


@pytest.mark.slow
def test_two_factor_model_recovers_bias_rho():
    safety = {"alignment": 2, "bias": 4, "calibration": 2}
    study, truth = simulate(
        60, 8, safety, missing=0.3, factor_areas=("bias",), seed=11
    )  # bias benchmarks load on capability and on a bias factor
    config = ModelConfig(factors=("bias",))
    dt = fit(study, config, SamplerSettings(draws=1000, tune=1000, seed=11), progressbar=False)
    post = _posterior(dt)
    assert "factor_loading" in post and "area_factor" in post
    bias = [k for k in post["benchmark"].values if k.startswith("bias_")]
    rho_true = truth["rho"].sel(benchmark=bias).values
    assert np.all(truth["factor_loading"].sel(benchmark=bias).values > 0)
    rho = post["rho"].sel(benchmark=bias)
    q = rho.quantile([0.05, 0.95], dim=SAMPLE_DIMS).values
    covered = (q[0] <= rho_true) & (rho_true <= q[1])
    median = rho.median(SAMPLE_DIMS).values
    detail = f"true {np.round(rho_true, 2)}, median {np.round(median, 2)}, 90% {np.round(q, 2)}"
    assert covered.sum() >= 3, detail
    assert np.abs(median - rho_true).mean() < 0.2, detail
    assert np.all(_chain_capability_corr(dt, truth) > 0.9)
    # Every chain's bias factor points the way of the truth (the anchor loading is positive).
    eta = post["area_factor"].sel(factor="bias").mean("draw").transpose("chain", "llm").values
    true_eta = truth["area_factor"].sel(factor="bias").values
    eta_corr = np.array([np.corrcoef(e, true_eta)[0, 1] for e in eta])
    gamma = post["factor_loading"].mean("draw").values
    assert np.all(eta_corr > 0), f"factor flipped in a chain: corr {eta_corr}, loadings {gamma}"
    diag = diagnostics_of(dt)
    assert diag.max_rhat < 1.05, diag.verdict()


# --------------------------------------------------------------------------- thin areas

#: Areas of one and two benchmarks beside two of four.
THIN_AREAS = {"machine_ethics": 4, "bias": 4, "alignment": 2, "truthfulness": 1, "calibration": 1}


@pytest.mark.slow
def test_thin_areas_fit_trusted_and_cover_rho():
    """Truth drawn from the priors (area means around a common mean), 30 LLMs: every fit is
    trusted at the default settings and the 90% intervals of rho cover the truth, in the
    thin areas too."""
    thin = ("alignment", "truthfulness", "calibration")
    covered, covered_thin, n_thin, total = 0, 0, 0, 0
    for seed in range(4):
        study, truth = simulate(30, 8, THIN_AREAS, missing=0.1, truth="prior", seed=seed)
        dt = fit(study, None, SamplerSettings(seed=seed), progressbar=False)
        diag = diagnostics_of(dt)
        assert diag.trustworthy, f"seed {seed}: {diag.verdict()}"
        keys = _posterior(dt)["benchmark"].values
        low, high = _rho_interval(dt, 0.9)
        inside = (low <= truth["rho"].sel(benchmark=keys).values) & (
            truth["rho"].sel(benchmark=keys).values <= high
        )
        in_thin = np.array([k.startswith(thin) for k in keys])
        covered, total = covered + inside.sum(), total + len(keys)
        covered_thin, n_thin = covered_thin + inside[in_thin].sum(), n_thin + in_thin.sum()
    # 90% intervals; rho errors within a fit are correlated through capability, and over
    # these four studies 80% of the truths fall inside (as many in thin areas as elsewhere).
    assert covered >= 0.75 * total, (covered, total)
    assert covered_thin >= 0.75 * n_thin, (covered_thin, n_thin)


# --------------------------------------------------------------------------- (g) SBC


def test_thin_indices_are_even_and_distinct():
    idx = thin_indices(2000, 99)
    assert len(idx) == 99 and len(np.unique(idx)) == 99
    assert idx[0] == 0 and idx[-1] < 2000
    assert np.ptp(np.diff(idx)) <= 1
    assert np.array_equal(thin_indices(50, 99), np.arange(50))


def test_sbc_rank_counts_draws_below_truth():
    draws = np.array([[0.1, 5.0], [0.2, 6.0], [0.3, 7.0]])
    assert sbc_rank(draws, np.array([0.25, 4.0])).tolist() == [2, 0]
    assert sbc_rank(draws, np.array([1.0, np.nan])).tolist() == [3, -1]


def test_rank_uniformity_detects_non_uniform_ranks():
    rng = np.random.default_rng(0)
    # Calibrated by construction: truth and draws from the same distribution.
    draws = rng.normal(size=(RANK_DRAWS, 2000))
    ranks = sbc_rank(draws, rng.normal(size=2000))
    assert rank_uniformity(ranks, RANK_DRAWS)[1] > 0.001
    # Overconfident posterior (too narrow): ranks pile up at both ends.
    ranks = sbc_rank(0.5 * draws, rng.normal(size=2000))
    assert rank_uniformity(ranks, RANK_DRAWS)[1] < 1e-6
    # L + 1 not divisible by the bins: expected counts follow the values per bin.
    assert rank_uniformity(np.arange(50), 49, bins=3)[1] > 0.99


def _fake_sbc(n_rounds: int = 40, n_bench: int = 6, seed: int = 0) -> xr.Dataset:
    """An SBC dataset of a calibrated Gaussian posterior, built without sampling."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n_rounds, n_bench))
    center = truth + rng.normal(size=truth.shape)  # posterior N(center, 1) given data
    draws = center[None] + rng.normal(size=(RANK_DRAWS, n_rounds, n_bench))
    ranks = np.stack([sbc_rank(draws[:, r], truth[r]) for r in range(n_rounds)])
    z = np.abs(truth - center)
    rb = ("round", "benchmark")
    data = {
        "rho_median": (rb, center),
        "n_rank_draws": ("round", np.full(n_rounds, RANK_DRAWS)),
        "trustworthy": ("round", np.arange(n_rounds) > 0),
        "min_chain_capability_corr": ("round", np.ones(n_rounds)),
        "max_rhat": ("round", np.ones(n_rounds)),
        "min_ess": ("round", np.full(n_rounds, 500.0)),
        "divergences": ("round", np.zeros(n_rounds, dtype=int)),
    }
    for suffix in ("", "_insample"):
        data["rho_true" + suffix] = (rb, truth)
        data["rank" + suffix] = (rb, ranks)
        data["covered50" + suffix] = (rb, z <= 0.6745)
        data["covered90" + suffix] = (rb, z <= 1.6449)
    roles = ["capability"] * (n_bench // 2) + ["safety"] * (n_bench - n_bench // 2)
    return xr.Dataset(data, coords={"role": ("benchmark", roles)})


def test_summarize_sbc_on_a_calibrated_fake():
    summary = summarize_sbc(_fake_sbc())
    assert summary["n_rounds"] == 40 and summary["n_benchmarks"] == 6
    assert summary["n_untrusted"] == 1 and summary["n_flipped"] == 0
    assert abs(summary["coverage50"] - 0.5) < 0.1
    assert abs(summary["coverage90"] - 0.9) < 0.06
    assert summary["uniformity_p"] > 0.001
    assert 0.4 < summary["mean_rank"] < 0.6
    assert set(summary["by_role"]) == {"capability", "safety"}
    json.dumps(summary)  # JSON-serialisable


@pytest.fixture(scope="module")
def sbc_smoke(tmp_path_factory):
    """Two SBC rounds on a tiny study (20 LLMs x 8 benchmarks) through ``safetywash sbc``."""
    from safetywash.cli import main

    out = tmp_path_factory.mktemp("sbc")
    argv = [
        "--rounds", "2", "--llms", "20", "--capability-benchmarks", "4", "--safety-per-area", "2",
        "--areas", "alignment", "bias", "--missing", "0.1", "--draws", "150", "--tune", "200",
        "--seed", "7", "--out", str(out),
    ]  # fmt: skip
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["sbc", *argv, "--json", str(out.parent / "sbc_summary.json")]) == 0
    return out, printed.getvalue()


def test_sbc_smoke(sbc_smoke):
    out, printed = sbc_smoke
    with xr.open_dataset(out / "sbc.nc", engine="h5netcdf") as opened:
        ds = opened.load()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert json.loads((out.parent / "sbc_summary.json").read_text(encoding="utf-8")) == summary
    # The printed summary: calibration overall and by role, trust, compiles, wall time.
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line}
    for role in ("all", "capability", "safety"):
        assert float(rows[role][1]) == pytest.approx(
            (summary["by_role"].get(role) or summary)["coverage90"], abs=5e-4
        )
    assert f"untrusted fits: {summary['n_untrusted']} of 2" in printed
    assert "compiled models:" in printed and "wall time:" in printed
    # One design: the same cells every round; a structure compiled at most once.
    assert (ds["n_observed"] == ds["n_observed"].isel(round=0)).all()
    assert summary["n_compiles"] <= summary["n_structures"] <= 2
    if ds["structure"].values[1] == ds["structure"].values[0]:
        assert not ds["compiled"].values[1]
    assert dict(ds.sizes) == {"round": 2, "benchmark": 8}
    for name in ("rank", "covered50", "covered90", "rho_median", "rho_true"):
        assert ds[name].dims == ("round", "benchmark")
    for name in ("max_rhat", "min_ess", "divergences", "trustworthy"):
        assert ds[name].dims == ("round",)
    assert ds["seed"].values.tolist() == [7, 8]
    assert ds["n_rank_draws"].values.tolist() == [RANK_DRAWS, RANK_DRAWS]
    assert ((ds["rank"] >= 0) & (ds["rank"] <= RANK_DRAWS)).all()
    assert (ds["role"] == "capability").sum() == 4
    assert ds.attrs["n_llms"] == 20 and ds.attrs["seed"] == 7
    for key in ("coverage50", "coverage90"):
        assert 0 <= summary[key] <= 1
        assert 0 <= summary["insample"][key] <= 1
    assert 0 <= summary["uniformity_p"] <= 1
    assert 0 <= summary["n_untrusted"] <= 2
    assert summary["mae_median"] < 0.5
    assert (ds["min_chain_capability_corr"] > 0).all()  # no flipped chain
    again = summarize_sbc(ds)  # the script's summary is the library's
    for key in ("coverage50", "coverage90", "uniformity_p", "mae_median", "n_untrusted"):
        assert summary[key] == pytest.approx(again[key])


#: The two SBC regimes of the calibration targets: the size of the Safetywashing chat
#: matrix (26 LLMs, 10 capability benchmarks, 4 areas x 3 safety benchmarks), complete or
#: sparse: 62% of the cells drawn missing, 60.7% once every benchmark keeps 3 LLMs and
#: every LLM a score.
SBC_REGIMES = {"safetywashing": 0.0, "sparse": 0.62}


@pytest.fixture(scope="module", params=sorted(SBC_REGIMES))
def full_sbc(request):
    """100 SBC rounds in one regime (one compile per structure: a few minutes each)."""
    ds = run_sbc(
        100,
        n_llms=26,
        n_capability=10,
        safety={"alignment": 3, "bias": 3, "calibration": 3, "weaponization": 3},
        missing=SBC_REGIMES[request.param],
        mechanism="random",
        draws=1000,
        tune=1000,
        seed=100,
    )
    missing = 1 - float(ds["n_observed"].isel(round=0).sum()) / (26 * 22)
    assert missing >= 0.6 if SBC_REGIMES[request.param] else missing == 0
    return summarize_sbc(ds)


@pytest.mark.slow
def test_sbc_calibrated_for_insample_rho(full_sbc):
    """Calibration against the truth on the model's own scale of capability.

    The sampled model fixes the in-sample spread of capability at 1, so the quantity its
    rho estimates is the truth re-expressed with that spread (``rho_true_insample``).
    """
    detail = json.dumps(full_sbc, indent=1)
    assert 0.8 <= full_sbc["insample"]["coverage90"] <= 0.97, detail
    assert full_sbc["insample"]["uniformity_p"] > 0.001, detail
    assert full_sbc["n_flipped"] == 0, detail


@pytest.mark.slow
def test_sbc_calibrated_for_simulated_rho(full_sbc):
    """90% intervals of rho cover 86-94% of the truths for capability and for safety
    benchmarks, ranks are uniform, and every fit passes the trust thresholds."""
    detail = json.dumps(full_sbc, indent=1)
    assert 0.8 <= full_sbc["coverage90"] <= 0.97, detail
    assert full_sbc["uniformity_p"] > 0.05, detail
    for role in ("capability", "safety"):
        figures = full_sbc["by_role"][role]
        assert 0.86 <= figures["coverage90"] <= 0.94, (role, detail)
        assert figures["uniformity_p"] > 0.05, (role, detail)
    assert full_sbc["n_untrusted"] == 0, detail
    assert full_sbc["n_compiles"] == full_sbc["n_structures"], detail
