"""The fit report: its tables, PPC, figures, Markdown/HTML and the report script.

One small real fit (simulated study, 200 draws) is shared by the module; the two-factor
case and the PPC checks use DataTrees assembled directly with xarray (no sampling).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import re
import warnings
import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fit_trees import GOOD_DIAGNOSTICS, simulated_fit_tree
from safetywash.analysis.baseline import fitted_capability_benchmarks, store_paper_baseline
from safetywash.analysis.ppc import correlation_ppc, pairwise_correlation, replicate_scores
from safetywash.analysis.separability import separability
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import (
    FitInfo,
    benchmark_table,
    cell_coords,
    constant_data,
    diagnostics_of,
    observed_data,
    save_fit,
    study_from_fit,
)
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig
from safetywash.model.data import prepare_data
from safetywash.model.simulate import simulate
from safetywash.report.document import build_report
from safetywash.report.figures import loadings_summary
from safetywash.report.render import Table, render_markdown
from safetywash.report.style import AREA_COLORS, area_label
from safetywash.report.tables import (
    baseline_disagrees,
    default_benchmarks,
    paper_baseline_of,
    report_table,
    separability_rows,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SAFETY = {"bias": 3, "calibration": 3}
FIGURES = ("rho_forest_by_area", "capability_ranking", "scores_vs_capability", "correlation_ppc")


def _named(study):
    """The study with display names that differ from the keys."""
    bench = study.benchmarks.copy()
    bench["display_name"] = [f"{area_label(a)} test {k[-2:]}" for k, a in bench["area"].items()]
    return dataclasses.replace(study, benchmarks=bench)


@pytest.fixture(scope="module")
def fit_and_warnings() -> tuple[xr.DataTree, list]:
    study, _ = simulate(30, 6, SAFETY, seed=1)
    settings = SamplerSettings(draws=200, tune=200, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = fit(_named(study), settings=settings, posterior_predictive=True, progressbar=False)
    return dt, caught


@pytest.fixture(scope="module")
def fit_dt(fit_and_warnings) -> xr.DataTree:
    return fit_and_warnings[0]


def test_posterior_predictive_holds_the_draws_without_warnings(fit_and_warnings):
    """The whitening potentials and the sampler-space variables are no reason for alarm:
    predictive scores are drawn at the posterior draws of every parameter."""
    dt, caught = fit_and_warnings
    texts = [str(w.message) for w in caught]
    assert not [t for t in texts if "Potentials" in t or "implicitly frozen" in t], texts
    assert dt["posterior_predictive"]["score"].shape[:2] == (4, 200)


@pytest.fixture(scope="module")
def written(fit_dt, tmp_path_factory) -> dict:
    """The report script run on the saved fit: its outputs."""
    root = tmp_path_factory.mktemp("report")
    save_fit(fit_dt, root / "run" / "posterior.nc")
    from safetywash.cli import main

    assert main(["report", str(root / "run"), "--figures", str(root / "figs")]) == 0
    return {
        "md": (root / "run" / "report.md").read_text(encoding="utf-8"),
        "html": (root / "run" / "report.html").read_text(encoding="utf-8"),
        "figures": root / "figs",
    }


def _sections(markdown: str) -> dict[str, str]:
    """Text under every ``###`` heading, by heading."""
    parts = re.split(r"^### (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def test_every_benchmark_under_its_area_heading(fit_dt, written):
    meta = fit_dt["constant_data"]
    sections = _sections(written["md"])
    for name, area, role in zip(
        meta["benchmark_display_name"].values,
        meta["benchmark_area"].values,
        meta["benchmark_role"].values,
        strict=True,
    ):
        heading = "Capability benchmarks (reference)" if role == "capability" else area_label(area)
        assert f"| {name} |" in sections[heading], (name, heading)
        # the variance-shares table lists every benchmark with its area in a column
        others = [h for h in sections if h != heading and not h.startswith("Variance shares")]
        assert all(f"| {name} |" not in sections[h] for h in others)


def test_verdict_at_the_top(fit_dt, written):
    verdict = diagnostics_of(fit_dt).verdict()
    lines = written["md"].splitlines()
    assert lines[0].startswith("# Safetywashing report: ")
    top = lines[2]
    assert verdict in top
    if diagnostics_of(fit_dt).trustworthy:
        assert top == f"**Diagnostics: {verdict}**"
    else:
        assert top.startswith("> ⚠ **Diagnostics: DO NOT TRUST")


def test_numbers_match_separability(fit_dt, written):
    s = separability(fit_dt)
    for key in ("bias_00", "cap02"):
        r = s.sel(benchmark=key)
        row = (
            f"| {r.display_name.values!s} | {float(r.rho_median):+.2f} | "
            f"[{float(r.rho_hdi_low):+.2f}, {float(r.rho_hdi_high):+.2f}] | "
            f"{float(r.p_separable):.2f} | {float(r.unexplained_median):.2f} | "
        )
        assert row in written["md"], row


def test_disagreement_flag_constructed():
    table = pd.DataFrame(
        {
            "rho_hdi_low": [0.2, 0.2, 0.2, 0.2, 0.2, -0.9],
            "rho_hdi_high": [0.6, 0.6, 0.6, 0.6, 0.6, -0.5],
            "baseline_correlation": [0.1, 0.4, 0.7, np.nan, 0.2, -0.95],
        }
    )
    assert baseline_disagrees(table).tolist() == [True, False, True, False, False, True]


def test_disagreement_flag_in_report_rows(fit_dt):
    s = separability(fit_dt)
    keys = [str(k) for k in s["benchmark"].values]
    # Baseline inside every HDI except one benchmark, pushed above its HDI.
    base = pd.Series(s["rho_median"].values, index=keys)
    base["calibration_01"] = float(s["rho_hdi_high"].sel(benchmark="calibration_01")) + 0.05
    table = report_table(fit_dt, baseline=base)
    assert table.loc[table["disagrees"], "benchmark"].tolist() == ["calibration_01"]
    rows = separability_rows(table)
    flagged = [r[0] for r in rows if r[-1] == "disagrees"]
    assert flagged == [str(s["display_name"].sel(benchmark="calibration_01").values)]
    text = render_markdown([Table(["a"] * 8, rows, flag_column=7)])
    assert text.count("**disagrees**") == 1


def test_stored_baseline_is_read_back_with_its_capability_benchmarks():
    tree = simulated_fit_tree(seed=4)
    study = study_from_fit(tree)
    caps = tuple(study.benchmarks.index[study.benchmarks["role"] == "capability"])
    assert len(caps) == 4  # fewer than the paper's 12: every capability benchmark is used
    recomputed, recomputed_caps = paper_baseline_of(tree)  # nothing stored: from the study
    assert fitted_capability_benchmarks(tree) == () and recomputed_caps == caps
    stored = store_paper_baseline(tree, study)
    assert fitted_capability_benchmarks(stored) == caps
    baseline, stored_caps = paper_baseline_of(stored)
    assert stored_caps == caps
    keys = list(benchmark_table(tree).index)
    assert list(baseline.index) == keys and np.isfinite(baseline.to_numpy()).all()
    np.testing.assert_allclose(baseline.to_numpy(), recomputed.reindex(keys).to_numpy())


def test_default_benchmarks_span_rho(fit_dt):
    picks = default_benchmarks(fit_dt, 3)
    s = separability(fit_dt)
    safety = [k for k, r in zip(s.benchmark.values, s.role.values, strict=True) if r == "safety"]
    strength = np.abs(s["rho_median"].sel(benchmark=safety)).to_series()
    assert picks[0] == strength.idxmax() and picks[-1] == strength.idxmin()


def test_ppc_summary_is_a_fraction(fit_dt, written):
    ppc = correlation_ppc(fit_dt)
    share = ppc.attrs["share_inside"]
    assert 0.0 <= share <= 1.0
    assert ppc.attrs["source"] == "posterior_predictive"
    assert ppc.attrs["n_pairs"] == 12 * 11 // 2
    assert (
        f"{share:.1%} of {ppc.attrs['n_pairs']} pairwise benchmark correlations" in (written["md"])
    )


def test_pairwise_correlation_matches_pandas():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(12, 5))
    observed = rng.random((12, 5)) > 0.3
    observed[:, 4] = False
    observed[:3, 4] = True  # column 4 shares < 5 rows with every other
    got = pairwise_correlation(values, observed, min_pairs=5)
    expected = pd.DataFrame(np.where(observed, values, np.nan)).corr(min_periods=5).to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


def _tiny_ppc_tree(rng) -> tuple[xr.DataTree, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """A fit-shaped tree with replicated scores: 9 LLMs x 4 benchmarks, some cells missing.

    Returns the tree, the LLM and benchmark position of every cell, and the replicates
    ``(draw, cell)``.
    """
    n_llm, n_bench, n_draw = 9, 4, 40
    observed = np.ones((n_llm, n_bench), dtype=bool)
    observed[[0, 3, 5], 1] = False
    observed[:6, 3] = False  # benchmark 3 shares only 3 LLMs with the others: unchecked
    ll, bb = np.nonzero(observed)
    keys = [f"b{j}" for j in range(n_bench)]
    scores = pd.DataFrame(
        {
            "llm": [f"m{i}" for i in ll],
            "benchmark": [keys[b] for b in bb],
            "value": rng.normal(size=len(ll)),
        }
    )
    catalog = pd.DataFrame(
        {
            "key": keys,
            "role": ["capability", "safety", "safety", "safety"],
            "area": ["capability", "bias", "bias", "bias"],
            "direction": "higher",
            "lower": np.nan,
            "upper": np.nan,
        }
    )
    study = BenchmarkStudy.from_frames(scores, None, catalog, name="tiny", min_llms=3)
    data = prepare_data(study)
    rep = rng.normal(size=(1, n_draw, len(data.y))) + 0.5 * data.y
    tree = xr.DataTree.from_dict(
        {
            "observed_data": observed_data(data),
            "posterior_predictive": xr.Dataset(
                {"score": (("chain", "draw", "cell"), rep)}, coords=cell_coords(data)
            ),
            "constant_data": constant_data(data),
        }
    )
    info = FitInfo(ModelConfig(), SamplerSettings(), study.sha256(), study.name, seed=0)
    tree.attrs.update(info.to_attrs())
    return tree, (data.llm_idx, data.benchmark_idx), rep[0]


def test_ppc_share_equals_direct_recomputation():
    tree, (ll, bb), rep = _tiny_ppc_tree(np.random.default_rng(5))
    ppc = correlation_ppc(tree, ci_prob=0.8, min_pairs=5)

    def corr(cells):
        wide = np.full((9, 4), np.nan)
        wide[ll, bb] = cells
        return pd.DataFrame(wide).corr(min_periods=5).to_numpy()

    obs = corr(tree["observed_data"]["score"].values)
    reps = np.stack([corr(r) for r in rep])
    low, high = np.quantile(reps, [0.1, 0.9], axis=0)
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4) if np.isfinite(obs[a, b])]
    assert len(pairs) == 3  # the pairs with benchmark 3 are not checked
    inside = [low[a, b] <= obs[a, b] <= high[a, b] for a, b in pairs]
    assert ppc.attrs["n_pairs"] == 3
    assert ppc.attrs["share_inside"] == pytest.approx(np.mean(inside))
    np.testing.assert_allclose(ppc["observed"].values, obs, atol=1e-12)
    np.testing.assert_allclose(ppc["replicated_low"].values[0, 1], low[0, 1], atol=1e-12)
    assert list(ppc["benchmark_a"].values) == ["b0", "b1", "b2", "b3"]
    assert ppc.attrs["study_name"] == "tiny"


def test_figures_exist_and_are_valid(fit_dt, written):
    name = fit_dt.attrs["study_name"]
    for what in FIGURES:
        png = written["figures"] / f"{name}_{what}.png"
        svg = written["figures"] / f"{name}_{what}.svg"
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC
        assert svg.stat().st_size > 1000
        assert ET.parse(svg).getroot().tag.endswith("svg")
    assert not list(written["figures"].glob("*loadings_heatmap*"))  # one-factor fit
    assert "no loadings heatmap" in written["md"]


def test_html_is_self_contained(fit_dt, written):
    page = written["html"]
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(FIGURES)
    assert all(base64.b64decode(img)[:8] == PNG_MAGIC for img in images)
    assert "<table>" in page and "<th>Benchmark</th>" in page
    assert "Bias test 00" in page and html.escape(diagnostics_of(fit_dt).verdict()) in page
    assert 'src="' not in page.replace('src="data:', "")  # nothing loaded from elsewhere


def _two_factor_tree(seed: int = 2) -> xr.DataTree:
    """A two-factor 'fit' assembled from the simulation truth plus noise (no sampling)."""
    return simulated_fit_tree(
        24, 4, SAFETY, factors=("bias", "calibration"), seed=seed, rename=_named
    )


def test_two_factor_heatmap_warning_and_simulated_ppc(tmp_path):
    tree = _two_factor_tree()
    report = build_report(tree, figures_dir=tmp_path, report_dir=tmp_path, max_draws=40)
    assert "loadings_heatmap" in report.figures
    png, svg = report.figures["loadings_heatmap"]
    assert png.name == f"{tree.attrs['study_name']}_factors-bias-calibration_loadings_heatmap.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and ET.parse(svg).getroot().tag.endswith("svg")
    assert report.markdown.splitlines()[2].startswith("> ⚠ **Diagnostics: DO NOT TRUST this fit")
    assert '<p class="warning">⚠ Diagnostics: DO NOT TRUST' in report.html
    assert report.ppc.attrs["source"] == "simulated from the posterior"
    assert 0.0 <= report.ppc.attrs["share_inside"] <= 1.0
    # Loadings: capability for all, each area factor only for its own benchmarks.
    loads = loadings_summary(tree)
    assert list(loads["factor"].values) == ["capability", "bias", "calibration"]
    gamma = tree["posterior"]["factor_loading"].median(("chain", "draw"))
    for key in gamma["factor_benchmark"].values:
        area = key.split("_")[0]
        assert loads.sel(benchmark=key, factor=area) == pytest.approx(
            float(gamma.sel(factor_benchmark=key))
        )
        other = "calibration" if area == "bias" else "bias"
        assert np.isnan(loads.sel(benchmark=key, factor=other))
    assert np.isnan(loads.sel(benchmark="cap00", factor="bias"))


def test_replicates_include_the_factor_term():
    tree = _two_factor_tree()
    post = tree["posterior"].to_dataset()
    post["residual_sd"] = post["residual_sd"] * 0 + 1e-12
    tree["posterior"] = xr.DataTree(post)
    rep = replicate_scores(tree, max_draws=None)
    const = tree["constant_data"]
    cell = int(np.flatnonzero(const["benchmark_index"].values == 8)[2])  # a calibration one
    key = str(const["benchmark"].values[8])
    llm = str(const["llm"].values[const["llm_index"].values[cell]])
    p = post.isel(chain=0, draw=0)
    expected = float(
        p["intercept"].sel(benchmark=key)
        + p["loading"].sel(benchmark=key) * p["capability"].sel(llm=llm)
        + p["factor_loading"].sel(factor_benchmark=key)
        * p["area_factor"].sel(llm=llm, factor=key.split("_")[0])
    )
    assert key.startswith("calibration")
    assert float(rep.isel(sample=0, cell=cell)) == pytest.approx(expected, abs=1e-9)


def test_area_palette_is_fixed():
    from safetywash.data.catalog import SAFETY_AREAS

    assert set(SAFETY_AREAS) | {"capability"} <= set(AREA_COLORS)
    assert len(set(AREA_COLORS.values())) == len(AREA_COLORS)


# --------------------------------------------------------------------------- outputs


def _links(markdown: str) -> list[str]:
    """Targets of the Markdown's image and SVG links."""
    return re.findall(r"\]\(([^)]+)\)", markdown)


def test_report_writes_into_the_run_folder_wherever_it_runs(tmp_path, monkeypatch):
    from safetywash.report.document import write_report

    tree = simulated_fit_tree(seed=3, diagnostics=GOOD_DIAGNOSTICS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    md, page, report = write_report(tree, tmp_path / "run", max_draws=40)
    assert list(elsewhere.iterdir()) == []  # nothing written where it was run from
    assert (md.parent, page.parent) == (tmp_path / "run", tmp_path / "run")
    figures = tmp_path / "run" / "figures"
    assert {p.parent for pair in report.figures.values() for p in pair} == {figures}
    links = _links(md.read_text(encoding="utf-8"))
    assert len(links) == 2 * len(FIGURES)
    assert all(link.startswith("figures/") and "/" not in link[8:] for link in links)
    # The links are relative to report.md: still valid after the run folder moves.
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)
    assert all((moved / link).is_file() for link in links)
    html_page = (moved / "report.html").read_text(encoding="utf-8")
    assert 'src="' not in html_page.replace('src="data:', "")


@pytest.mark.parametrize("safety", [{"bias": 1}, {"bias": 1, "calibration": 1}, {"bias": 2}])
def test_report_of_one_or_two_safety_benchmarks(safety, tmp_path):
    tree = simulated_fit_tree(safety=safety, seed=6)
    report = build_report(tree, report_dir=tmp_path, max_draws=40)
    n_safety = sum(safety.values())
    assert set(report.figures) == set(FIGURES)
    for png, svg in report.figures.values():
        assert png.parent == tmp_path / "figures"
        assert png.read_bytes()[:8] == PNG_MAGIC and ET.parse(svg).getroot().tag.endswith("svg")
    assert f"{n_safety} safety benchmarks:" in report.markdown
    safety_rows = report.table[report.table["role"] == "safety"]
    assert len(safety_rows) == n_safety
    for name in safety_rows["display_name"]:
        assert f"| {name} |" in report.markdown


def test_interval_convention_sets_numbers_and_labels(fit_dt, tmp_path):
    import arviz as az

    report = build_report(fit_dt, report_dir=tmp_path, ci_prob=0.8, ci_kind="eti", max_draws=40)
    rho = fit_dt["posterior"]["rho"].sel(benchmark="bias_00")
    low, high = az.eti(rho, prob=0.8).values
    row = report.table.set_index("benchmark").loc["bias_00"]
    assert (row["rho_hdi_low"], row["rho_hdi_high"]) == (pytest.approx(low), pytest.approx(high))
    draws = np.sort(rho.values.ravel())
    assert low == pytest.approx(np.quantile(draws, 0.1))
    assert "| 80% ETI |" in report.markdown and "Intervals are 80% equal-tailed intervals" in (
        report.markdown
    )
    assert "94%" not in report.markdown and "HDI" not in report.markdown


def test_default_labels_say_94_percent_hdi(written):
    assert "<th>94% HDI</th>" in written["html"]
    assert "Intervals are 94% highest-density intervals" in written["md"]


def test_separability_text_labels_follow_the_convention(fit_dt):
    from safetywash.analysis.separability import format_separability, separability_table

    summary = separability(fit_dt, ci_prob=0.5, ci_kind="eti")
    text = format_separability(separability_table(summary), 0.5, ci_prob=0.5, ci_kind="eti")
    header = text.splitlines()[1]
    assert "50% ETI" in header and "HDI" not in header
