"""The choices that define the model, and its priors as data (no PyMC here).

:class:`Priors` holds every prior hyperparameter of the latent-factor model with its default;
:class:`ModelConfig` carries one (with the other model choices) into the builder
(:mod:`safetywash.model.build`), the simulator (:mod:`safetywash.model.simulate`) and every
saved fit (``model_config`` attribute, :meth:`ModelConfig.to_json`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

TRANSFORMS = ("auto", "standardize", "logit")
PARAMETERISATIONS = ("auto", "noncentered", "centered")
CAPABILITY_MODES = ("auto", "sampled", "marginal")
LEVELS = ("aggregate", "parts")
#: Most capability dimensions a model may have (the marginal likelihood is written out for
#: up to three; more are rarely identified by the handful of capability benchmarks of a
#: safety study).
MAX_CAPABILITY_DIMS = 3
CENTER_FROM_INFORMATIVENESS = 1.5
MIN_BENCHMARKS_PER_FACTOR = 3


@dataclass(frozen=True)
class Priors:
    """Prior hyperparameters of the latent-factor model, on the model (standardised) scale.

    Every benchmark's scores have mean 0 and SD 1 after the score transform, so the defaults
    are set for unit-scale data: a typical benchmark has a capability loading around 0.8
    and a residual SD around 0.5. Names follow the model's variables; ``*_loc`` is a prior
    mean, ``*_scale`` / ``*_sd`` a prior scale. The fields listed in :attr:`SCALED` are
    multiplied by ``ModelConfig.prior_scale`` (:meth:`scaled`).

    Attributes
    ----------
    population_mean_sd : float
        ``population_mean ~ ZeroSumNormal(sigma)`` over populations (several only).
    population_log_sd_sd : float
        ``population_log_sd ~ ZeroSumNormal(sigma)`` over populations (several only).
    capability_loading_log_mean_loc, capability_loading_log_mean_scale : float
        ``capability_loading_log_mean ~ Normal(loc, scale)``: mean log capability loading of
        the capability benchmarks (default: loadings around 0.8).
    capability_loading_log_sd_scale : float
        ``capability_loading_log_sd ~ Gamma(shape=2, scale)``: their spread on the log
        scale (boundary-avoiding, see ``safety_loading_sd_scale``). Capability benchmarks
        differ in how well they measure capability; with the half-normal of earlier
        versions, non-centred chains could dive to spreads near 0.005 and linger there
        (Safetywashing chat with a calibration factor, one chain of 4: R-hat 1.012).
    safety_loading_mean_scale : float
        ``safety_loading_mean ~ Normal(0, scale)``: the mean capability loading of the safety
        areas (one level above the area means).
    area_loading_sd_scale : float
        ``area_loading_sd ~ Gamma(shape=2, scale)``: spread of the area means around it,
        ``area_loading_mean ~ Normal(safety_loading_mean, area_loading_sd)`` per safety area.
        An area with one or two benchmarks is thus pulled towards the other areas rather than
        towards 0. The defaults keep the marginal prior of an area mean as wide as the single
        ``Normal(0, 0.7)`` of earlier versions: variance 0.5**2 + E[sd**2] = 0.25 + 6 * 0.2**2.
    safety_loading_sd_scale : float
        ``safety_loading_sd ~ Gamma(shape=2, scale)``: spread of safety loadings in an area.

        Both spreads of the safety loadings have shape 2, a prior whose density vanishes at
        0 (boundary-avoiding, Chung et al. 2013, for a group SD estimated from few groups):
        safety areas, and benchmarks within an area, are known to differ in how they relate
        to capability, and with at most eight areas, often of two or three benchmarks, a
        prior with its mode at 0 (the half-normal of earlier versions) let chains linger at
        spreads near 0.01, where they mix slowly (Safetywashing chat: one chain of 16 seeds
        spent 5% of its draws below 0.03; simulated studies with areas of two benchmarks:
        R-hat up to 1.03). Scale 0.2 keeps E[sd] = 0.4 and E[sd**2] near the half-normal's.
    residual_log_mean_loc, residual_log_mean_scale : float
        ``residual_log_mean ~ Normal(loc, scale)``: mean log benchmark-specific SD
        (default: around 0.5), ``log specific_sd ~ Normal(residual_log_mean,
        residual_log_sd)``. A benchmark's residual SD is ``sqrt(noise_sd**2 +
        specific_sd**2)`` where its measurement noise is known (a proportion of
        ``n_items`` items: :meth:`safetywash.model.transform.ScoreTransform.noise_variance`)
        and ``specific_sd`` alone elsewhere (noise and specific variance are not separable
        there, so no prior splits them).
    residual_log_sd_scale : float
        ``residual_log_sd ~ Gamma(shape=2, scale)``: spread of the log benchmark-specific
        SDs. Boundary-avoiding, as the loading spreads (a half-normal let it reach 0,
        a funnel for the centred log SDs: 44 of 100 SBC fits untrusted, most at this
        spread); scale 0.2 keeps E[sd] = 0.4 and E[sd**2] near the old HalfNormal(0.5)'s.
    intercept_sd : float
        ``intercept ~ Normal(0, sd)`` per benchmark.
    factor_loading_scale : float
        Area-factor loadings: ``HalfNormal(scale)`` for each factor's anchor benchmark,
        ``Normal(0, scale)`` for the others.
    axis_loading_scale : float
        With ``capability_dims`` K > 1: every benchmark's loading on each of the K - 1
        further capability axes is ``Normal(0, scale)`` (for capability benchmarks, before
        the projection that keeps the general factor the principal one,
        :mod:`safetywash.model.axes`).
    """

    population_mean_sd: float = 1.0
    population_log_sd_sd: float = 0.5
    capability_loading_log_mean_loc: float = float(np.log(0.8))
    capability_loading_log_mean_scale: float = 0.5
    capability_loading_log_sd_scale: float = 0.2
    safety_loading_mean_scale: float = 0.5
    area_loading_sd_scale: float = 0.2
    safety_loading_sd_scale: float = 0.2
    residual_log_mean_loc: float = float(np.log(0.5))
    residual_log_mean_scale: float = 0.5
    residual_log_sd_scale: float = 0.2
    intercept_sd: float = 1.0
    factor_loading_scale: float = 0.7
    axis_loading_scale: float = 0.5

    #: Hyperprior scales on loadings and residuals that ``prior_scale`` multiplies.
    SCALED = (
        "capability_loading_log_mean_scale",
        "capability_loading_log_sd_scale",
        "safety_loading_mean_scale",
        "area_loading_sd_scale",
        "safety_loading_sd_scale",
        "residual_log_mean_scale",
        "residual_log_sd_scale",
        "factor_loading_scale",
        "axis_loading_scale",
    )

    #: Fields of earlier versions, ignored when a saved configuration is read
    #: (``area_loading_mean_scale``: the one prior of the area means before they were pooled;
    #: ``noise_sd_scale``: a prior on unknown measurement noise, dropped as unidentified).
    RETIRED = ("area_loading_mean_scale", "noise_sd_scale")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = float(getattr(self, f.name))
            if not np.isfinite(value) or (not f.name.endswith("_loc") and value <= 0):
                raise ValueError(f"prior {f.name} must be a positive number, not {value}")
            object.__setattr__(self, f.name, value)

    def scaled(self, factor: float) -> Priors:
        """These priors with the :attr:`SCALED` scales multiplied by ``factor``."""
        return dataclasses.replace(self, **{k: getattr(self, k) * factor for k in self.SCALED})


@dataclass(frozen=True)
class ModelConfig:
    """Choices that define the model (saved with every fit).

    Parameters
    ----------
    transform : {"auto", "standardize", "logit"}
        Per-benchmark scale of the oriented scores
        (:class:`safetywash.model.transform.ScoreTransform`). The logistic treatment maps a
        bounded benchmark to the logit of its share of the range above the chance floor (or
        the lower bound) before standardising. ``"auto"`` (default) gives it to the
        proportion scores that crowd a bound (floor or ceiling effects,
        :func:`safetywash.model.transform.crowds_a_bound`) and standardises the others;
        ``"logit"`` gives it to every bounded benchmark, ``"standardize"`` to none. ``rho``
        is defined on the model scale: for a benchmark given the logistic treatment, the
        capability correlation of its standardised logit.
    factors : tuple of str
        Safety areas that get a factor of their own beside capability (each needs at least
        :data:`MIN_BENCHMARKS_PER_FACTOR` benchmarks). Empty: one capability factor.
    level : {"aggregate", "parts"}
        Fit aggregates (default) or their parts; never both, so no score counts twice.
    capability_loadings, safety_loadings, residuals : {"auto", "noncentered", "centered"}
        Parameterisation of the pooled loadings and of the pooled log benchmark-specific
        SDs (:mod:`safetywash.model.pooling`).
        ``"auto"`` centres a group when the low end of its members' spread (estimated from
        their least-squares slopes) is at least :data:`CENTER_FROM_INFORMATIVENESS` times
        their typical standard error: each member is pinned down by its data and the
        pooled SD stays away from 0. Otherwise the group is non-centred. On Safetywashing
        chat (26 LLMs) the safety loadings score 1.96 and are centred; the capability
        loadings, which load alike (their log-scale spread is within the error of one
        log loading), score 0 and are not: centring them put a funnel at a pooled SD near
        0.02 (divergences on 5 of 16 seeds). A capability group not centred under
        ``"auto"`` is whitened, member by member: each is sampled as its offset from where
        its own least-squares estimate and the group put it, so the more tightly its data
        pin it down against the group's current spread, the more it is centred
        (:func:`safetywash.model.pooling.whitening`); ``"noncentered"`` is plain
        non-centred. The log specific SDs are whitened under ``"auto"`` whatever their
        spread (their least-squares estimates overstate it when capability is poorly
        measured, so a group-wide choice read off them misled sparse tables).
    prior_scale : float
        Multiplies the scales of the hyperpriors on loadings and residuals
        (:attr:`Priors.SCALED`; prior sensitivity: 0.5 narrower, 2 wider).
    capability : {"auto", "sampled", "marginal"}
        ``"auto"`` (default): marginal for a one-factor model of at least 100 LLMs that
        outnumber its benchmarks at least twice, sampled otherwise
        (:func:`safetywash.model.pooling.capability_mode`; a fit records the mode used).
        ``"sampled"``: NUTS samples every LLM's capability (normalised to zero mean and
        unit spread within each population). ``"marginal"``: capability is integrated out
        analytically (the likelihood is Gaussian, so each LLM's scores are jointly normal
        with a rank-one-plus-diagonal covariance); NUTS samples only benchmark and
        population parameters and :func:`safetywash.inference.sampling.fit` then draws
        capability exactly from its conditional normal posterior. Here capability has a
        N(mean, sd) population distribution (sd = 1 for one population) rather than a
        normalised sample. Exact, and far faster for thousands of LLMs; one-factor models
        only.
    capability_dims : int
        Number of capability dimensions K (1 to :data:`MAX_CAPABILITY_DIMS`; default 1).
        With K > 1 every benchmark also loads on K - 1 further capability axes beside the
        general factor (:mod:`safetywash.model.axes`): ``rho`` stays the correlation with
        the general factor, and ``subspace_r`` is the multiple correlation with the whole
        capability subspace. One-factor models without area factors only.
    priors : Priors
        The prior hyperparameters (defaults documented on :class:`Priors`); a mapping of
        field values is accepted.
    """

    transform: str = "auto"
    factors: tuple[str, ...] = ()
    level: str = "aggregate"
    capability_loadings: str = "auto"
    safety_loadings: str = "auto"
    residuals: str = "auto"
    prior_scale: float = 1.0
    capability: str = "auto"
    capability_dims: int = 1
    priors: Priors = field(default_factory=Priors)

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, not {self.transform!r}")
        if self.level not in LEVELS:
            raise ValueError(f"level must be 'aggregate' or 'parts', not {self.level!r}")
        for name in ("capability_loadings", "safety_loadings", "residuals"):
            if getattr(self, name) not in PARAMETERISATIONS:
                raise ValueError(f"{name} must be one of {PARAMETERISATIONS}")
        if not self.prior_scale > 0:
            raise ValueError("prior_scale must be positive")
        if self.capability not in CAPABILITY_MODES:
            raise ValueError(f"capability must be one of {CAPABILITY_MODES}")
        if self.capability == "marginal" and self.factors:
            raise ValueError("capability='marginal' supports the one-factor model only")
        dims = self.capability_dims
        if isinstance(dims, bool) or int(dims) != dims or not 1 <= dims <= MAX_CAPABILITY_DIMS:
            raise ValueError(
                f"capability_dims must be an integer from 1 to {MAX_CAPABILITY_DIMS}, not {dims!r}"
            )
        object.__setattr__(self, "capability_dims", int(dims))
        if dims > 1 and self.factors:
            raise ValueError("capability_dims > 1 cannot be combined with area factors (yet)")
        object.__setattr__(self, "factors", tuple(self.factors))
        if isinstance(self.priors, Mapping):
            object.__setattr__(self, "priors", Priors(**self.priors))

    @property
    def scaled_priors(self) -> Priors:
        """The priors the model uses: :attr:`priors` scaled by :attr:`prior_scale`."""
        return self.priors.scaled(self.prior_scale)

    def to_json(self) -> str:
        """The configuration as a JSON string (priors as a nested object)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Inverse of :meth:`to_json` (a config without ``priors`` gets the defaults)."""
        values = json.loads(text)
        values["factors"] = tuple(values.get("factors", ()))
        priors = values.get("priors", {})
        values["priors"] = Priors(**{k: v for k, v in priors.items() if k not in Priors.RETIRED})
        return cls(**values)
