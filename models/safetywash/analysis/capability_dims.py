"""Choosing the number of capability dimensions K by expected log predictive density.

Every candidate K (1 up to :data:`~safetywash.model.config.MAX_CAPABILITY_DIMS`, as many as
the study's capability benchmarks identify; only 1 with area factors) is fitted to the
whole study. Its predictive density is then estimated by PSIS-LOO on the stored
pointwise log-likelihood (per score; per LLM where capability is integrated out) when
every candidate's Pareto k stay at or below :data:`MAX_PARETO_K`, and otherwise by
:data:`FOLDS`-fold cross-validation: the scores are split into folds of equal size
(:func:`~safetywash.analysis.cellsplit.kfold_cells`; cells whose benchmark or LLM could
not spare them stay in training),
each candidate is refitted to every fold's training cells, one compiled model per
candidate serving all its folds (:class:`safetywash.inference.compiled.ModelCache`: the
folds differ only in which cells they hold), and the held-out scores' log predictive
densities are summed.

The choice (:func:`pick_dims`) is the smallest K whose ELPD is within one standard error
of the best (the one-standard-error rule: a dimension must earn its place), the SE being
that of the paired pointwise difference. Only a K whose fit of the whole study passed the
diagnostics (after the retry) may be chosen, or be the best it is measured against: a
chosen fit must be one to trust, and an unconverged fit's ELPD is not one to rely on (when
no K passed, every K may be chosen and the record says so). The choice and every
candidate's figures are recorded in the chosen fit (:data:`DIMS_CHOICE_ATTR`, read by
:func:`dims_choice`).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Sequence

import arviz as az
import numpy as np
from scipy.special import logsumexp

from safetywash.analysis.cellsplit import kfold_cells
from safetywash.analysis.dims_choice import DIMS_CHOICE_ATTR
from safetywash.analysis.holdout import model_scale_values, training_study
from safetywash.analysis.intervals import SAMPLE_DIMS
from safetywash.analysis.loo import relative_efficiency
from safetywash.analysis.predictive import cell_parameters
from safetywash.analysis.retry import fit_with_retry
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.compiled import ModelCache
from safetywash.inference.fitfile import diagnostics_of
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.axes import ledermann_minimum
from safetywash.model.config import MAX_CAPABILITY_DIMS, ModelConfig
from safetywash.model.likelihood import log_density

FOLDS = 5
MAX_PARETO_K = 0.7
RULE = "smallest K within one SE of the best ELPD, among the K whose fit passed the diagnostics"
RULE_NONE_TRUSTED = "smallest K within one SE of the best ELPD; no K's fit passed the diagnostics"


def _n_capability(study: BenchmarkStudy, config: ModelConfig) -> int:
    """Capability benchmarks of the study at the config's level."""
    return int((study.select_level(config.level).benchmarks["role"] == "capability").sum())


def candidate_dims(study: BenchmarkStudy, config: ModelConfig) -> list[int]:
    """The K a study can be fitted with: 1, and with no area factors every K up to the
    maximum that its capability benchmarks identify."""
    n_capability = _n_capability(study, config)
    if config.factors:
        return [1]
    dims = range(1, MAX_CAPABILITY_DIMS + 1)
    return [k for k in dims if k == 1 or n_capability >= ledermann_minimum(k)]


def loo_pointwise(dt) -> tuple[np.ndarray, float]:
    """PSIS-LOO pointwise ELPD of a fit's stored log-likelihood and its largest Pareto k
    (the caller judges the Pareto k: ArviZ's warning about them is silenced)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Estimated shape parameter of Pareto", UserWarning)
        loo = az.loo(dt, pointwise=True, reff=relative_efficiency(dt))
    return np.asarray(loo.elpd_i.values, dtype=float).ravel(), float(np.max(loo.pareto_k))


def heldout_lpd(dt, test) -> np.ndarray:
    """Log predictive density of every held-out score (rows of ``test``) under a fit,
    on the fit's model scale: ``log mean_s Normal(y | mu_s, sigma_s)``."""
    y = model_scale_values(dt, test)
    mu, sd = (
        a.stack(sample=SAMPLE_DIMS).transpose("sample", "cell").values
        for a in cell_parameters(dt, test["llm"].to_numpy(), test["benchmark"].to_numpy())
    )
    return logsumexp(log_density(y, mu, sd), axis=0) - np.log(mu.shape[0])


def kfold_pointwise(
    study: BenchmarkStudy,
    config: ModelConfig,
    settings: SamplerSettings,
    dims: Sequence[int],
    *,
    folds: int = FOLDS,
    announce: Callable[[str], None] | None = None,
) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """Held-out log predictive density of every fold's scores for every K in ``dims``.

    Returns
    -------
    (dict, dict)
        Per K, the pointwise log predictive densities of the held-out scores (fold by
        fold, in one order for every K), and how many of its fold fits were untrusted.
    """
    fold = kfold_cells(study, folds, settings.seed)
    pointwise = {k: [] for k in dims}
    untrusted = dict.fromkeys(dims, 0)
    caches = {k: ModelCache() for k in dims}
    for f in range(folds):
        held = fold == f
        train = training_study(study, held)
        test = study.scores.loc[held].reset_index(drop=True)
        for k in dims:
            if announce is not None:
                announce(f"fold {f + 1} of {folds}, {k} capability dimension(s)")
            used = dataclasses.replace(config, capability_dims=k)
            dt = fit(
                train, used, settings, progressbar=False, cache=caches[k], log_likelihood=False
            )
            untrusted[k] += not diagnostics_of(dt).trustworthy
            pointwise[k].append(heldout_lpd(dt, test))
    return {k: np.concatenate(v) for k, v in pointwise.items()}, untrusted


def pick_dims(
    pointwise: dict[int, np.ndarray], eligible: Sequence[int] | None = None
) -> tuple[int, dict[int, dict]]:
    """The smallest eligible K within one SE of the best eligible ELPD, and every K's ELPD,
    its difference from that best and the difference's SE (paired, over the same points).

    ``eligible`` (default: every K) are the candidates that may be chosen; the others are
    still tabled against the best eligible one.
    """
    eligible = list(pointwise) if eligible is None else list(eligible)
    elpd = {k: float(v.sum()) for k, v in pointwise.items()}
    best = max(eligible, key=elpd.get)
    table = {}
    for k, values in pointwise.items():
        diff = pointwise[best] - values
        se = float(np.sqrt(len(diff) * diff.var(ddof=1))) if k != best else 0.0
        table[k] = {"elpd": elpd[k], "elpd_diff": elpd[best] - elpd[k], "diff_se": se}
    chosen = min(k for k in eligible if table[k]["elpd_diff"] <= table[k]["diff_se"])
    return chosen, table


def select_capability_dims(
    study: BenchmarkStudy,
    config: ModelConfig | None = None,
    settings: SamplerSettings | None = None,
    *,
    retry: bool = True,
    folds: int = FOLDS,
    announce: Callable[[str], None] | None = None,
    **fit_kwargs,
):
    """Fit every candidate K and return the fit of the one chosen (module docstring).

    Parameters
    ----------
    study : BenchmarkStudy
    config : ModelConfig, optional
        The model choices besides K (its ``capability_dims`` is ignored).
    settings : SamplerSettings, optional
        For every fit (the whole study's and the folds').
    retry : bool
        Retry an untrusted fit of the whole study once
        (:func:`safetywash.analysis.retry.fit_with_retry`), as ``fit`` does.
    folds : int
        Folds of the cross-validation, where PSIS-LOO's Pareto k do not allow it.
    announce : callable, optional
        Called with a line before every fit.
    **fit_kwargs
        Passed to :func:`~safetywash.inference.sampling.fit` for the whole study's fits
        (``posterior_predictive``, ``progressbar``).

    Returns
    -------
    xarray.DataTree
        The chosen K's fit of the whole study, with ``attrs[DIMS_CHOICE_ATTR]``: JSON of
        ``chosen``, ``method`` ("psis-loo", "<folds>-fold" or "only candidate"), ``rule``
        and per K ``elpd``, ``elpd_diff`` (from the best), ``diff_se``,
        ``max_pareto_k``, ``trustworthy`` and (cross-validated) ``untrusted_folds``.
    """
    config = config or ModelConfig()
    settings = settings or SamplerSettings()
    say = announce or (lambda _: None)
    dims = candidate_dims(study, config)
    fits = {}
    for k in dims:
        say(f"fitting the whole study with {k} capability dimension(s)")
        used = dataclasses.replace(config, capability_dims=k)
        fits[k] = fit_with_retry(
            study, used, settings, retry=retry, announce=announce, **fit_kwargs
        )
    if len(dims) == 1:
        return _only_candidate(fits[1], study, config)
    loo = {k: loo_pointwise(dt) for k, dt in fits.items()}
    untrusted = {}
    if all(max_k <= MAX_PARETO_K for _, max_k in loo.values()):
        method, pointwise = "psis-loo", {k: v[0] for k, v in loo.items()}
    else:
        method = f"{folds}-fold"
        pointwise, untrusted = kfold_pointwise(
            study, config, settings, dims, folds=folds, announce=announce
        )
    trusted = [k for k in dims if diagnostics_of(fits[k]).trustworthy]
    chosen, table = pick_dims(pointwise, trusted or dims)
    for k in dims:
        table[k]["max_pareto_k"] = loo[k][1]
        table[k]["trustworthy"] = k in trusted
        if k in untrusted:
            table[k]["untrusted_folds"] = untrusted[k]
    record = {
        "chosen": chosen,
        "method": method,
        "rule": RULE if trusted else RULE_NONE_TRUSTED,
        "candidates": {str(k): v for k, v in table.items()},
    }
    dt = fits[chosen]
    dt.attrs[DIMS_CHOICE_ATTR] = json.dumps(record)
    return dt


def _only_candidate(dt, study: BenchmarkStudy, config: ModelConfig):
    """The one-dimension fit of a study that supports no more, with the reason recorded."""
    n_capability = _n_capability(study, config)
    if config.factors:
        reason = "area factors are fitted with one capability dimension only"
    else:
        reason = (
            f"its {n_capability} capability benchmark(s) identify one dimension (two need "
            f"at least {ledermann_minimum(2)})"
        )
    record = {"chosen": 1, "method": "only candidate", "reason": reason, "candidates": {}}
    dt.attrs[DIMS_CHOICE_ATTR] = json.dumps(record)
    return dt
