"""The trust suite's simulated stress cases have the property each one is named for.

Only the case-building logic of ``benchmarks/bench_trust.py`` runs here: nothing is sampled.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench_trust():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("bench_trust", BENCHMARKS / "bench_trust.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_every_simulated_case_builds_with_its_truth(bench_trust):
    for name in bench_trust.SIM_CASES:
        study, truth = bench_trust.simulate_case(name, seed=1)
        assert list(truth["benchmark"].values) == list(study.benchmarks.index), name
        assert np.all(np.abs(truth["rho"].values) <= 1), name


def test_indicator_is_near_perfect_up_to_its_known_noise(bench_trust):
    study, truth = bench_trust.simulate_case("sim-indicator", seed=0)
    row = study.benchmarks.loc["cap00"]
    assert (row["scale"], row["lower"], row["upper"], row["n_items"]) == ("fraction", 0, 1, 1172)
    cells = study.scores[study.scores["benchmark"] == "cap00"]
    theta = truth["capability"].to_series().reindex(cells["llm"]).to_numpy()
    values = cells["value"].to_numpy()
    residual = values - np.polyval(np.polyfit(theta, values, 1), theta)
    # The residual is the binomial noise of a share over 1172 items (specific SD 0.01 on the
    # model scale, 0.001 in stored units), in the data and in the stated truth.
    binomial = np.sqrt(np.mean(values * (1 - values)) / 1172)
    assert residual.std() == pytest.approx(np.hypot(binomial, 0.001), rel=0.2)
    noise = float(truth["noise_sd"].sel(benchmark="cap00"))
    lam = float(truth["loading"].sel(benchmark="cap00"))
    assert noise == pytest.approx(binomial / 0.1, rel=0.02)
    want = lam / np.sqrt(lam**2 + noise**2 + 0.01**2)
    assert float(truth["rho"].sel(benchmark="cap00")) == pytest.approx(want, rel=1e-9)
    assert 0.95 < want < 0.995
    assert abs(np.corrcoef(theta, values)[0, 1]) > 0.95
    others = truth["rho"].drop_sel(benchmark="cap00")
    assert float(np.abs(others).max()) < 0.99


def test_thin_areas_have_one_and_two_benchmarks(bench_trust):
    study, _ = bench_trust.simulate_case("sim-thin-areas", seed=0)
    safety = study.benchmarks[study.benchmarks["role"] == "safety"]
    assert sorted(safety["area"].value_counts().tolist()) == [1, 2]


def test_missing_case_misses_four_cells_in_five(bench_trust):
    study, _ = bench_trust.simulate_case("sim-missing-80", seed=0)
    assert study.missing_fraction == pytest.approx(0.8, abs=0.03)


def test_saturating_scores_sit_at_their_bounds(bench_trust):
    study, _ = bench_trust.simulate_case("sim-saturating", seed=0)
    bench = study.benchmarks
    assert (bench["lower"] == 0).all() and (bench["upper"] == 1).all()
    floor = bench["chance"].fillna(bench["lower"]).reindex(study.scores["benchmark"]).to_numpy()
    values = study.scores["value"].to_numpy()
    assert np.all((values >= floor) & (values <= 1))
    at_floor = values - floor < 0.05 * (1 - floor)
    at_ceiling = values > 0.95
    assert at_floor.mean() > 0.1 and at_ceiling.mean() > 0.1
    # The squash is monotone within every benchmark: the unsquashed study orders cells alike.
    from safetywash.model.simulate import simulate

    design = bench_trust.SIM_CASES["sim-saturating"][0]
    raw, _ = simulate(n_capability=8, safety=bench_trust.FOUR_AREAS, seed=0, **design)
    assert raw.scores[["llm", "benchmark"]].equals(study.scores[["llm", "benchmark"]])
    for key, cells in raw.scores.groupby("benchmark"):
        squashed = study.scores.loc[cells.index, "value"].to_numpy()
        order = np.argsort(cells["value"].to_numpy())
        assert np.all(np.diff(squashed[order]) >= 0), key


def test_two_populations_and_large_case(bench_trust):
    study, _ = bench_trust.simulate_case("sim-two-populations", seed=0)
    assert sorted(study.llms["population"].unique()) == ["base", "chat"]
    large, _ = bench_trust.simulate_case("sim-2000-llms", seed=0)
    assert large.n_llms == 2000
    assert "sim-2000-llms" in bench_trust.LARGE_CASES


def test_own_study_is_read_as_the_readme_reads_it(bench_trust):
    study, truth, config = bench_trust.build_case("own-study", seed=0, data_dir=None)
    assert truth is None and config.factors == ()
    # Recomputed from the file: 13 LLMs, every value of the four declared columns.
    frame = pd.read_csv(Path(bench_trust.OWN_STUDY_OPTIONS[1]))
    columns = ["quiz_a", "quiz_b", "quiz_c", "harmful_refusal"]
    assert sorted(study.llms.index) == sorted(frame["Model"])
    assert sorted(study.benchmarks.index) == sorted(columns)
    assert len(study.scores) == frame[columns].notna().to_numpy().sum()
    assert study.benchmarks.loc["harmful_refusal", "area"] == "misuse"
    assert set(study.llms["family"]) == set(frame["Model Family"])
