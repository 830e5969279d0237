"""Prior sensitivity (``safetywash.analysis.sensitivity``): verdict flags on hand-made posteriors,
and a real refit of a small simulated study at two prior scales through the script.

The reference fit is the simulated one-factor fit shared with test_compare and test_newllm
(through a file in the session's temporary folder); the two refits use few draws.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from safetywash.analysis.sensitivity import (
    format_sensitivity,
    prior_sensitivity,
    refit_prior_scales,
    sensitivity_table,
)
from safetywash.analysis.separability import separability
from safetywash.inference.fitfile import (
    diagnostics_of,
    fit_config,
    fit_sampler_settings,
    load_fit,
    save_fit,
)
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from shared_fits import SHARED_SETTINGS, shared_fit

REFIT_DRAWS = {"draws": 150, "tune": 300}

SAMPLE_DIMS = ("chain", "draw")


# --------------------------------------------------------------------------- hand-made


DIAGNOSTICS_OK = {
    "max_rhat": 1.0,
    "worst_rhat": "rho",
    "min_ess_bulk": 1000.0,
    "worst_ess_bulk": "rho",
    "min_ess_tail": 1000.0,
    "worst_ess_tail": "rho",
    "divergences": 0,
    "n_draws": 2000,
}


#: The catalog columns every fit stores that the sensitivity summary does not read.
STORED_CATALOG_DEFAULTS = {
    "direction": "higher",
    "scale": "fraction",
    "lower": 0.0,
    "upper": 1.0,
    "chance": np.nan,
    "n_items": np.nan,
    "parent": "",
    "note": "",
}


def toy_fit(scale: float, rho: dict[str, np.ndarray], *, rhat: float = 1.0) -> xr.DataTree:
    """What the sensitivity summary reads: rho and loading draws, metadata, config."""
    keys = list(rho)
    values = np.stack([rho[k] for k in keys], axis=-1)
    post = xr.Dataset(
        {
            "rho": ((*SAMPLE_DIMS, "benchmark"), values),
            "loading": ((*SAMPLE_DIMS, "benchmark"), values),
        },
        coords={"benchmark": keys},
    )
    const = xr.Dataset(
        {
            "benchmark_display_name": ("benchmark", [k.upper() for k in keys]),
            "benchmark_role": ("benchmark", ["safety"] * (len(keys) - 1) + ["capability"]),
            "benchmark_area": ("benchmark", ["bias"] * (len(keys) - 1) + ["capability"]),
            **{
                f"benchmark_{column}": ("benchmark", [value] * len(keys))
                for column, value in STORED_CATALOG_DEFAULTS.items()
            },
        },
        coords={"benchmark": keys},
    )
    dt = xr.DataTree.from_dict(
        {
            "posterior": post,
            "constant_data": const,
            "observed_data": xr.Dataset({"score": ("cell", np.arange(5.0))}),
        }
    )
    dt.attrs.update(
        model_config=ModelConfig(prior_scale=scale).to_json(),
        diagnostics=json.dumps({**DIAGNOSTICS_OK, "max_rhat": rhat}),
    )
    return dt


def _draws(center: float, spread: float, seed: int) -> np.ndarray:
    return center + spread * np.random.default_rng(seed).normal(size=(2, 1000))


@pytest.fixture(scope="module")
def toy_fits():
    """stable: clearly separable everywhere; flip: P(sep) crosses 0.5; sign: the favoured
    sign flips (P(rho > 0) ~ 1 at scales 0.5 and 1, ~ 0.23 at scale 2)."""
    base = {
        "stable": _draws(0.2, 0.03, 0),
        "flip": _draws(0.47, 0.1, 1),
        "sign": _draws(0.45, 0.1, 2),
        "cap": _draws(0.9, 0.02, 3),
    }
    wide = {
        "stable": _draws(0.22, 0.03, 4),
        "flip": _draws(0.56, 0.1, 5),
        "sign": _draws(-0.15, 0.2, 6),
        "cap": _draws(0.9, 0.02, 7),
    }
    narrow = {
        "stable": _draws(0.18, 0.03, 8),
        "flip": _draws(0.45, 0.1, 9),
        "sign": _draws(0.45, 0.1, 10),
        "cap": _draws(0.9, 0.02, 11),
    }
    return toy_fit(1.0, base), {2.0: toy_fit(2.0, wide, rhat=1.2), 0.5: toy_fit(0.5, narrow)}


def test_flags_and_shifts_are_the_direct_ones(toy_fits):
    dt, refits = toy_fits
    ds = prior_sensitivity(dt, refits, tau=0.5, ci_prob=0.94)
    assert list(ds["prior_scale"].values) == [0.5, 1.0, 2.0]
    fits = {0.5: refits[0.5], 1.0: dt, 2.0: refits[2.0]}
    for scale, f in fits.items():
        expected = separability(f, tau=0.5, ci_prob=0.94)
        for var in ("rho_median", "rho_hdi_low", "rho_hdi_high", "p_separable"):
            np.testing.assert_allclose(ds[var].sel(prior_scale=scale).values, expected[var].values)
    medians = np.array([separability(fits[s])["rho_median"].values for s in fits])
    np.testing.assert_allclose(ds.rho_median_shift.values, np.ptp(medians, axis=0))
    names = ["separable_depends_on_prior", "sign_depends_on_prior", "prior_dependent"]
    flags = ds[names].reset_coords(drop=True).to_dataframe()[names]
    assert flags.loc["stable"].tolist() == [False, False, False]
    assert flags.loc["flip"].tolist() == [True, False, True]
    assert flags.loc["sign"].tolist() == [False, True, True]
    assert flags.loc["cap"].tolist() == [False, False, False]
    assert ds.trustworthy.values.tolist() == [True, True, False]
    for scale, f in fits.items():
        p_positive = (f["posterior"]["rho"] > 0).mean(("chain", "draw"))
        np.testing.assert_allclose(ds.p_positive.sel(prior_scale=scale).values, p_positive)
    assert ds.rho_sign.sel(benchmark="sign").values.tolist() == [1, 1, -1]


@pytest.fixture(scope="module")
def edge_fits():
    """The HarmBench GCG case: rho's median is -0.3 at every scale, its interval reaches
    past 0 at scale 2 only; and a rho near 0 whose P(rho > 0) wobbles around 0.5."""
    base = {"edge": _draws(-0.3, 0.08, 20), "zero": _draws(0.01, 0.1, 21)}
    wide = {"edge": _draws(-0.3, 0.2, 22), "zero": _draws(-0.01, 0.1, 23)}
    narrow = {"edge": _draws(-0.3, 0.06, 24), "zero": _draws(0.02, 0.1, 25)}
    for fits in (base, wide, narrow):
        fits["cap"] = _draws(0.9, 0.02, 26)
    return toy_fit(1.0, base), {2.0: toy_fit(2.0, wide), 0.5: toy_fit(0.5, narrow)}


def test_sign_verdict_reads_probabilities_not_interval_edges(edge_fits):
    dt, refits = edge_fits
    ds = prior_sensitivity(dt, refits, tau=0.5, ci_prob=0.94)
    edge, zero = ds.sel(benchmark="edge"), ds.sel(benchmark="zero")
    # the old rule (sign of the HDI) would flip: below 0 at scales 0.5 and 1, covering 0 at 2
    assert (edge.rho_hdi_high.sel(prior_scale=[0.5, 1.0]) < 0).all()
    assert edge.rho_hdi_low.sel(prior_scale=2.0) < 0 < edge.rho_hdi_high.sel(prior_scale=2.0)
    assert (edge.rho_median < 0).all() and (edge.p_positive < 0.4).all()
    assert edge.rho_sign.values.tolist() == [-1, -1, -1]
    assert not bool(edge.sign_depends_on_prior)
    # P(rho > 0) on both sides of 0.5 by less than the margin: no sign favoured, no flip
    assert (zero.p_positive > 0.4).all() and (zero.p_positive < 0.6).all()
    assert zero.p_positive.max() > 0.5 > zero.p_positive.min()
    assert zero.rho_sign.values.tolist() == [0, 0, 0]
    assert not bool(zero.sign_depends_on_prior)
    assert ds.attrs["sign_margin"] == 0.1
    table = sensitivity_table(ds).set_index("benchmark")
    for scale in (0.5, 1.0, 2.0):
        for var in ("rho_hdi_low", "rho_hdi_high", "p_positive"):
            assert table.loc["edge", f"{var}@{scale:g}"] == pytest.approx(
                float(edge[var].sel(prior_scale=scale))
            )
    assert "sign of rho" not in format_sensitivity(ds)


def test_table_and_text(toy_fits):
    dt, refits = toy_fits
    ds = prior_sensitivity(dt, refits)
    table = sensitivity_table(ds)
    assert list(table["benchmark"]) == ["flip", "sign", "stable", "cap"]  # safety first
    assert {"rho_median@0.5", "p_separable@2", "prior_dependent"} <= set(table.columns)
    assert {"rho_hdi_low@0.5", "rho_hdi_high@2", "p_positive@1"} <= set(table.columns)
    text = format_sensitivity(ds)
    assert "! separability" in text and "! sign of rho" in text
    assert "2 of 3 benchmarks have a verdict that depends on the prior: flip, sign" in text
    assert "did not converge cleanly" in text and "CAP" not in text
    assert "CAP" in format_sensitivity(ds, only_safety=False)


def test_refits_must_be_of_the_same_data(toy_fits):
    dt, refits = toy_fits
    other = refits[2.0].copy()
    other["observed_data"] = xr.DataTree(xr.Dataset({"score": ("cell", np.ones(5))}))
    with pytest.raises(ValueError, match="not of the same data"):
        prior_sensitivity(dt, {2.0: other})
    with pytest.raises(ValueError, match="has prior_scale 2"):
        prior_sensitivity(dt, {3.0: refits[2.0]})


# --------------------------------------------------------------------------- real refits


def _script():
    from safetywash.cli import main

    return lambda argv: main(["sensitivity", *argv])


@pytest.fixture(scope="module")
def script_run(tmp_path_factory):
    """The script on the shared fit: refits at prior_scale 0.5 and 2, saved."""
    _, _, dt = shared_fit(tmp_path_factory)
    root = tmp_path_factory.mktemp("sensitivity")
    save_fit(dt, root / "run" / "posterior.nc")
    argv = [
        str(root / "run"),
        "--scales",
        "0.5",
        "2",
        "--draws",
        str(REFIT_DRAWS["draws"]),
        "--tune",
        str(REFIT_DRAWS["tune"]),
        "--save-fits",
        str(root / "refits"),
        "--no-progress",
    ]
    code = _script()(argv)
    refits = {
        s: load_fit(root / "refits" / f"prior_scale_{s:g}" / "posterior.nc") for s in (0.5, 2.0)
    }
    return code, root, dt, refits


def test_sampler_settings_come_from_the_fit(tmp_path_factory):
    _, _, dt = shared_fit(tmp_path_factory)
    settings = fit_sampler_settings(dt)
    assert settings == SamplerSettings(**SHARED_SETTINGS)
    assert fit_sampler_settings(dt, draws=10, seed=None).draws == 10
    assert fit_sampler_settings(dt, draws=10, seed=None).seed == SHARED_SETTINGS["seed"]
    assert refit_prior_scales(dt, [1.0]) == {}  # the fit's own scale is not refitted
    tampered = dt.copy()
    y = dt["observed_data"]["score"].values + 0.5
    tampered["observed_data"] = xr.DataTree(xr.Dataset({"score": ("cell", y)}))
    with pytest.raises(ValueError, match="does not reproduce"):
        refit_prior_scales(tampered, [2.0])


def test_script_refits_with_each_prior_scale(script_run, capsys):
    code, root, dt, refits = script_run
    assert code == 0
    for scale, refit in refits.items():
        config = fit_config(refit)
        assert config.prior_scale == scale
        assert config.factors == fit_config(dt).factors
        settings = json.loads(refit.attrs["sampler_settings"])
        assert settings["draws"] == REFIT_DRAWS["draws"] and settings["seed"] == 1
        np.testing.assert_allclose(
            refit["observed_data"]["score"].values, dt["observed_data"]["score"].values
        )
    table = pd.read_csv(root / "run" / "prior_sensitivity.csv")
    expected = sensitivity_table(prior_sensitivity(dt, refits))
    assert list(table["benchmark"]) == list(expected["benchmark"])
    np.testing.assert_allclose(table["p_separable@2"], expected["p_separable@2"])
    np.testing.assert_allclose(table["rho_median_shift"], expected["rho_median_shift"])
    for column in ("rho_hdi_low@0.5", "rho_hdi_high@2", "p_positive@1"):
        np.testing.assert_allclose(table[column], expected[column])
    for scale in (0.5, 2.0):
        verdict = (root / "refits" / f"prior_scale_{scale:g}" / "VERDICT").read_text()
        assert verdict.splitlines()[0] == (
            "TRUSTED" if diagnostics_of(refits[scale]).trustworthy else "NOT TRUSTED"
        )


def test_wider_prior_allows_more_spread_in_capability_loadings(script_run):
    """prior_scale multiplies the hyperprior scales: the upper tail of the pooled SD of the
    capability loadings (5 benchmarks, weakly determined) follows its HalfNormal prior."""
    _, _, _, refits = script_run
    post = {s: r["posterior"]["capability_loading_log_sd"] for s, r in refits.items()}
    tail = {s: float(v.quantile(0.9)) for s, v in post.items()}
    assert tail[0.5] < tail[2.0], tail


def test_refit_reference_replaces_the_saved_fit(toy_fits, tmp_path_factory, monkeypatch):
    dt, refits = toy_fits
    same_scale = refits[0.5].copy()
    same_scale.attrs = {**same_scale.attrs, "model_config": ModelConfig().to_json()}
    ds = prior_sensitivity(dt, {1.0: same_scale, 2.0: refits[2.0]})
    np.testing.assert_allclose(
        ds.rho_median.sel(prior_scale=1.0).values,
        separability(refits[0.5])["rho_median"].values,
    )
    # which scales are refitted (the sampler itself is replaced: only the loop is tested)
    import safetywash.analysis.sensitivity as sensitivity

    calls = []
    monkeypatch.setattr(
        sensitivity, "fit", lambda study, config, settings, **_: calls.append(config) or config
    )
    _, _, shared = shared_fit(tmp_path_factory)
    out = sensitivity.refit_prior_scales(shared, [2.0, 0.5, 2.0, 1.0], refit_reference=True)
    assert list(out) == [1.0, 2.0, 0.5]
    assert [c.prior_scale for c in calls] == [1.0, 2.0, 0.5]
    calls.clear()
    assert list(sensitivity.refit_prior_scales(shared, [1.0, 2.0])) == [2.0]
    with pytest.raises(ValueError, match="positive"):
        sensitivity.refit_prior_scales(shared, [-1.0])
