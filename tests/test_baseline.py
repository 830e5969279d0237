"""The paper's baseline (PCA + Spearman) against an independent numpy/pandas computation.

The reference below reads the raw CSV with pandas and uses nothing from safetywash except
the directions in the shipped catalog CSV (read with pandas too).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from safetywash.analysis.baseline import (
    BASELINE_VARIABLE,
    fitted_baseline,
    paper_baseline,
    store_paper_baseline,
)
from safetywash.inference.fitfile import constant_data
from safetywash.model.data import prepare_data

REPO_ROOT = Path(__file__).resolve().parents[1]
CAPABILITY = (
    "logiqa",
    "piqa",
    "hellaswag",
    "winogrande",
    "superglue_copa",
    "medqa_4options",
    "arc_challenge",
    "mmlu",
    "minerva_math",
    "lambada_openai",
    "gsm8k",
    "bbh",
)
LLM_COLUMNS = ("name", "type", "model_size", "FLOP")
TABLE_COLUMNS = [
    "benchmark",
    "display_name",
    "area",
    "capabilities_correlation",
    "oriented_correlation",
    "flop_correlation",
    "n_llms",
]
TOL = 1e-10


@pytest.fixture(scope="module")
def raw_catalog() -> pd.DataFrame:
    path = REPO_ROOT / "data" / "catalogs" / "safetywashing.csv"
    return pd.read_csv(path, dtype=str, keep_default_na=False).set_index("key")


def rank_correlation(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Spearman over the pairs where both are present: rank both, then Pearson."""
    both = ~np.isnan(x) & ~np.isnan(y)
    rx = pd.Series(x[both]).rank().to_numpy()
    ry = pd.Series(y[both]).rank().to_numpy()
    return float(np.corrcoef(rx, ry)[0, 1]), int(both.sum())


def reference_baseline(raw: pd.DataFrame, columns: list[str]) -> dict:
    """Independent computation of the paper's method on one population's raw matrix."""
    cap = raw[list(CAPABILITY)].astype(float)
    assert not cap.isna().any().any()  # so no imputation question arises
    z = (cap - cap.mean()) / cap.std(ddof=0)
    spearman_matrix = np.corrcoef(z.rank().to_numpy(), rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(spearman_matrix)
    top = int(np.argmax(eigenvalues))
    v = eigenvectors[:, top]
    v = v * np.sign(v[np.argmax(np.abs(v))])
    score = z.to_numpy() @ v
    flop = raw["FLOP"].to_numpy(dtype=float)
    corr, n, flop_corr, n_flop = {}, {}, {}, {}
    for key in columns:
        x = raw[key].to_numpy(dtype=float)
        corr[key], n[key] = rank_correlation(x, score)
        flop_corr[key], n_flop[key] = rank_correlation(x, flop)
    return {
        "variance_explained": eigenvalues[top] / eigenvalues.sum(),
        "eigenvalues": np.sort(eigenvalues)[::-1],
        "weights": v,
        "score": pd.Series(score, index=raw.index),
        "corr": pd.Series(corr),
        "n": pd.Series(n),
        "flop_corr": pd.Series(flop_corr),
        "n_flop": pd.Series(n_flop),
    }


def modelled_columns(raw: pd.DataFrame, raw_catalog: pd.DataFrame) -> list[str]:
    return [
        c for c in raw.columns if c not in LLM_COLUMNS and raw_catalog.loc[c, "role"] != "excluded"
    ]


@pytest.fixture(scope="module")
def results(real_study, raw_matrices, raw_catalog) -> dict:
    out = {}
    for population in ("base", "chat"):
        raw = raw_matrices[population]
        columns = modelled_columns(raw, raw_catalog)
        out[population] = (
            paper_baseline(real_study(population)),
            reference_baseline(raw, columns),
            columns,
        )
    return out


@pytest.mark.parametrize("population", ["base", "chat"])
def test_variance_explained_and_weights(results, population):
    result, ref, _ = results[population]
    assert result.population == population
    assert result.capability_benchmarks == CAPABILITY
    assert abs(result.variance_explained - ref["variance_explained"]) < TOL
    np.testing.assert_allclose(result.eigenvalues, ref["eigenvalues"], rtol=0, atol=TOL)
    np.testing.assert_allclose(result.weights.to_numpy(), ref["weights"], rtol=0, atol=TOL)
    assert list(result.weights.index) == list(CAPABILITY)
    score = result.capability_score.reindex(ref["score"].index).to_numpy()
    np.testing.assert_allclose(score, ref["score"].to_numpy(), rtol=0, atol=TOL)
    # A dominant factor, as the paper reports (about 0.78 for base, 0.71 for chat).
    assert 0.6 < result.variance_explained < 0.9


@pytest.mark.parametrize("population", ["base", "chat"])
def test_every_capabilities_correlation(results, population):
    result, ref, columns = results[population]
    table = result.table
    assert sorted(table.index) == sorted(columns)
    got = table["capabilities_correlation"].reindex(columns).to_numpy(dtype=float)
    expected = ref["corr"].reindex(columns).to_numpy()
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    assert (table["n_llms"].reindex(columns) == ref["n"].reindex(columns)).all()
    # The capability columns themselves correlate strongly with the score.
    assert (table.loc[list(CAPABILITY), "capabilities_correlation"] > 0.5).all()


@pytest.mark.parametrize("population", ["base", "chat"])
def test_oriented_and_flop_correlations(results, raw_catalog, population):
    result, ref, columns = results[population]
    table = result.table.reindex(columns)
    sign = raw_catalog["direction"].reindex(columns).map({"higher": 1.0, "lower": -1.0})
    assert sign.notna().all()
    np.testing.assert_array_equal(
        table["oriented_correlation"].to_numpy(dtype=float),
        (sign * table["capabilities_correlation"]).to_numpy(dtype=float),
    )
    lower = sign[sign < 0].index
    assert len(lower) > 15
    # Lower-is-better columns flip: e.g. MACHIAVELLI power-seeking.
    key = "machiavelli-power.Σ"
    assert table.loc[key, "oriented_correlation"] == -table.loc[key, "capabilities_correlation"]
    np.testing.assert_allclose(
        table["flop_correlation"].to_numpy(dtype=float),
        ref["flop_corr"].reindex(columns).to_numpy(),
        rtol=0,
        atol=TOL,
    )
    assert (table["n_flop"] == ref["n_flop"].reindex(columns)).all()
    n_flop_llms = {"base": 24, "chat": 21}[population]  # FLOP is missing for 3 / 5 LLMs
    assert table.loc["mmlu", "n_flop"] == n_flop_llms
    assert table.loc["mmlu", "n_llms"] == {"base": 27, "chat": 26}[population]


def test_partial_columns_use_available_pairs(results):
    result, ref, _ = results["chat"]
    arena = result.table.loc["LMSYS_Chatbot_Arena"]
    assert arena["n_llms"] == 20  # 6 of 26 chat LLMs have no Elo
    assert abs(arena["capabilities_correlation"] - ref["corr"]["LMSYS_Chatbot_Arena"]) < TOL
    result, ref, _ = results["base"]
    assert result.table.loc["cyberseceval2_autocomplete", "n_llms"] == 26  # Yi-34B missing


def test_json_dict(results):
    result, _, columns = results["chat"]
    data = result.to_json_dict()
    assert set(data) == {"population", "variance_explained", "correlations"}
    assert sorted(data["correlations"]) == sorted(columns)
    assert data["correlations"]["mmlu"] == result.table.loc["mmlu", "capabilities_correlation"]


# ---------------------------------------------------------------------- the script
def _header(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle))


def test_script_end_to_end(tmp_path, shared_data_dir, safetywashing_root, results, raw_catalog):
    out_json, out_csv = tmp_path / "out" / "baseline.json", tmp_path / "out" / "baseline.csv"
    env = {k: v for k, v in os.environ.items() if k != "SAFETYWASH_DATA_DIR"}
    env["SAFETYWASH_CACHE_DIR"] = str(tmp_path / "cache")  # must stay unused
    cmd = [sys.executable, "scripts/baseline.py", "--population", "chat"]
    cmd += ["--data-dir", str(shared_data_dir), "--json", str(out_json), "--csv", str(out_csv)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "cache").exists()

    _, ref, columns = results["chat"]
    areas = set(raw_catalog.loc[columns, "area"])
    assert "capability" in areas and len(areas) == 9
    for area in areas:
        assert f"== {area} ==" in proc.stdout
    assert proc.stdout.index("== capability ==") < min(
        proc.stdout.index(f"== {a} ==") for a in areas - {"capability"}
    )
    assert "population chat: 26 LLMs" in proc.stdout
    assert "Not analysed (catalogued as excluded)" in proc.stdout

    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert set(data) == {"population", "variance_explained", "correlations"}
    assert data["population"] == "chat"
    assert abs(data["variance_explained"] - ref["variance_explained"]) < TOL
    correlations = data["correlations"]
    header = _header(safetywashing_root / "data" / "benchmarks_chat_models.csv")
    assert set(correlations) <= set(header)  # keys spelled exactly as in the source header
    assert sorted(correlations) == sorted(columns)
    assert "machiavelli-power.Σ" in correlations
    values = np.array(list(correlations.values()))
    assert ((values >= -1) & (values <= 1)).all()
    for key, value in correlations.items():
        assert abs(value - ref["corr"][key]) < TOL, key

    table = pd.read_csv(out_csv, keep_default_na=False, na_values=[""])
    assert list(table.columns) == TABLE_COLUMNS
    assert sorted(table["benchmark"]) == sorted(columns)
    assert table["benchmark"].is_unique
    first_other = table.index[table["area"] != "capability"].min()
    assert (table.loc[: first_other - 1, "area"] == "capability").all()
    assert (table.loc[first_other:, "area"] != "capability").all()
    table = table.set_index("benchmark")
    np.testing.assert_allclose(
        table["capabilities_correlation"].reindex(columns).to_numpy(),
        ref["corr"].reindex(columns).to_numpy(),
        rtol=0,
        atol=TOL,
    )
    assert (table["n_llms"].reindex(columns) == ref["n"].reindex(columns)).all()
    assert table.loc["LMSYS_Chatbot_Arena", "display_name"] == "LMSYS Chatbot Arena Elo"


def test_script_refuses_population_all(tmp_path, shared_data_dir, capsys):
    # In-process (a second interpreter start costs ~2 s); same argument parsing.
    from safetywash.cli import main

    out_json = tmp_path / "all.json"
    args = ["--population", "all", "--data-dir", str(shared_data_dir), "--json", str(out_json)]
    assert main(["baseline", *args]) == 2
    err = capsys.readouterr().err
    assert "per population" in err and "base or chat" in err
    assert not out_json.exists()


@pytest.mark.parametrize("population", ["base", "chat"])
def test_baseline_stored_with_a_fit_matches_the_reference(
    results, raw_catalog, real_study, population
):
    """store_paper_baseline puts the oriented reference correlation of every fitted
    benchmark in ``constant_data`` (a fit tree without draws is enough to check it)."""
    study = real_study(population)
    data = prepare_data(study)
    dt = xr.DataTree.from_dict({"constant_data": constant_data(data)})
    dt.attrs["study_sha256"] = study.sha256()
    stored = store_paper_baseline(dt, study)
    values = fitted_baseline(stored)
    _, reference, _ = results[population]
    keys = list(data.study.benchmarks.index)
    assert list(values.index) == keys
    sign = np.where(raw_catalog.loc[keys, "direction"] == "lower", -1.0, 1.0)
    want = reference["corr"].reindex(keys).to_numpy() * sign
    assert np.isfinite(want).sum() > 10
    np.testing.assert_allclose(values.to_numpy(), want, atol=TOL, equal_nan=True)
    attrs = stored["constant_data"][BASELINE_VARIABLE].attrs
    assert json.loads(attrs["capability_benchmarks"]) == list(CAPABILITY)
