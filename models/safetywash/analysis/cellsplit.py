"""Which observed cells to hold out: one held-out share, or k folds.

Both splits keep every training set estimable. A cell is held out only when, after
removing it, its benchmark still has at least ``min_per_benchmark`` (3) training cells
with at least 2 distinct values (so it stays estimable and can be standardised) and its
LLM still has at least ``min_per_llm`` (1) training cell (:class:`TrainingReserve`);
otherwise it stays in training.

- :func:`greedy_mask` / :func:`split_cells` (``holdout``): ``n = round(fraction *
  n_cells)`` cells are wanted. The observed cells are visited in a seeded random order
  (``numpy.random.default_rng(seed).permutation``) and held out under the rule; the walk
  stops after ``n`` cells (fewer if the rule forbids more).
- :func:`kfold_cells` (cross-validation over K): the cells are visited in a seeded random
  order and dealt to the folds in turn, each fold with its own reserve; the folds are then
  cut to the size of the smallest, so every fold's training set has as many cells (one
  compiled model serves them all).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from safetywash.data.study import BenchmarkStudy

MIN_PER_BENCHMARK = 3
MIN_PER_LLM = 1


class TrainingReserve:
    """What a training set keeps while cells are held out of it: training cells per
    benchmark and per LLM, and each benchmark's count of every value.

    Parameters
    ----------
    benchmark, llm : numpy.ndarray
        Benchmark and LLM label (any hashable) of every observed cell.
    values : numpy.ndarray
        The cell values (distinct values per benchmark are counted).
    min_per_benchmark, min_per_llm : int
        Fewest training cells a benchmark / an LLM must keep.
    """

    def __init__(
        self,
        benchmark: np.ndarray,
        llm: np.ndarray,
        values: np.ndarray,
        *,
        min_per_benchmark: int = MIN_PER_BENCHMARK,
        min_per_llm: int = MIN_PER_LLM,
    ) -> None:
        self.per_benchmark = Counter(benchmark.tolist())
        self.per_llm = Counter(llm.tolist())
        self.value_counts: dict[object, Counter] = {}
        for b, v in zip(benchmark.tolist(), values.tolist(), strict=True):
            self.value_counts.setdefault(b, Counter())[v] += 1
        self.min_per_benchmark, self.min_per_llm = min_per_benchmark, min_per_llm

    def can_spare(self, benchmark, llm, value) -> bool:
        """Whether the cell can leave training under the rule (module docstring)."""
        counts = self.value_counts[benchmark]
        distinct_after = len(counts) - (counts[value] == 1)
        return (
            self.per_benchmark[benchmark] - 1 >= self.min_per_benchmark
            and self.per_llm[llm] - 1 >= self.min_per_llm
            and distinct_after >= 2
        )

    def hold_out(self, benchmark, llm, value) -> None:
        """Take the cell out of training."""
        self.per_benchmark[benchmark] -= 1
        self.per_llm[llm] -= 1
        counts = self.value_counts[benchmark]
        counts[value] -= 1
        if counts[value] == 0:
            del counts[value]


def greedy_mask(
    benchmark: np.ndarray,
    llm: np.ndarray,
    values: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    *,
    min_per_benchmark: int = MIN_PER_BENCHMARK,
    min_per_llm: int = MIN_PER_LLM,
) -> np.ndarray:
    """Hold out about ``fraction`` of the cells under the rule (module docstring).

    Parameters
    ----------
    benchmark, llm, values : numpy.ndarray
        As for :class:`TrainingReserve`.
    fraction : float
        Wanted share of held-out cells, in (0, 1).
    rng : numpy.random.Generator
        Source of the random visiting order.
    min_per_benchmark, min_per_llm : int
        Fewest training cells a benchmark / an LLM must keep.

    Returns
    -------
    numpy.ndarray of bool
        True for held-out cells.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), not {fraction}")
    n = len(values)
    target = round(fraction * n)
    reserve = TrainingReserve(
        benchmark, llm, values, min_per_benchmark=min_per_benchmark, min_per_llm=min_per_llm
    )
    held = np.zeros(n, dtype=bool)
    n_held = 0
    for i in rng.permutation(n):
        if n_held >= target:
            break
        cell = benchmark[i], llm[i], values[i]
        if reserve.can_spare(*cell):
            reserve.hold_out(*cell)
            held[i] = True
            n_held += 1
    return held


def _score_columns(study: BenchmarkStudy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = study.scores
    return (
        scores["benchmark"].to_numpy(),
        scores["llm"].to_numpy(),
        scores["value"].to_numpy(dtype=float),
    )


def split_cells(
    study: BenchmarkStudy,
    fraction: float,
    seed: int,
    *,
    min_per_benchmark: int = MIN_PER_BENCHMARK,
    min_per_llm: int = MIN_PER_LLM,
) -> np.ndarray:
    """Mask of held-out rows of ``study.scores`` (:func:`greedy_mask`)."""
    return greedy_mask(
        *_score_columns(study),
        fraction,
        np.random.default_rng(seed),
        min_per_benchmark=min_per_benchmark,
        min_per_llm=min_per_llm,
    )


def kfold_cells(study: BenchmarkStudy, folds: int, seed: int = 0) -> np.ndarray:
    """Fold of every score row of ``study.scores`` (-1: always in training).

    Rows are visited in a seeded random order and dealt to the folds in turn; a row is
    skipped (kept in training) when its fold's training set could not spare it
    (:class:`TrainingReserve`). The folds are then cut to the size of the smallest.
    """
    benchmark, llm, values = _score_columns(study)
    reserves = [TrainingReserve(benchmark, llm, values) for _ in range(folds)]
    fold = np.full(len(values), -1)
    turn = 0
    for i in np.random.default_rng(seed).permutation(len(values)):
        f, cell = turn % folds, (benchmark[i], llm[i], values[i])
        if not reserves[f].can_spare(*cell):
            continue
        reserves[f].hold_out(*cell)
        fold[i] = f
        turn += 1
    smallest = min(int((fold == f).sum()) for f in range(folds))
    for f in range(folds):
        fold[np.flatnonzero(fold == f)[smallest:]] = -1
    return fold
