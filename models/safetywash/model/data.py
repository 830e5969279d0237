"""The arrays the model is built from: index arrays, model-scale scores, group structure.

:func:`prepare_data` turns a study and a :class:`~safetywash.model.config.ModelConfig` into
:class:`ModelData` (scores on the model scale through
:class:`~safetywash.model.transform.ScoreTransform`); :func:`initial_point` gives the
data-driven start values of the sampler; :func:`zero_sum_by_group` is the orthonormal map
behind capability's zero-sum-within-population constraint. No PyMC here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from safetywash.data.catalog import proportion_items
from safetywash.data.study import BenchmarkStudy
from safetywash.model.axes import AXIS_DIM, axis_names, axis_start, check_capability_dims
from safetywash.model.config import MIN_BENCHMARKS_PER_FACTOR, ModelConfig
from safetywash.model.pooling import (
    MIN_SLOPE,
    Pooling,
    capability_mode,
    loading_estimates,
    pooling,
    start_capability,
    whitening,
)
from safetywash.model.transform import ScoreTransform


@dataclass(frozen=True)
class ModelData:
    """Arrays the model is built from, derived from a study and a config."""

    study: BenchmarkStudy
    y: np.ndarray
    llm_idx: np.ndarray
    benchmark_idx: np.ndarray
    transform: ScoreTransform
    population_idx: np.ndarray
    populations: list[str]
    areas: list[str]
    capability_keys: list[str]
    safety_keys: list[str]
    safety_area_idx: np.ndarray
    factor_keys: list[str] = field(default_factory=list)
    factor_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    factor_anchor: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    initial_capability: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: Model-scale measurement-noise variance per benchmark (NaN: unknown, not separated).
    noise_variance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: Capability dimensions (``ModelConfig.capability_dims``).
    capability_dims: int = 1

    @property
    def coords(self) -> dict[str, list]:
        """Named dimensions of the model."""
        coords = {
            "llm": list(self.study.llms.index),
            "capability_basis": list(range(len(self.study.llms) - len(self.populations))),
            "benchmark": list(self.study.benchmarks.index),
            "cell": list(range(len(self.y))),
            "population": self.populations,
            "area": self.areas,
            "capability_benchmark": self.capability_keys,
            "safety_benchmark": self.safety_keys,
        }
        if self.factor_keys:
            coords["factor"] = self.factor_names
            coords["factor_benchmark"] = self.factor_keys
        if self.capability_dims > 1:
            coords[AXIS_DIM] = axis_names(self.capability_dims)
        return coords

    @property
    def factor_names(self) -> list[str]:
        """Safety areas with a factor of their own, in the order of ``factor_idx``."""
        return list(pd.unique(self.study.benchmarks.loc[self.factor_keys, "area"]))

    @property
    def center(self) -> pd.Series:
        """Per-benchmark centre of the standardisation (see :attr:`transform`)."""
        return pd.Series(self.transform.center, index=self.transform.benchmarks)

    @property
    def scale(self) -> pd.Series:
        """Per-benchmark SD of the standardisation (see :attr:`transform`)."""
        return pd.Series(self.transform.scale, index=self.transform.benchmarks)

    @property
    def transformed(self) -> pd.Series:
        """Whether each benchmark is logit-transformed."""
        return pd.Series(self.transform.logit, index=self.transform.benchmarks)

    @property
    def logit_floor(self) -> pd.Series:
        """The logit's floor per benchmark (NaN where unused)."""
        return pd.Series(self.transform.floor, index=self.transform.benchmarks)

    @property
    def cell_factor(self) -> np.ndarray:
        """Area factor of every cell's benchmark (0 outside factor areas)."""
        keys = list(self.coords["benchmark"])
        of_benchmark = np.zeros(len(keys), dtype=np.int64)
        of_benchmark[[keys.index(k) for k in self.factor_keys]] = self.factor_idx
        return of_benchmark[self.benchmark_idx]


def prepare_data(study: BenchmarkStudy, config: ModelConfig | None = None) -> ModelData:
    """Turn a study into the index arrays and model-scale scores the model uses.

    Parameters
    ----------
    study : BenchmarkStudy
        The study (all levels); the config's ``level`` selects aggregates or parts.
    config : ModelConfig, optional

    Returns
    -------
    ModelData
    """
    config = config or ModelConfig()
    study = study.select_level(config.level)
    transform = ScoreTransform.fit(study, config.transform)
    b = study.benchmark_index
    raw = study.scores["value"].to_numpy(dtype=float)
    y = transform.forward(raw, b)
    noise_variance = transform.noise_variance(raw, b, proportion_items(study.benchmarks))
    keys = study.benchmarks.index

    bench = study.benchmarks
    capability_keys = list(bench.index[bench["role"] == "capability"])
    safety_keys = list(bench.index[bench["role"] == "safety"])
    if not capability_keys:
        raise ValueError(
            f"study {study.name!r} has no capability benchmark: the capability factor needs "
            "at least one (the catalog's role column)"
        )
    check_capability_dims(study.name, len(capability_keys), config.capability_dims)
    areas = list(pd.unique(bench.loc[safety_keys, "area"]))
    safety_area_idx = np.array(
        [areas.index(a) for a in bench.loc[safety_keys, "area"]], dtype=np.int64
    )
    populations = sorted(pd.unique(study.llms["population"]))
    population_idx = np.array(
        [populations.index(p) for p in study.llms["population"]], dtype=np.int64
    )

    factor_keys, factor_idx, anchor = _factor_structure(study, config.factors, areas)

    # Data-driven start for theta: each LLM's mean standardised capability score.
    is_cap = np.isin(b, [keys.get_loc(k) for k in capability_keys])
    per_llm = pd.Series(y[is_cap]).groupby(study.llm_index[is_cap]).mean()
    init = per_llm.reindex(range(study.n_llms)).fillna(0.0).to_numpy()
    init = (init - init.mean()) / (init.std() or 1.0)

    return ModelData(
        study=study,
        y=y,
        llm_idx=study.llm_index,
        benchmark_idx=b,
        transform=transform,
        population_idx=population_idx,
        populations=populations,
        areas=areas,
        capability_keys=capability_keys,
        safety_keys=safety_keys,
        safety_area_idx=safety_area_idx,
        factor_keys=factor_keys,
        factor_idx=factor_idx,
        factor_anchor=anchor,
        initial_capability=init,
        noise_variance=noise_variance,
        capability_dims=config.capability_dims,
    )


def factor_anchor(members: list[str], counts: pd.Series) -> str:
    """The anchor of an area factor: its benchmark with the most observed LLMs (ties: first).

    The anchor's factor loading is positive, which fixes the factor's sign.
    """
    return max(members, key=lambda k: (counts[k], -members.index(k)))


def _factor_structure(study: BenchmarkStudy, factors: tuple[str, ...], areas: list[str]):
    bench = study.benchmarks
    unknown = [f for f in factors if f not in areas]
    if unknown:
        raise ValueError(f"factor area(s) {unknown} have no safety benchmark; areas: {areas}")
    counts = study.scores.groupby("benchmark").size()
    keys, idx, anchor = [], [], []
    ordered = [a for a in areas if a in set(factors)]
    for f, area in enumerate(ordered):
        members = list(bench.index[(bench["role"] == "safety") & (bench["area"] == area)])
        if len(members) < MIN_BENCHMARKS_PER_FACTOR:
            raise ValueError(
                f"area {area!r} has {len(members)} benchmark(s); a factor of its own needs "
                f"at least {MIN_BENCHMARKS_PER_FACTOR} to be identified"
            )
        best = factor_anchor(members, counts)
        keys += members
        idx += [f] * len(members)
        anchor += [k == best for k in members]
    return keys, np.array(idx, dtype=np.int64), np.array(anchor, dtype=bool)


def _group_layout(group_idx: np.ndarray, n_groups: int):
    """Positions of each group's last member, the others, and group sizes."""
    last = np.array([np.flatnonzero(group_idx == g)[-1] for g in range(n_groups)])
    free = np.setdiff1d(np.arange(len(group_idx)), last)
    counts = np.bincount(group_idx, minlength=n_groups).astype(float)
    return last, free, counts


def zero_sum_by_group(w, group_idx: np.ndarray, n_groups: int, *, xp=np):
    """Map ``n - G`` free coordinates to a vector summing to zero within every group.

    The map is orthonormal (PyMC's ``ZeroSumTransform`` applied group by group), so
    i.i.d. standard normal ``w`` gives a standard zero-sum normal within each group.
    ``xp`` is ``numpy`` or ``pytensor.tensor``.
    """
    last, free, counts = _group_layout(group_idx, n_groups)
    n = len(group_idx)
    if xp is np:
        full = np.zeros(n)
        full[free] = w
        sums = np.bincount(group_idx, weights=full, minlength=n_groups)
    else:
        full = xp.zeros(n)[free].set(w)
        sums = xp.zeros(n_groups)[group_idx].inc(full)
    root = np.sqrt(counts)
    norm = sums / (root + counts)
    fill = norm - sums / root
    full = full[last].set(fill) if xp is not np else _np_set(full, last, fill)
    return full - norm[group_idx]


def _np_set(values: np.ndarray, idx: np.ndarray, new: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[idx] = new
    return out


def zero_sum_by_group_inverse(z: np.ndarray, group_idx: np.ndarray, n_groups: int) -> np.ndarray:
    """Free coordinates of a vector that sums to zero within every group."""
    last, free, counts = _group_layout(group_idx, n_groups)
    root = np.sqrt(counts)
    sums = -z[last] * root
    norm = sums / (root + counts)
    return z[free] + norm[group_idx[free]]


def initial_point(data: ModelData, config: ModelConfig | None = None) -> dict[str, np.ndarray]:
    """Data-driven start values that put every chain in the mode the data point to.

    Capability starts at each LLM's mean standardised capability score; every loading
    starts at the slope of its benchmark on that estimate, and area factors at the first
    principal component of their benchmarks' residuals, signed so the anchor loading is
    positive. Jitter is left to the other parameters. Without these starts a chain can
    settle in a reflected mode (capability loadings near 0 with safety loadings flipped,
    or an area factor with its anchor loading near 0 and the others flipped).
    """
    config = config or ModelConfig()
    theta = start_capability(data)
    start: dict[str, np.ndarray] = {}
    if capability_mode(data, config) != "marginal":
        start["capability_z"] = zero_sum_by_group_inverse(
            theta, data.population_idx, len(data.populations)
        )
    slopes, _ = loading_estimates(data, theta)
    pos = {k: j for j, k in enumerate(data.coords["benchmark"])}
    pool = pooling(data, config)
    cap = np.log(np.clip([slopes[pos[k]] for k in data.capability_keys], MIN_SLOPE, None))
    if pool.capability:
        start["capability_loading_log"] = cap
    else:
        mean, spread = cap.mean(), max(cap.std(), 0.1)
        start["capability_loading_log_mean"] = np.asarray(mean)
        start["capability_loading_log_sd"] = np.asarray(spread)
        if pool.capability_estimates:
            centre, scale = whitening(
                mean,
                spread,
                np.asarray(pool.capability_estimates),
                np.asarray(pool.capability_errors),
            )
            start["capability_loading_wz"] = (cap - centre) / scale
        else:
            start["capability_loading_z"] = (cap - mean) / spread
    if data.safety_keys:
        safe = np.array([slopes[pos[k]] for k in data.safety_keys])
        start.update(_safety_start(data, safe, pool))
    if data.factor_keys:
        start.update(_factor_start(data, theta, slopes, pos))
    if data.capability_dims > 1:
        start.update(_axis_start(data, theta, slopes, pos))
    return start


def _axis_start(data: ModelData, theta, slopes, pos) -> dict[str, np.ndarray]:
    """Further capability axes from the capability benchmarks' residuals
    (:func:`safetywash.model.axes.axis_start`), in the builder's coordinates."""
    cap = np.array([pos[k] for k in data.capability_keys], dtype=np.int64)
    safe = np.array([pos[k] for k in data.safety_keys], dtype=np.int64)
    args = (data.y, data.llm_idx, data.benchmark_idx, theta, slopes, cap)
    scores, loadings = axis_start(*args, data.capability_dims - 1)
    # (axis_score_z is dropped where capability is integrated out: sample_model keeps
    # only the starts of the model's own variables.)
    start = {"axis_loading_capability_raw": loadings[cap], "axis_score_z": scores}
    if len(safe):
        start["axis_loading_safety"] = loadings[safe]
    return start


def _safety_start(data: ModelData, safe: np.ndarray, pool: Pooling) -> dict[str, np.ndarray]:
    """Safety loadings, their area means and the level above, from the data slopes."""
    n_areas = len(data.areas)
    sizes = np.bincount(data.safety_area_idx, minlength=n_areas)
    area_mean = np.bincount(data.safety_area_idx, weights=safe, minlength=n_areas) / sizes
    dev = safe - area_mean[data.safety_area_idx]
    spread = max(dev.std(), 0.1)
    top = area_mean.mean()
    area_spread = max(area_mean.std(), 0.1)
    start = {
        "safety_loading_mean": np.asarray(top),
        "area_loading_sd": np.asarray(area_spread),
        "safety_loading_sd": np.asarray(spread),
    }
    if pool.safety:
        start["area_loading_z"] = (area_mean - top) / area_spread
        start["safety_loading"] = safe
        return start
    # The non-centred form's coordinates (safetywash.model.build): each area's average,
    # standardised, and the within-area offsets in zero-sum coordinates. (area_loading_aux
    # is left to the jitter: nutpie refuses a start where a gradient is exactly 0.)
    if pool.area:
        # safety_loading_mean is then drawn given the averages (safetywash.model.build)
        del start["safety_loading_mean"]
        start["area_loading_average"] = area_mean
    else:
        start["area_loading_z"] = (area_mean - top) / np.sqrt(area_spread**2 + spread**2 / sizes)
    if len(safe) > n_areas:
        start["safety_loading_z"] = zero_sum_by_group_inverse(
            dev / spread, data.safety_area_idx, n_areas
        )
    return start


def _factor_start(data: ModelData, theta, slopes, pos) -> dict[str, np.ndarray]:
    """Area factors from the leading principal component of their residuals."""
    n_llms = len(theta)
    eta = np.zeros((n_llms, len(data.factor_names)))
    gamma = np.zeros(len(data.factor_keys))
    resid = data.y - slopes[data.benchmark_idx] * theta[data.llm_idx]
    for f in range(len(data.factor_names)):
        members = [k for k, g in zip(data.factor_keys, data.factor_idx, strict=True) if g == f]
        cols = [pos[k] for k in members]
        grid = np.zeros((n_llms, len(cols)))
        for c, col in enumerate(cols):
            cells = data.benchmark_idx == col
            grid[data.llm_idx[cells], c] = resid[cells] - resid[cells].mean()
        u, sv, vt = np.linalg.svd(grid, full_matrices=False)
        score, load = u[:, 0] * np.sqrt(n_llms), vt[0] * sv[0] / np.sqrt(n_llms)
        anchor = data.factor_anchor[data.factor_idx == f]
        if load[anchor].sum() < 0:
            score, load = -score, -load
        eta[:, f] = score
        gamma[data.factor_idx == f] = load
    anchor = data.factor_anchor
    start = {
        "area_factor_z": eta,
        "factor_anchor_loading": np.clip(gamma[anchor], 0.05, None),
    }
    if (~anchor).any():
        start["factor_free_loading"] = gamma[~anchor]
    return start


def benchmark_centers(data: ModelData) -> np.ndarray:
    """Each benchmark's centre ``c_b`` for the model's intercepts (sampled as the cell
    mean there, see :mod:`safetywash.model.build`): the mean data-driven capability of its
    LLMs, rounded to a signed power of two (0 below 1/8 in size).

    A power of two makes ``loading * c_b`` exact in floating point, so the intercept
    recomputed from the sampler's variables (e.g. by ``pm.compute_log_likelihood``) is
    bit for bit the stored one, however the products are fused.
    """
    theta = start_capability(data)
    counts = np.bincount(data.benchmark_idx, minlength=len(data.coords["benchmark"]))
    sums = np.bincount(data.benchmark_idx, weights=theta[data.llm_idx], minlength=len(counts))
    mean = sums / np.maximum(counts, 1)
    with np.errstate(divide="ignore"):
        power = np.exp2(np.round(np.log2(np.abs(mean))))
    return np.where(np.abs(mean) < 0.125, 0.0, np.sign(mean) * power)
