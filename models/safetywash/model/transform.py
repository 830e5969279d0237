"""The score transform: stored scores to the model scale and back (no PyMC here).

Forward, per benchmark: orient (higher = better/safer, by the catalog's direction), map a
benchmark given the logistic treatment to the logit of its share of the range between a floor
(the chance level, or the lower bound) and its upper bound, then standardise with the
benchmark's mean and SD over the fitted study. Which benchmarks get the logistic treatment is
the transform's choice (``ModelConfig.transform``): none (``"standardize"``), every bounded
one (``"logit"``) or, by default (``"auto"``), the bounded proportion scores that crowd a
bound: floor and ceiling effects that a linear link to capability cannot follow (Epoch's
benchmark stitching models every score as a sigmoid in capability). The choice is stored per
benchmark (``logit_transformed`` in the fit's ``constant_data``).

:class:`ScoreTransform` is fitted on a study, used by the model
(:func:`safetywash.model.data.prepare_data`), stored in every fit's ``constant_data``
(:meth:`ScoreTransform.to_dataset`) and read back from it
(:func:`safetywash.inference.fitfile.fitted_transform`) to score new or held-out values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit

from safetywash.data.catalog import PROPORTION_SCALES
from safetywash.data.study import BenchmarkStudy
from safetywash.model.config import TRANSFORMS

#: Shares of the logistic treatment are clipped to ``[LOGIT_EPS, 1 - LOGIT_EPS]``. With
#: 1e-3 (earlier versions) a score at its bound, common near a floor (GSM8K 0 for 8% of
#: Open LLM Leaderboard v1's base models), became a logit of -6.9 against -1 to -3 for the
#: others: outliers of 4 to 5 SDs after standardising, the cause of 874 divergences on a
#: 107-LLM base-model table. At 0.01 (logit -4.6) a score at the bound stays where a score
#: of 1% would be, which is within the noise of any benchmark of fewer than a few thousand
#: items.
LOGIT_EPS = 0.01
#: ``"auto"``: the logistic treatment for a bounded proportion score (catalog ``scale``
#: fraction or percent) when at least :data:`CROWD_SHARE` of its scores lie within
#: :data:`CROWD_MARGIN` of the range's floor or ceiling (shares of ``[floor, upper]``) and
#: its scores span at least :data:`MIN_SPAN` of the range; standardising otherwise.
CROWD_MARGIN = 0.05
CROWD_SHARE = 0.25
MIN_SPAN = 0.1
#: ``constant_data`` variables of a fit that store the transform (names kept across versions).
TRANSFORM_VARIABLES = (
    "transform_center",
    "transform_sd",
    "logit_transformed",
    "logit_floor",
    "benchmark_direction",
    "benchmark_lower",
    "benchmark_upper",
)


@dataclass(frozen=True, eq=False)
class ScoreTransform:
    """Per-benchmark map between stored scores and the model scale.

    Attributes
    ----------
    benchmarks : pandas.Index
        Benchmark keys; ``benchmark_idx`` arguments index into them (:meth:`positions`).
    sign : numpy.ndarray
        +1 (higher is better) or -1 (lower is better) per benchmark.
    logit : numpy.ndarray of bool
        Whether the benchmark is logit-transformed.
    floor, upper : numpy.ndarray
        The logit maps ``(value - floor) / (upper - floor)``; ``floor`` is NaN where unused.
    lower : numpy.ndarray
        Declared lower bound (NaN: unbounded), for clipping in :meth:`inverse`.
    center, scale : numpy.ndarray
        Model-scale ``y = (oriented, transformed value - center) / scale``.
    """

    benchmarks: pd.Index
    sign: np.ndarray
    logit: np.ndarray
    floor: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    center: np.ndarray
    scale: np.ndarray

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, study: BenchmarkStudy, kind: str = "auto") -> ScoreTransform:
        """Fit the transform on a study's observed scores.

        A benchmark can get the logistic treatment when it has both bounds and its clipped
        shares vary; its floor is the chance level when every observed score lies above
        it, else the lower bound. ``"logit"`` gives it to every such benchmark, ``"auto"``
        only to proportion scores that crowd a bound (:func:`crowds_a_bound`),
        ``"standardize"`` to none. Shares are clipped to ``[LOGIT_EPS, 1 - LOGIT_EPS]``.
        The centre and SD (``ddof=0``) are those of the oriented, transformed scores.

        Parameters
        ----------
        study : BenchmarkStudy
            At the level to be modelled.
        kind : {"auto", "standardize", "logit"}

        Returns
        -------
        ScoreTransform
        """
        if kind not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, not {kind!r}")
        bench = study.benchmarks
        b = study.benchmark_index
        raw = study.scores["value"].to_numpy(dtype=float)
        upper = bench["upper"].to_numpy(dtype=float)
        logit = np.zeros(len(bench), dtype=bool)
        floor = np.full(len(bench), np.nan)
        if kind != "standardize":
            low = pd.Series(raw).groupby(b).min().reindex(range(len(bench))).to_numpy()
            chance = bench["chance"].to_numpy(dtype=float)
            chance_ok = ~np.isnan(chance) & (low > chance)
            candidate = np.where(chance_ok, chance, bench["lower"].to_numpy(dtype=float))
            share = _share(raw, candidate[b], upper[b])
            spread = pd.Series(share).groupby(b).agg(np.ptp).reindex(range(len(bench)))
            logit = ~np.isnan(candidate) & ~np.isnan(upper) & (upper > candidate)
            logit &= spread.fillna(0).to_numpy() > 0
            if kind == "auto":
                proportion = bench["scale"].isin(PROPORTION_SCALES).to_numpy()
                logit &= proportion & crowds_a_bound(raw, b, candidate, upper)
            floor = np.where(logit, candidate, np.nan)
        partial = cls(
            benchmarks=pd.Index(bench.index, name="benchmark"),
            sign=study.direction_sign.to_numpy(dtype=float),
            logit=logit,
            floor=floor,
            lower=bench["lower"].to_numpy(dtype=float),
            upper=upper,
            center=np.zeros(len(bench)),
            scale=np.ones(len(bench)),
        )
        values = pd.DataFrame({"b": b, "v": partial.oriented(raw, b)}).groupby("b")["v"]
        center = values.mean().reindex(range(len(bench))).to_numpy()
        scale = values.std(ddof=0).reindex(range(len(bench))).to_numpy()
        return dataclasses.replace(partial, center=center, scale=scale)

    # ------------------------------------------------------------------ maps
    def positions(self, keys: Sequence[str]) -> np.ndarray:
        """Positions of benchmark keys in :attr:`benchmarks` (raises on an unknown key)."""
        idx = self.benchmarks.get_indexer(pd.Index(np.asarray(keys, dtype=str)))
        if (idx < 0).any():
            unknown = sorted({str(k) for k, i in zip(keys, idx, strict=True) if i < 0})
            raise KeyError(f"benchmark(s) {unknown} are not in this transform")
        return idx.astype(np.int64)

    def oriented(self, raw_values, benchmark_idx) -> np.ndarray:
        """Oriented (and, where used, logit-transformed) values before standardising."""
        raw = np.asarray(raw_values, dtype=float)
        b = np.asarray(benchmark_idx, dtype=np.int64)
        sign = self.sign[b]
        use = self.logit[b]
        if not use.any():
            return raw * sign
        share = _share(raw, self.floor[b], self.upper[b])
        with np.errstate(divide="ignore", invalid="ignore"):
            logits = np.log(share / (1 - share))
        return np.where(use, logits, raw) * sign

    def forward(self, raw_values, benchmark_idx) -> np.ndarray:
        """Stored scores to the model scale.

        Parameters
        ----------
        raw_values : array_like
            Shape ``(..., n)``, the last axis over cells.
        benchmark_idx : array_like of int
            Shape ``(n,)``: each cell's benchmark position (:meth:`positions`).

        Returns
        -------
        numpy.ndarray
        """
        b = np.asarray(benchmark_idx, dtype=np.int64)
        return (self.oriented(raw_values, b) - self.center[b]) / self.scale[b]

    def inverse(self, model_values, benchmark_idx, *, clip: bool = False) -> np.ndarray:
        """Model-scale values to stored units: unstandardise, inverse logit, orientation.

        Logit-transformed values map into ``(floor, upper)``. With ``clip`` the result is
        clipped to the declared range ``[lower, upper]`` (NaN bounds: unbounded).

        Parameters
        ----------
        model_values : array_like
            Shape ``(..., n)``.
        benchmark_idx : array_like of int
            Shape ``(n,)``.
        clip : bool
        """
        b = np.asarray(benchmark_idx, dtype=np.int64)
        oriented = np.asarray(model_values, dtype=float) * self.scale[b] + self.center[b]
        raw = oriented * self.sign[b]
        use = self.logit[b]
        if use.any():
            lo, hi = self.floor[b], self.upper[b]
            raw = np.where(use, lo + expit(raw) * (hi - lo), raw)
        if clip:
            lower = np.where(np.isnan(self.lower[b]), -np.inf, self.lower[b])
            upper = np.where(np.isnan(self.upper[b]), np.inf, self.upper[b])
            raw = np.clip(raw, lower, upper)
        return raw

    def slope(self, raw_values, benchmark_idx) -> np.ndarray:
        """Derivative of :meth:`forward` with respect to the stored value, per cell.

        ``sign / scale`` on a standardised benchmark; on a logit-transformed one
        ``sign / (scale * (upper - floor) * q * (1 - q))`` at the value's clipped share ``q``.
        """
        raw = np.asarray(raw_values, dtype=float)
        b = np.asarray(benchmark_idx, dtype=np.int64)
        slope = self.sign[b] / self.scale[b]
        use = self.logit[b]
        if use.any():
            width = self.upper[b] - self.floor[b]
            share = _share(raw, self.floor[b], self.upper[b])
            slope = np.where(use, slope / (width * share * (1 - share)), slope)
        return slope

    def noise_variance(self, raw_values, benchmark_idx, n_items) -> np.ndarray:
        """Model-scale measurement-noise variance of every benchmark (delta method).

        A score that is the proportion ``p = (value - lower) / (upper - lower)`` of
        ``n`` items has sampling variance ``p (1 - p) / n``; mapped through the transform
        at each cell it is ``p (1 - p) / n * ((upper - lower) * slope)**2``
        (:meth:`slope`). ``p`` is first shrunk away from 0 and 1 as ``(n p + 1/2) /
        (n + 1)``, so a score at a bound keeps a positive variance. The benchmark's noise
        variance is the mean over its cells: the expected sampling variance of one of its
        scores, which (unlike a per-cell variance) keeps one residual variance, one
        ``rho`` and one set of variance shares per benchmark.

        Parameters
        ----------
        raw_values, benchmark_idx : array_like
            Stored scores and their benchmark positions, shape ``(n,)``.
        n_items : array_like
            Per benchmark (in :attr:`benchmarks` order): the number of items its score is
            the proportion of, NaN where unknown or not a proportion
            (:func:`safetywash.data.catalog.proportion_items`).

        Returns
        -------
        numpy.ndarray
            Per benchmark; NaN where ``n_items`` is NaN or the benchmark has no cell.
        """
        raw = np.asarray(raw_values, dtype=float)
        b = np.asarray(benchmark_idx, dtype=np.int64)
        items = np.asarray(n_items, dtype=float)
        n, lo, hi = items[b], self.lower[b], self.upper[b]
        with np.errstate(divide="ignore", invalid="ignore"):
            p = ((raw - lo) / (hi - lo) * n + 0.5) / (n + 1)
            at = lo + p * (hi - lo)
            var = p * (1 - p) / n * ((hi - lo) * self.slope(at, b)) ** 2
        known = ~np.isnan(var)
        total = np.bincount(b[known], weights=var[known], minlength=len(items))
        count = np.bincount(b[known], minlength=len(items))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(count > 0, total / count, np.nan)

    # ------------------------------------------------------------------ storage
    def to_dataset(self) -> xr.Dataset:
        """The transform as ``benchmark`` variables for a fit's ``constant_data``."""
        keys = np.asarray(self.benchmarks, dtype=str)
        return xr.Dataset(
            {
                # y = (oriented, transformed value - transform_center) / transform_sd
                "transform_center": ("benchmark", self.center.astype(float)),
                "transform_sd": ("benchmark", self.scale.astype(float)),
                "logit_transformed": ("benchmark", self.logit.astype(bool)),
                # the logit maps (value - logit_floor) / (upper - logit_floor); NaN if unused
                "logit_floor": ("benchmark", self.floor.astype(float)),
                "benchmark_direction": ("benchmark", np.where(self.sign < 0, "lower", "higher")),
                "benchmark_lower": ("benchmark", self.lower.astype(float)),
                "benchmark_upper": ("benchmark", self.upper.astype(float)),
            },
            coords={"benchmark": keys},
        )

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> ScoreTransform:
        """Inverse of :meth:`to_dataset` (e.g. a fit's ``constant_data``)."""
        missing = [v for v in TRANSFORM_VARIABLES if v not in ds.variables]
        if missing:
            raise ValueError(f"no score transform stored: variables {missing} are missing")

        def values(name: str, dtype) -> np.ndarray:
            return np.asarray(ds[name].transpose("benchmark").values, dtype=dtype)

        direction = values("benchmark_direction", str)
        return cls(
            benchmarks=pd.Index(values("benchmark", str), name="benchmark"),
            sign=np.where(direction == "lower", -1.0, 1.0),
            logit=values("logit_transformed", bool),
            floor=values("logit_floor", float),
            lower=values("benchmark_lower", float),
            upper=values("benchmark_upper", float),
            center=values("transform_center", float),
            scale=values("transform_sd", float),
        )

    def table(self) -> pd.DataFrame:
        """One row per benchmark: ``sign``, ``logit``, ``floor``, ``lower``, ``upper``,
        ``center``, ``scale``."""
        names = ("sign", "logit", "floor", "lower", "upper", "center", "scale")
        return pd.DataFrame({n: getattr(self, n) for n in names}, index=self.benchmarks)


def crowds_a_bound(raw_values, benchmark_idx, floor, upper) -> np.ndarray:
    """Whether each benchmark's scores crowd the floor or the ceiling of ``[floor, upper]``.

    True where at least :data:`CROWD_SHARE` of its scores lie within :data:`CROWD_MARGIN`
    (as a share of the range) of one bound and its scores span at least :data:`MIN_SPAN`
    of the range (a benchmark whose every score sits at a bound, e.g. a toxic fraction
    near 0, has no range over which a sigmoid could be told from a line).

    Parameters
    ----------
    raw_values, benchmark_idx : array_like
        Stored scores and their benchmark positions, shape ``(n,)``.
    floor, upper : array_like
        Per benchmark; NaN where unbounded (never crowded).
    """
    b = np.asarray(benchmark_idx, dtype=np.int64)
    lo, hi = np.asarray(floor, dtype=float), np.asarray(upper, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (np.asarray(raw_values, dtype=float) - lo[b]) / (hi[b] - lo[b])
    frame = pd.DataFrame(
        {"b": b, "low": share < CROWD_MARGIN, "high": share > 1 - CROWD_MARGIN, "q": share}
    )
    per = frame.groupby("b").agg(low=("low", "mean"), high=("high", "mean"), q=("q", np.ptp))
    per = per.reindex(range(len(lo)))
    crowded = np.maximum(per["low"], per["high"]).to_numpy() >= CROWD_SHARE
    return crowded & (per["q"].to_numpy() >= MIN_SPAN) & (hi > lo)


def _share(raw: np.ndarray, floor: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Share of the range ``[floor, upper]``, clipped to ``[LOGIT_EPS, 1 - LOGIT_EPS]``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip((raw - floor) / (upper - floor), LOGIT_EPS, 1 - LOGIT_EPS)
