"""The hierarchical latent-factor model: a pure builder from a study to a ``pm.Model``.

Scores are oriented by the catalog (higher = better/safer) and transformed per benchmark
(standardised by default), then

.. math::

    y_{c} \\sim \\mathrm{Normal}(\\alpha_b + \\lambda_b \\theta_i + \\gamma_b \\eta_{i,a(b)},
    \\sigma_b)

for each observed cell ``c = (i, b)`` only (missing cells never enter the likelihood).
``theta`` is each LLM's latent capability (standard scale; populations may differ in mean
and spread), ``lambda`` the capability loading (positive and partially pooled for
capability benchmarks, which fixes the sign of ``theta``; free in sign and pooled within
the safety area for safety benchmarks), ``sigma`` the residual scale, and the optional
``eta``/``gamma`` area factors (confirmatory: only a factor area's own benchmarks load on
it; its best-observed benchmark's loading is positive).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from safetywash.data.study import BenchmarkStudy

TRANSFORMS = ("standardize", "logit")
PARAMETERISATIONS = ("auto", "noncentered", "centered")
CAPABILITY_MODES = ("sampled", "marginal")
CENTER_FROM_OBSERVATIONS = 100
CENTER_FROM_DEGREES_OF_FREEDOM = 15
MIN_BENCHMARKS_PER_FACTOR = 3
LOGIT_EPS = 1e-3


@dataclass(frozen=True)
class ModelConfig:
    """Choices that define the model (saved with every fit).

    Parameters
    ----------
    transform : {"standardize", "logit"}
        Per-benchmark scale of the oriented scores. ``"logit"`` maps bounded benchmarks to
        logits of the share of the range above the chance floor (or the lower bound) before
        standardising; unbounded benchmarks are only standardised.
    factors : tuple of str
        Safety areas that get a factor of their own beside capability (each needs at least
        :data:`MIN_BENCHMARKS_PER_FACTOR` benchmarks). Empty: one capability factor.
    level : {"aggregate", "parts"}
        Fit aggregates (default) or their parts; never both, so no score counts twice.
    capability_loadings, safety_loadings : {"auto", "noncentered", "centered"}
        Parameterisation of the pooled loadings. Centred pooling has a funnel when the
        pooled SD is poorly determined and can approach 0 (few benchmarks, few
        observations each); non-centred has a ridge between the group mean and the
        offsets when the data pin each loading down. ``"auto"`` centres a group when its
        benchmarks have on average at least :data:`CENTER_FROM_OBSERVATIONS` observed LLMs
        (each loading is pinned down), or when the pooled SD has at least
        :data:`CENTER_FROM_DEGREES_OF_FREEDOM` degrees of freedom (benchmarks minus group
        means), so that it cannot collapse towards 0.
    prior_scale : float
        Multiplies the scales of the hyperpriors on loadings and residuals (prior
        sensitivity: 0.5 narrower, 2 wider).
    capability : {"sampled", "marginal"}
        ``"sampled"``: NUTS samples every LLM's capability (normalised to zero mean and
        unit spread within each population). ``"marginal"``: capability is integrated out
        analytically (the likelihood is Gaussian, so each LLM's scores are jointly normal
        with a rank-one-plus-diagonal covariance); NUTS samples only benchmark and
        population parameters and :func:`safetywash.inference.sampling.fit` then draws capability
        exactly from its conditional normal posterior. Here capability has a N(mean, sd)
        population distribution (sd = 1 for one population) rather than a normalised
        sample. Exact, and far faster for thousands of LLMs; one-factor models only.
    """

    transform: str = "standardize"
    factors: tuple[str, ...] = ()
    level: str = "aggregate"
    capability_loadings: str = "auto"
    safety_loadings: str = "auto"
    prior_scale: float = 1.0
    capability: str = "sampled"

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, not {self.transform!r}")
        if self.level not in ("aggregate", "parts"):
            raise ValueError(f"level must be 'aggregate' or 'parts', not {self.level!r}")
        for name in ("capability_loadings", "safety_loadings"):
            if getattr(self, name) not in PARAMETERISATIONS:
                raise ValueError(f"{name} must be one of {PARAMETERISATIONS}")
        if not self.prior_scale > 0:
            raise ValueError("prior_scale must be positive")
        if self.capability not in CAPABILITY_MODES:
            raise ValueError(f"capability must be one of {CAPABILITY_MODES}")
        if self.capability == "marginal" and self.factors:
            raise ValueError("capability='marginal' supports the one-factor model only")
        object.__setattr__(self, "factors", tuple(self.factors))

    def to_json(self) -> str:
        """The configuration as a JSON string."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Inverse of :meth:`to_json`."""
        values = json.loads(text)
        values["factors"] = tuple(values.get("factors", ()))
        return cls(**values)


@dataclass(frozen=True)
class ModelData:
    """Arrays the model is built from, derived from a study and a config."""

    study: BenchmarkStudy
    y: np.ndarray
    llm_idx: np.ndarray
    benchmark_idx: np.ndarray
    center: pd.Series
    scale: pd.Series
    transformed: pd.Series
    logit_floor: pd.Series
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
        return coords

    @property
    def factor_names(self) -> list[str]:
        """Safety areas with a factor of their own, in the order of ``factor_idx``."""
        return list(pd.unique(self.study.benchmarks.loc[self.factor_keys, "area"]))


def transform_scores(
    study: BenchmarkStudy, transform: str
) -> tuple[np.ndarray, pd.Series, pd.Series]:
    """Orient every score (higher = better/safer) and map it to the model's scale.

    With ``"logit"``, a benchmark is mapped to the logit of its share of the range between a
    floor and its upper bound (clipped to ``[LOGIT_EPS, 1 - LOGIT_EPS]``), then oriented.
    The floor is the chance level when every observed score lies above it, else the lower
    bound. Benchmarks without both bounds, or whose clipped shares would not vary, keep the
    plain orientation. Returns the per-cell values before standardisation, a flag per
    benchmark saying whether the logit was applied, and the floor it used (NaN if not).
    """
    bench = study.benchmarks
    sign = study.direction_sign.to_numpy()[study.benchmark_index]
    raw = study.scores["value"].to_numpy(dtype=float)
    logit_used = pd.Series(False, index=bench.index)
    if transform == "standardize":
        return raw * sign, logit_used, pd.Series(np.nan, index=bench.index)
    b = study.benchmark_index
    by_bench = pd.Series(raw).groupby(b)
    low = pd.Series(by_bench.min().to_numpy(), index=bench.index)
    chance_ok = bench["chance"].notna() & (low > bench["chance"])
    floor = bench["chance"].where(chance_ok, bench["lower"])
    upper = bench["upper"]
    lo, hi = floor.to_numpy(dtype=float)[b], upper.to_numpy(dtype=float)[b]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip((raw - lo) / (hi - lo), LOGIT_EPS, 1 - LOGIT_EPS)
    spread = pd.Series(share).groupby(b).agg(np.ptp)
    usable = floor.notna() & upper.notna() & (upper > floor)
    usable &= pd.Series(spread.to_numpy() > 0, index=bench.index)
    use = usable.to_numpy()[b]
    logits = np.log(share / (1 - share))
    out = np.where(use, logits, raw) * sign
    return out, usable, floor.where(usable)


def prepare_data(study: BenchmarkStudy, config: ModelConfig | None = None) -> ModelData:
    """Turn a study into the index arrays and standardised scores the model uses.

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
    values, logit_used, logit_floor = transform_scores(study, config.transform)
    b = study.benchmark_index
    frame = pd.DataFrame({"b": b, "v": values})
    center = frame.groupby("b")["v"].mean()
    scale = frame.groupby("b")["v"].std(ddof=0)
    y = (values - center.to_numpy()[b]) / scale.to_numpy()[b]
    keys = study.benchmarks.index
    center.index, scale.index = keys, scale.index.map(lambda i: keys[i])

    bench = study.benchmarks
    capability_keys = list(bench.index[bench["role"] == "capability"])
    safety_keys = list(bench.index[bench["role"] == "safety"])
    if not capability_keys:
        raise ValueError(
            f"study {study.name!r} has no capability benchmark: the capability factor needs "
            "at least one (the catalog's role column)"
        )
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
        center=center,
        scale=scale,
        transformed=logit_used,
        logit_floor=logit_floor,
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
    )


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
        best = max(members, key=lambda k: (counts[k], -members.index(k)))
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
        full = pt.set_subtensor(pt.zeros(n)[free], w)
        sums = pt.inc_subtensor(pt.zeros(n_groups)[group_idx], full)
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


def _data_loadings(data: ModelData, theta: np.ndarray) -> np.ndarray:
    """Least-squares slope of every benchmark's scores on a capability estimate."""
    b, i = data.benchmark_idx, data.llm_idx
    frame = pd.DataFrame({"b": b, "y": data.y, "t": theta[i]})
    frame["ty"], frame["tt"] = frame["t"] * frame["y"], frame["t"] ** 2
    sums = frame.groupby("b")[["t", "y", "ty", "tt"]].sum()
    n = frame.groupby("b").size()
    cov = sums["ty"] / n - sums["t"] * sums["y"] / n**2
    var = (sums["tt"] / n - (sums["t"] / n) ** 2).clip(lower=1e-6)
    return (cov / var).reindex(range(len(data.coords["benchmark"]))).fillna(0.0).to_numpy()


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
    theta = data.initial_capability.copy()
    for p in range(len(data.populations)):
        members = data.population_idx == p
        theta[members] = theta[members] - theta[members].mean()
    start: dict[str, np.ndarray] = {}
    if config.capability != "marginal":
        start["capability_z"] = zero_sum_by_group_inverse(
            theta, data.population_idx, len(data.populations)
        )
    slopes = _data_loadings(data, theta)
    pos = {k: j for j, k in enumerate(data.coords["benchmark"])}
    cap = np.log(np.clip([slopes[pos[k]] for k in data.capability_keys], 0.05, None))
    if _centered(config.capability_loadings, data, len(data.capability_keys) - 1):
        start["capability_loading_log"] = cap
    else:
        start["capability_loading_log_mean"] = np.asarray(cap.mean())
        spread = max(cap.std(), 0.1)
        start["capability_loading_log_sd"] = np.asarray(spread)
        start["capability_loading_z"] = (cap - cap.mean()) / spread
    if data.safety_keys:
        safe = np.array([slopes[pos[k]] for k in data.safety_keys])
        area_mean = np.array(
            [safe[data.safety_area_idx == a].mean() for a in range(len(data.areas))]
        )
        dev = safe - area_mean[data.safety_area_idx]
        spread = max(dev.std(), 0.1)
        start["area_loading_mean"] = area_mean
        start["safety_loading_sd"] = np.asarray(spread)
        if _centered(config.safety_loadings, data, len(data.safety_keys) - len(data.areas)):
            start["safety_loading"] = safe
        else:
            start["safety_loading_z"] = dev / spread
    if data.factor_keys:
        start.update(_factor_start(data, theta, slopes, pos))
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
        "area_factor": eta,
        "factor_anchor_loading": np.clip(gamma[anchor], 0.05, None),
    }
    if (~anchor).any():
        start["factor_free_loading"] = gamma[~anchor]
    return start


def marginal_loglik_by_llm(
    y, llm_idx, bench_idx, population_idx, intercept, loading, sigma, pop_mean, pop_sd, *, xp=np
):
    """Log-likelihood of each LLM's observed scores with capability integrated out.

    For LLM ``i`` in population ``p`` with observed benchmarks ``b``, the scores are
    ``N(alpha_b + lambda_b * mu_p, diag(sigma_b^2) + s_p^2 * lambda lambda')``; by the matrix
    determinant lemma and Woodbury's identity its log density is

        -1/2 [sum_b log(2 pi sigma_b^2) + sum_b r_b^2 / sigma_b^2
              + log(1 + s_p^2 a) - s_p^2 q^2 / (1 + s_p^2 a)]

    with ``r_b = y_b - alpha_b - lambda_b mu_p``, ``a = sum_b lambda_b^2 / sigma_b^2`` and
    ``q = sum_b lambda_b r_b / sigma_b^2``: O(cells), no matrix per LLM.

    Parameters
    ----------
    y : array
        Model-scale scores of the observed cells.
    llm_idx, bench_idx, population_idx : numpy.ndarray
        LLM and benchmark of every cell; population of every LLM.
    intercept, loading, sigma : array or tensor
        Per benchmark (numpy: optionally with leading draw axes).
    pop_mean, pop_sd : array or tensor
        Per population (same leading axes).
    xp : module
        ``numpy`` or ``pytensor.tensor``.

    Returns
    -------
    array or tensor
        Per-LLM log-likelihood, shape ``(..., n_llms)``.
    """
    n_llms = len(population_idx)
    lam = loading[..., bench_idx]
    var = sigma[..., bench_idx] ** 2
    mu = pop_mean[..., population_idx[llm_idx]]
    r = y - intercept[..., bench_idx] - lam * mu
    per_cell = [xp.log(2 * np.pi * var) + r**2 / var, lam**2 / var, lam * r / var]
    a_const, a, q = (_segment_sum(v, llm_idx, n_llms, xp) for v in per_cell)
    s2 = pop_sd[..., population_idx] ** 2
    denom = 1 + s2 * a
    return -0.5 * (a_const + xp.log(denom) - s2 * q**2 / denom)


def capability_conditional(
    y, llm_idx, bench_idx, population_idx, intercept, loading, sigma, pop_mean, pop_sd
):
    """Mean and SD of each LLM's capability given benchmark parameters (numpy).

    ``theta_i | y, params ~ N(m_i, v_i)`` with ``v_i = 1 / (1/s_p^2 + a_i)`` and
    ``m_i = v_i (mu_p / s_p^2 + sum_b lambda_b (y_b - alpha_b) / sigma_b^2)``. Arrays may
    carry leading draw axes; returns ``(mean, sd)`` of shape ``(..., n_llms)``.
    """
    n_llms = len(population_idx)
    lam = loading[..., bench_idx]
    var = sigma[..., bench_idx] ** 2
    a = _segment_sum(lam**2 / var, llm_idx, n_llms, np)
    q = _segment_sum(lam * (y - intercept[..., bench_idx]) / var, llm_idx, n_llms, np)
    prior_var = pop_sd[..., population_idx] ** 2
    post_var = 1.0 / (1.0 / prior_var + a)
    mean = post_var * (pop_mean[..., population_idx] / prior_var + q)
    return mean, np.sqrt(post_var)


def _segment_sum(values, idx, n, xp):
    """Sum the last axis of ``values`` into ``n`` bins given by ``idx``."""
    if xp is np:
        from scipy import sparse

        lead = values.shape[:-1]
        flat = values.reshape(-1, values.shape[-1])
        cells = flat.shape[-1]
        to_group = sparse.csr_matrix((np.ones(cells), (np.arange(cells), idx)), shape=(cells, n))
        return np.asarray(flat @ to_group).reshape(*lead, n)
    return pt.inc_subtensor(pt.zeros(n)[idx], values)


def _centered(choice: str, data: ModelData, degrees_of_freedom: int) -> bool:
    """Whether to centre a pooled group of loadings (see ``ModelConfig``)."""
    if choice != "auto":
        return choice == "centered"
    per_benchmark = len(data.y) / len(data.coords["benchmark"])
    return (
        per_benchmark >= CENTER_FROM_OBSERVATIONS
        or degrees_of_freedom >= CENTER_FROM_DEGREES_OF_FREEDOM
    )


def build_model(study: BenchmarkStudy, config: ModelConfig | None = None) -> pm.Model:
    """Build the latent-factor model for a study (no sampling).

    Parameters
    ----------
    study : BenchmarkStudy
    config : ModelConfig, optional

    Returns
    -------
    pymc.Model
        Dims ``llm``, ``benchmark``, ``cell``, ``population``, ``area``,
        ``capability_benchmark``, ``safety_benchmark`` (and ``factor``,
        ``factor_benchmark`` with area factors). Deterministics ``capability`` (theta),
        ``loading`` (lambda), ``residual_sd`` (sigma) and ``rho`` (capability correlation
        of every benchmark on the standardised scale).
    """
    config = config or ModelConfig()
    data = prepare_data(study, config)
    return build_model_from_data(data, config)


def build_model_from_data(data: ModelData, config: ModelConfig) -> pm.Model:
    """Build the model from already prepared :class:`ModelData`."""
    s = config.prior_scale
    n_bench = len(data.coords["benchmark"])
    bench_pos = {k: i for i, k in enumerate(data.coords["benchmark"])}
    cap_pos = np.array([bench_pos[k] for k in data.capability_keys], dtype=np.int64)
    safe_pos = np.array([bench_pos[k] for k in data.safety_keys], dtype=np.int64)
    n_pop = len(data.populations)

    with pm.Model(coords=data.coords) as model:
        llm_idx = pm.Data("llm_idx", data.llm_idx, dims="cell")
        bench_idx = pm.Data("benchmark_idx", data.benchmark_idx, dims="cell")
        pop_idx = pm.Data("population_idx", data.population_idx, dims="llm")

        marginal = config.capability == "marginal"
        if n_pop > 1:
            pop_mean = pm.ZeroSumNormal("population_mean", sigma=1.0, dims="population")
            pop_log_sd = pm.ZeroSumNormal("population_log_sd", sigma=0.5, dims="population")
            pop_sd = pt.exp(pop_log_sd)
        else:
            pop_mean, pop_sd = pt.zeros(1), pt.ones(1)
        if not marginal:
            # Capability: zero-sum within each population (an orthonormal, O(n) map from
            # n - P free coordinates), so population means are separate from benchmark
            # intercepts and no direction of the sampler's space is left to the prior alone.
            w = pm.Normal("capability_z", 0.0, 1.0, dims="capability_basis")
            z = zero_sum_by_group(w, data.population_idx, n_pop, xp=pt)
            # Unit spread within each population: the scale of theta is fixed exactly
            # rather than by the prior, which removes the slow theta-scale / loading-scale
            # ridge.
            sq = pt.inc_subtensor(pt.zeros(n_pop)[pop_idx], z**2)
            counts = np.bincount(data.population_idx, minlength=n_pop).astype(float)
            # (The tiny floor keeps the default start z = 0 finite; samplers start from
            # initial_point() instead.)
            z = z / pt.sqrt(sq / counts + 1e-12)[pop_idx]
            theta = pop_mean[pop_idx] + pop_sd[pop_idx] * z
            theta = pm.Deterministic("capability", theta, dims="llm")

        # Capability loadings: positive, pooled on the log scale.
        cap_log_mean = pm.Normal("capability_loading_log_mean", np.log(0.8), 0.5 * s)
        cap_log_sd = pm.HalfNormal("capability_loading_log_sd", 0.5 * s)
        if not _centered(config.capability_loadings, data, len(data.capability_keys) - 1):
            u = pm.Normal("capability_loading_z", 0.0, 1.0, dims="capability_benchmark")
            cap_log = cap_log_mean + cap_log_sd * u
        else:
            cap_log = pm.Normal(
                "capability_loading_log", cap_log_mean, cap_log_sd, dims="capability_benchmark"
            )
        cap_loading = pt.exp(cap_log)

        # Safety loadings: free in sign, pooled within the safety area (centred).
        loading = pt.zeros(n_bench)
        loading = pt.set_subtensor(loading[cap_pos], cap_loading)
        if data.safety_keys:
            area_mean = pm.Normal("area_loading_mean", 0.0, 0.7 * s, dims="area")
            safety_sd = pm.HalfNormal("safety_loading_sd", 0.5 * s)
            if _centered(config.safety_loadings, data, len(data.safety_keys) - len(data.areas)):
                safety_loading = pm.Normal(
                    "safety_loading",
                    area_mean[data.safety_area_idx],
                    safety_sd,
                    dims="safety_benchmark",
                )
            else:
                v = pm.Normal("safety_loading_z", 0.0, 1.0, dims="safety_benchmark")
                safety_loading = pm.Deterministic(
                    "safety_loading",
                    area_mean[data.safety_area_idx] + safety_sd * v,
                    dims="safety_benchmark",
                )
            loading = pt.set_subtensor(loading[safe_pos], safety_loading)
        loading = pm.Deterministic("loading", loading, dims="benchmark")

        # Residual scales: log-normal, pooled (centred).
        res_log_mean = pm.Normal("residual_log_mean", np.log(0.5), 0.5 * s)
        res_log_sd = pm.HalfNormal("residual_log_sd", 0.5 * s)
        log_sigma = pm.Normal("log_residual_sd", res_log_mean, res_log_sd, dims="benchmark")
        sigma = pm.Deterministic("residual_sd", pt.exp(log_sigma), dims="benchmark")
        intercept = pm.Normal("intercept", 0.0, 1.0, dims="benchmark")

        if marginal:
            pm.Potential(
                "score_marginal",
                marginal_loglik_by_llm(
                    data.y,
                    data.llm_idx,
                    data.benchmark_idx,
                    data.population_idx,
                    intercept,
                    loading,
                    sigma,
                    pop_mean,
                    pop_sd,
                    xp=pt,
                ).sum(),
            )
            other_var = sigma**2
        else:
            mu = intercept[bench_idx] + loading[bench_idx] * theta[llm_idx]
            other_var = sigma**2
            if data.factor_keys:
                fpos = np.array([bench_pos[k] for k in data.factor_keys], dtype=np.int64)
                eta = pm.Normal("area_factor", 0.0, 1.0, dims=("llm", "factor"))
                free = ~data.factor_anchor
                gamma = pt.zeros(len(data.factor_keys))
                anchor_loading = pm.HalfNormal(
                    "factor_anchor_loading", 0.7 * s, shape=int(data.factor_anchor.sum())
                )
                gamma = pt.set_subtensor(gamma[np.flatnonzero(data.factor_anchor)], anchor_loading)
                if free.any():
                    free_loading = pm.Normal(
                        "factor_free_loading", 0.0, 0.7 * s, shape=int(free.sum())
                    )
                    gamma = pt.set_subtensor(gamma[np.flatnonzero(free)], free_loading)
                gamma = pm.Deterministic("factor_loading", gamma, dims="factor_benchmark")
                # Per benchmark: loading on its area factor (0 outside factor areas).
                gamma_b = pt.set_subtensor(pt.zeros(n_bench)[fpos], gamma)
                factor_of_b = np.zeros(n_bench, dtype=np.int64)
                factor_of_b[fpos] = data.factor_idx
                mu = mu + gamma_b[bench_idx] * eta[llm_idx, factor_of_b[data.benchmark_idx]]
                other_var = other_var + gamma_b**2
        pm.Deterministic("rho", loading / pt.sqrt(loading**2 + other_var), dims="benchmark")
        if not marginal:
            pm.Normal("score", mu, sigma[bench_idx], observed=data.y, dims="cell")
    return model
