"""Which cells are held out: the holdout mask and the cross-validation folds keep every
training set estimable, and both are seeded."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from safetywash.analysis.cellsplit import greedy_mask, kfold_cells, split_cells
from safetywash.analysis.holdout import training_study
from safetywash.data.study import BenchmarkStudy
from safetywash.model.simulate import simulate


@pytest.fixture(scope="module")
def sparse_study() -> BenchmarkStudy:
    study, _ = simulate(
        n_llms=15, n_capability=3, safety={"bias": 2, "calibration": 1}, missing=0.3, seed=3
    )
    return study


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_keeps_every_benchmark_and_llm_estimable(sparse_study, seed):
    held = split_cells(sparse_study, 0.3, seed)
    assert held.sum() <= round(0.3 * sparse_study.n_cells)
    train = sparse_study.scores.loc[~held]
    per_benchmark = train.groupby("benchmark")["value"].agg(["size", "nunique"])
    assert (per_benchmark["size"] >= 3).all() and (per_benchmark["nunique"] >= 2).all()
    assert set(per_benchmark.index) == set(sparse_study.benchmarks.index)
    assert set(train["llm"]) == set(sparse_study.llms.index)
    rebuilt = training_study(sparse_study, held)
    assert rebuilt.n_cells == int((~held).sum())
    assert rebuilt.n_llms == sparse_study.n_llms


def test_split_is_seeded(sparse_study):
    a, b = split_cells(sparse_study, 0.2, 5), split_cells(sparse_study, 0.2, 5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, split_cells(sparse_study, 0.2, 6))
    # On a study with room to spare, exactly round(fraction * n) cells are held out.
    full, _ = simulate(n_llms=20, n_capability=3, safety={"bias": 2}, seed=0)
    assert split_cells(full, 0.1, 0).sum() == round(0.1 * full.n_cells)


def test_greedy_mask_rule_by_hand():
    # Benchmark "x" has 3 cells: none may go. "y" has 5 cells (values 1, 1, 1, 1, 2): two may
    # go (3 must stay); the single 2 must stay (2 distinct values), and so must the 1 of LLM
    # "d", its only cell. "z" has 4 cells: one may go, but not the only cell of LLM "solo".
    bench = np.array(["x"] * 3 + ["y"] * 5 + ["z"] * 4)
    llm = np.array(["a", "b", "c", "a", "b", "c", "d", "e", "solo", "a", "b", "c"])
    values = np.array([1.0, 2, 3, 1, 1, 1, 1, 2, 5, 6, 7, 8])
    for seed in range(20):
        held = greedy_mask(bench, llm, values, 0.99, np.random.default_rng(seed))
        assert not held[:3].any()
        assert held[3:6].sum() == 2
        assert not held[6] and not held[7] and not held[8]
        assert held[9:].sum() == 1
    with pytest.raises(ValueError, match="fraction"):
        greedy_mask(bench, llm, values, 0.0, np.random.default_rng(0))


@pytest.fixture(scope="module")
def fold_study() -> BenchmarkStudy:
    return simulate(n_llms=30, n_capability=6, missing=0.1, seed=4)[0]


def test_folds_are_disjoint_equal_and_leave_every_benchmark_and_llm_estimable(fold_study):
    fold = kfold_cells(fold_study, 5, seed=3)
    sizes = Counter(fold[fold >= 0].tolist())
    assert sorted(sizes) == [0, 1, 2, 3, 4] and len(set(sizes.values())) == 1
    assert sizes[0] > 0.15 * len(fold)
    scores = fold_study.scores
    for f in range(5):
        train = scores.loc[fold != f]
        per_benchmark = train.groupby("benchmark")["value"]
        assert per_benchmark.size().min() >= 3
        assert per_benchmark.nunique().min() >= 2
        assert set(train["llm"]) == set(scores["llm"])
    np.testing.assert_array_equal(fold, kfold_cells(fold_study, 5, seed=3))
    assert not np.array_equal(fold, kfold_cells(fold_study, 5, seed=4))
