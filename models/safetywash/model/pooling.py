"""How each pooled group is parameterised: centred or non-centred (no PyMC here).

A pooled group (the capability loadings on the log scale; the safety loadings within their
areas; the log benchmark-specific SDs) can be written centred, ``x_b ~ Normal(mean, sd)``,
or non-centred, ``x_b = mean + sd * z_b``. Centred has a funnel when ``sd`` is comparable with the
uncertainty of each member, so that its posterior reaches towards 0; non-centred has a
ridge between ``sd`` and the offsets when the data pin every member far more tightly than
the group spreads. Which one suits a group is read off the data
(:func:`informativeness`): how far the members' least-squares estimates surely spread,
over their typical standard error. A capability group that is not centred, and the log
specific SDs, are whitened (:func:`whitening`): each member is sampled as its standardised
offset from where its own least-squares estimate and the group put it, whatever the
group's spread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from safetywash.model.config import CENTER_FROM_INFORMATIVENESS, ModelConfig

if TYPE_CHECKING:
    from safetywash.model.data import ModelData

#: Slopes are floored here before taking logs (a capability benchmark's loading is positive).
MIN_SLOPE = 0.05


@dataclass(frozen=True)
class Pooling:
    """Which pooled groups the model centres (see ``ModelConfig.capability_loadings``).

    Attributes
    ----------
    capability, safety : bool
        Centre the capability loadings / the safety loadings.
    area : bool
        With non-centred safety loadings, centre each area's average loading (``"auto"``
        only). The average is what the data see of an area, and its prior SD,
        ``sqrt(area_loading_sd**2 + safety_loading_sd**2 / n)``, is kept away from 0 by
        the boundary-avoiding priors of both spreads, so centring it leaves no funnel.
        (Simulated studies with areas of 1 to 4 benchmarks: non-centred averages left
        ``safety_loading_mean`` at bulk ESS 276-322 or R-hat 1.012-1.026 on 4 of 12
        fits; centred, all 12 trusted.)
    """

    capability: bool
    safety: bool
    area: bool = False
    #: Centre the log benchmark-specific SDs (``residuals="centered"``; else non-centred,
    #: ``log sd = mean + spread * z``, or whitened under ``"auto"``).
    residual: bool = True
    #: With non-centred capability loadings (``"auto"`` only): every member's least-squares
    #: log loading and its standard error, by which it is whitened (:func:`whitening`);
    #: empty: plain non-centred.
    capability_estimates: tuple[float, ...] = ()
    capability_errors: tuple[float, ...] = ()
    #: With residuals left to ``"auto"``: every benchmark's least-squares log specific SD
    #: and its standard error (:func:`specific_estimates`), by which the log specific SDs
    #: are whitened; empty: centred or plain non-centred as ``residual`` says.
    residual_estimates: tuple[float, ...] = ()
    residual_errors: tuple[float, ...] = ()

    def structure(self) -> str:
        """What a built model's graph depends on: everything but the values of the
        whitening estimates and errors (data containers)."""
        whitened = (bool(self.capability_estimates), bool(self.residual_estimates))
        plain = replace(
            self,
            capability_estimates=(),
            capability_errors=(),
            residual_estimates=(),
            residual_errors=(),
        )
        return f"{plain!r} whitened={whitened}"


#: Standard errors are clipped to this range before whitening: a member with under 3 scores
#: (infinite error) is then plain non-centred, and the arithmetic stays finite.
WHITENING_ERRORS = (1e-6, 1e3)


def whitening(mean, sd, estimate, error):
    """Where a pooled member ``x ~ Normal(mean, sd)`` sits given its estimate, and how
    far it may stray: ``(centre, scale)``, the mean and SD of ``x`` given ``mean``, ``sd``
    and a measurement ``estimate ~ Normal(x, error)``.

    A member is sampled as ``z`` with ``x = centre + scale * z`` (and the log density
    ``log Normal(x; mean, sd) + log scale``, the same model): where the data pin ``x`` far
    more tightly than the group spreads, ``z`` is its data's offset (centred); where the
    group is far tighter, its offset from the group (non-centred); in between, each in
    proportion, at every value of ``sd`` the sampler visits rather than at one value read
    off the data (which a group of a few alike members, whose spread ranges over an
    order of magnitude, cannot give). Plain arithmetic, so numpy arrays and PyTensor
    variables alike.
    """
    total = sd**2 + error**2
    centre = (sd**2 * estimate + error**2 * mean) / total
    return centre, sd * error / total**0.5


def start_capability(data: ModelData) -> np.ndarray:
    """The data-driven capability estimate, centred within each population."""
    theta = data.initial_capability.copy()
    for p in range(len(data.populations)):
        members = data.population_idx == p
        theta[members] = theta[members] - theta[members].mean()
    return theta


def loading_estimates(data: ModelData, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope of every benchmark's scores on a capability estimate, and its
    standard error (slope 0 and an infinite error for a benchmark with under 3 scores)."""
    slope, se, _, _ = _least_squares(data, theta)
    return slope, se


def specific_estimates(data: ModelData, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log benchmark-specific SD of every benchmark (its least-squares residual variance
    less any known measurement noise) and its standard error, clipped to
    :data:`WHITENING_ERRORS` (the largest where the residual is no larger than the noise,
    or the benchmark has under 3 scores)."""
    _, _, resid, n = _least_squares(data, theta)
    specific = resid - np.nan_to_num(data.noise_variance)
    usable = (n > 2) & (specific > 0)
    # Delta method: d log sqrt(resid - noise) = d log sqrt(resid) * resid / (resid - noise).
    inflation = resid / np.where(usable, specific, 1.0)
    error = np.where(usable, inflation / np.sqrt(2.0 * np.clip(n - 2, 1, None)), np.inf)
    estimate = np.where(usable, 0.5 * np.log(np.where(usable, specific, 1.0)), 0.0)
    return estimate, np.clip(error, *WHITENING_ERRORS)


def _least_squares(data: ModelData, theta: np.ndarray):
    """Per benchmark (in coordinate order): slope, its standard error, residual variance
    and number of scores."""
    b, i = data.benchmark_idx, data.llm_idx
    frame = pd.DataFrame({"b": b, "y": data.y, "t": theta[i]})
    frame["ty"], frame["tt"], frame["yy"] = frame["t"] * frame["y"], frame["t"] ** 2, data.y**2
    sums = frame.groupby("b")[["t", "y", "ty", "tt", "yy"]].sum()
    n = frame.groupby("b").size()
    cov = sums["ty"] / n - sums["t"] * sums["y"] / n**2
    var = (sums["tt"] / n - (sums["t"] / n) ** 2).clip(lower=1e-6)
    slope = cov / var
    fitted = n > 2
    resid = (sums["yy"] / n - (sums["y"] / n) ** 2 - slope * cov).clip(lower=0.0)
    resid = resid * n / (n - 2).where(fitted, 1)
    se = np.sqrt(resid / (n * var)).where(fitted, np.inf)
    every = range(len(data.coords["benchmark"]))
    return (
        slope.reindex(every).fillna(0.0).to_numpy(),
        se.reindex(every).fillna(np.inf).to_numpy(),
        resid.reindex(every).fillna(0.0).to_numpy(),
        n.reindex(every).fillna(0).to_numpy(),
    )


def informativeness(estimate: np.ndarray, se: np.ndarray, group: np.ndarray) -> float:
    """How far a pooled group's members surely differ, in units of their typical standard
    error.

    The spread of the true values around their group means is estimated by
    DerSimonian and Laird's method of moments (each member weighted by its precision, so
    poorly measured members count little), taken at the low end of its plausible range
    (times sqrt(chi2_dof(0.05) / dof), dof = members - groups: few members leave the
    spread poorly determined) and divided by the median standard error. 0 without a
    degree of freedom.

    Well above 1, each member is pinned down by its data and the pooled SD stays away from
    0: the group is best centred. Below, the pooled SD can approach the members' own
    uncertainty and the group is best non-centred.
    """
    spread, dof, se = group_spread(estimate, se, group)
    if dof < 1:
        return 0.0
    low = spread * np.sqrt(stats.chi2.ppf(0.05, dof) / dof)
    return float(low / np.median(se))


def group_spread(estimate: np.ndarray, se: np.ndarray, group: np.ndarray):
    """DerSimonian and Laird's estimate of the spread of true values around their group
    means, its degrees of freedom and the finite standard errors it used."""
    keep = np.isfinite(se) & (se > 0)
    estimate, se, group = estimate[keep], se[keep], group[keep]
    sizes = np.bincount(group) if len(group) else np.zeros(0, dtype=np.int64)
    dof = len(group) - np.count_nonzero(sizes)
    if dof < 1:
        return 0.0, dof, se
    w = 1.0 / se**2
    wsum = np.bincount(group, weights=w)
    means = np.bincount(group, weights=w * estimate) / np.where(wsum > 0, wsum, 1.0)
    q = float(np.sum(w * (estimate - means[group]) ** 2))
    used = sizes > 0
    scale = float(w.sum() - np.sum(np.bincount(group, weights=w**2)[used] / wsum[used]))
    return float(np.sqrt(max(q - dof, 0.0) / scale)), dof, se


def pooling(data: ModelData, config: ModelConfig | None = None) -> Pooling:
    """The parameterisation of every pooled group for a study and a config."""
    config = config or ModelConfig()
    theta = start_capability(data)
    slope, se = loading_estimates(data, theta)
    pos = {k: j for j, k in enumerate(data.coords["benchmark"])}
    cap = np.array([pos[k] for k in data.capability_keys], dtype=np.int64)
    safe = np.array([pos[k] for k in data.safety_keys], dtype=np.int64)
    floor = np.clip(slope[cap], MIN_SLOPE, None)
    ratio = {
        "capability": informativeness(np.log(floor), se[cap] / floor, np.zeros_like(cap)),
        "safety": informativeness(slope[safe], se[safe], data.safety_area_idx),
    }
    choice = {"capability": config.capability_loadings, "safety": config.safety_loadings}
    centred = {
        name: c == "centered" if c != "auto" else ratio[name] >= CENTER_FROM_INFORMATIVENESS
        for name, c in choice.items()
    }
    centred["residual"] = config.residuals == "centered"
    area = config.safety_loadings == "auto" and not centred["safety"]
    whitened: dict[str, tuple[float, ...]] = {}
    if config.capability_loadings == "auto" and not centred["capability"]:
        # Whitened (whitening): each member between centred and non-centred as its error
        # against the group's spread calls for, at every spread the sampler visits. Between
        # the two regimes neither form suits every member (Epoch's benchmark stitching: 36
        # capability benchmarks scored by 6 to 100 LLMs), and a group of a few alike
        # members has a spread whose posterior runs across their errors (the README's own
        # study, 13 LLMs and 3 quizzes: spread 0.03 to 0.4 against errors of 0.06). One
        # weight per member (partial non-centring at the spread's posterior median) left a
        # funnel at the small spreads there: first attempts untrusted on 8 of 8 seeds,
        # divergences at capability_loading_log_sd; whitened, 1 of 8 (one divergence), and
        # Epoch's first attempts on seeds 0 and 1 (one divergence each) trusted.
        error = np.clip(se[cap] / floor, *WHITENING_ERRORS)
        whitened["capability_estimates"] = tuple(float(x) for x in np.log(floor))
        whitened["capability_errors"] = tuple(float(e) for e in error)
    if config.residuals == "auto":
        # Whitened too: the log specific SDs of a sparse table spread over an order of
        # magnitude while each is measured from a handful of scores, and their
        # least-squares estimates overstate the spread when capability is poorly measured,
        # so one form chosen for the group was wrong for some of its members (sparse SBC,
        # 62% missing: first attempts slow on residual_log_sd in 9 of 100 rounds, centred;
        # whitened, none, and 19 first attempts untrusted instead of 32).
        estimate, error = specific_estimates(data, theta)
        whitened["residual_estimates"] = tuple(float(x) for x in estimate)
        whitened["residual_errors"] = tuple(float(e) for e in error)
    return Pooling(**centred, area=area, **whitened)


#: ``capability="auto"`` integrates capability out from this many LLMs, when they also
#: outnumber benchmarks this many times (:func:`capability_mode`).
MARGINAL_FROM_LLMS = 100
MARGINAL_FROM_LLMS_PER_BENCHMARK = 2.0


def capability_mode(data: ModelData, config: ModelConfig | None = None) -> str:
    """``"sampled"`` or ``"marginal"``: how the model treats capability for this study.

    An explicit ``config.capability`` is kept. Under ``"auto"`` a one-factor model of at
    least :data:`MARGINAL_FROM_LLMS` LLMs that outnumber its benchmarks at least
    :data:`MARGINAL_FROM_LLMS_PER_BENCHMARK` times integrates capability out. There the
    sampled model spends most of its coordinates on
    per-LLM capabilities that are each tied to every benchmark's loading and residual SD,
    and those joint moves mix slowly without a single divergence (Epoch's benchmark
    stitching, 179 LLMs and 38 benchmarks: R-hat 1.012, bulk ESS 384-517 on the capability
    loading spread on 3 of 4 seeds; Open LLM Leaderboard v1, 1,755 LLMs and 6 benchmarks:
    bulk ESS 159 on ARC's specific SD). Integrated out, those coordinates are gone and
    capability is drawn exactly afterwards. Where benchmarks are many (Safetywashing: 26
    LLMs, 165 benchmarks) the sampled model is the faster one, and it is kept for small
    tables (whose marginal fits take nutpie's slower low-rank adaptation: Safetywashing chat
    82-89 s of sampling instead of about 5 s, and R-hat 1.015 on seed 1 of 4).
    """
    config = config or ModelConfig()
    if config.capability != "auto":
        return config.capability
    n_llms, n_benchmarks = len(data.coords["llm"]), len(data.coords["benchmark"])
    few = n_llms < max(MARGINAL_FROM_LLMS, MARGINAL_FROM_LLMS_PER_BENCHMARK * n_benchmarks)
    if data.factor_keys or few:
        return "sampled"
    return "marginal"


def resolved_config(data: ModelData, config: ModelConfig | None = None) -> ModelConfig:
    """``config`` with ``capability`` set to the mode :func:`capability_mode` picks."""
    config = config or ModelConfig()
    return replace(config, capability=capability_mode(data, config))
