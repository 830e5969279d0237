"""Model structures across fits: is a separate factor for a safety area supported, are
further capability dimensions?

:func:`compare_structures` compares fits of the same study with different ``factors`` or
``capability_dims`` by their expected log predictive density (PSIS-LOO, :func:`arviz.loo`)
at one of the levels of :mod:`safetywash.analysis.loo` (``"cell"``, ``"llm"``,
``"llm-marginal"``). ``"auto"`` computes every level all fits support and uses the one
with the smallest share of Pareto k above the PSIS threshold (ties: ``llm-marginal``, then
``cell``, then ``llm``).
The same fit given twice is refused. Fits that did not pass their convergence diagnostics
are marked (``trustworthy``) and get no stacking weight unless ``allow_untrusted``.
:func:`safetywash.analysis.structure_verdicts.structure_verdicts` turns the ELPD
differences into a verdict per area factor and per step in the number of capability
dimensions.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import arviz as az
import numpy as np
import xarray as xr

from safetywash.analysis.loo import (
    LOO_LEVELS,
    LOO_PREFERENCE,
    available_loo_methods,
    loo_of,
    relative_efficiency,
)
from safetywash.inference.fitfile import FitMismatchError, fit_config, fit_info

LOO_METHODS = ("auto", *LOO_LEVELS)
DEFAULT_SE_MULTIPLE = 2.0


def check_same_study(fits: Mapping[str, xr.DataTree]) -> None:
    """Raise :class:`FitMismatchError` unless the fits share study, transform and level."""
    names = list(fits)
    ref = fits[names[0]]
    ref_info = fit_info(ref)
    for name in names[1:]:
        dt = fits[name]
        info = fit_info(dt)
        if info.study_sha256 != ref_info.study_sha256:
            raise FitMismatchError(
                f"fits {names[0]!r} and {name!r} are of different studies (study_sha256 "
                f"{ref_info.study_sha256[:12]}... vs {info.study_sha256[:12]}...): "
                "predictive densities are only comparable on the same data"
            )
        for field in ("transform", "level"):
            mine, theirs = getattr(info.model_config, field), getattr(ref_info.model_config, field)
            if mine != theirs:
                raise FitMismatchError(
                    f"fits {names[0]!r} and {name!r} differ in {field} "
                    f"({theirs!r} vs {mine!r}): their "
                    "log-likelihoods are on different scales and cannot be compared"
                )
        if dt["observed_data"].sizes["cell"] != ref["observed_data"].sizes["cell"]:
            raise FitMismatchError(f"fits {names[0]!r} and {name!r} have different cells")


def check_distinct(fits: Mapping[str, xr.DataTree]) -> None:
    """Raise :class:`FitMismatchError` when two fits are the same fit: same study, model
    config, sampler settings and seed (the sampler is deterministic, so same draws)."""
    seen: dict[tuple, str] = {}
    for name, dt in fits.items():
        info = fit_info(dt)
        key = (info.study_sha256, info.model_config, info.sampler_settings, info.seed)
        if key in seen:
            raise FitMismatchError(
                f"fits {seen[key]!r} and {name!r} are the same fit (same study, model config, "
                "sampler settings and seed): compare fits of different structures"
            )
        seen[key] = name


def is_trusted(dt: xr.DataTree) -> bool:
    """Whether a fit passed its convergence diagnostics (False when none are recorded)."""
    diagnostics = fit_info(dt).diagnostics
    return diagnostics is not None and diagnostics.trustworthy


def _stacking_weights(loos: dict, names: list[str], eligible: list[str]) -> np.ndarray:
    """Stacking weights of :func:`arviz.compare` over ``eligible`` fits; NaN for the others."""
    weights = np.full(len(names), np.nan)
    if len(eligible) == 1:
        weights[names.index(eligible[0])] = 1.0
    elif eligible:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = az.compare({n: loos[n] for n in eligible}, round_to="none")
        for n in eligible:
            weights[names.index(n)] = float(table.loc[n, "weight"])
    return weights


def _elpd_difference(a, b) -> tuple[float, float]:
    """ELPD of ``a`` minus ``b`` and the SE of the difference, from pointwise values."""
    d = (
        np.asarray(a.elpd_i.values, dtype=float).ravel()
        - np.asarray(b.elpd_i.values, dtype=float).ravel()
    )
    return float(d.sum()), float(np.sqrt(len(d) * d.var(ddof=1)))


def _high_k(loo) -> int:
    return int((np.asarray(loo.pareto_k.values) > loo.good_k).sum())


def _levels(fits: Mapping[str, xr.DataTree], method: str) -> list[str]:
    """The LOO levels to compute: every level all fits support for ``"auto"``."""
    common = [
        m for m in LOO_PREFERENCE if all(m in available_loo_methods(dt) for dt in fits.values())
    ]
    if method != "auto" and method not in common:
        raise ValueError(
            f"LOO level {method!r} is not available for every fit (available for all: "
            f"{common}); fits with capability='marginal' support 'llm-marginal' only"
        )
    return common if method == "auto" else [method]


def _loos(fits: Mapping[str, xr.DataTree], methods: list[str]) -> dict[str, dict]:
    """PSIS-LOO of every fit at every level: ``{level: {fit name: ELPDData}}``."""
    loos: dict[str, dict[str, object]] = {m: {} for m in methods}
    for name, dt in fits.items():
        reff = relative_efficiency(dt)
        for m in methods:
            loos[m][name] = loo_of(dt, m, reff=reff)
    return loos


def _level_used(loos: dict[str, dict], methods: list[str], method: str) -> str:
    """The requested level, or for ``"auto"`` the one with the fewest high Pareto k."""
    if method != "auto":
        return method

    def badness(m: str) -> tuple[float, int]:
        share = max(_high_k(loo) / len(loo.pareto_k.values.ravel()) for loo in loos[m].values())
        return share, LOO_PREFERENCE.index(m)

    return min(methods, key=badness)


def _differences(loos: dict[str, dict], names: list[str], methods: list[str]):
    """ELPD differences (fit minus other) and their SEs, shape ``(fit, other, level)``."""
    diff = np.zeros((len(names), len(names), len(methods)))
    diff_se = np.zeros_like(diff)
    for k, m in enumerate(methods):
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if i != j:
                    diff[i, j, k], diff_se[i, j, k] = _elpd_difference(loos[m][a], loos[m][b])
    return diff, diff_se


def _level_table(loos: dict[str, dict], names: list[str], methods: list[str]) -> dict:
    """Per fit and level: ``elpd``, ``se``, ``p``, ``n_high_k``; per level: sizes, threshold."""
    shape = (len(names), len(methods))
    elpd, se, p, high = (np.zeros(shape) for _ in range(4))
    for j, m in enumerate(methods):
        for i, n in enumerate(names):
            loo = loos[m][n]
            elpd[i, j], se[i, j], p[i, j], high[i, j] = loo.elpd, loo.se, loo.p, _high_k(loo)
    first = {m: loos[m][names[0]] for m in methods}
    return {
        "elpd": (("fit", "loo_method"), elpd),
        "se": (("fit", "loo_method"), se),
        "p": (("fit", "loo_method"), p),
        "n_high_k": (("fit", "loo_method"), high.astype(np.int64)),
        "n_points": ("loo_method", [len(first[m].pareto_k.values.ravel()) for m in methods]),
        "good_k": ("loo_method", [float(first[m].good_k) for m in methods]),
    }


def compare_structures(
    fits: Mapping[str, xr.DataTree],
    *,
    method: str = "auto",
    se_multiple: float = DEFAULT_SE_MULTIPLE,
    allow_untrusted: bool = False,
) -> xr.Dataset:
    """Compare fits of the same study with different structures (factors, K) by PSIS-LOO.

    Parameters
    ----------
    fits : mapping of str -> xarray.DataTree
        Two or more fits of the same study (same ``study_sha256``, transform and level),
        named.
    method : {"auto", "cell", "llm", "llm-marginal"}
        Level of the leave-one-out (see :mod:`safetywash.analysis.loo`).
    se_multiple : float
        A richer structure is *supported* when its ELPD exceeds the simpler one's by more
        than ``se_multiple`` standard errors of the difference.
    allow_untrusted : bool
        Give stacking weight to fits that did not pass their diagnostics too (by default
        their weight is NaN and the weights are stacked over the trusted fits only).

    Returns
    -------
    xarray.Dataset
        Over ``(fit, loo_method)`` for every computed level: ``elpd``, ``se``, ``p``,
        ``n_high_k`` (Pareto k above ``good_k``) and over ``loo_method``: ``n_points``,
        ``good_k``; over ``(fit, other)`` for the level used: ``elpd_diff`` (fit minus
        other) and ``elpd_diff_se`` (and over ``(fit, other, loo_method)`` for every level:
        ``elpd_diff_by_level``, ``elpd_diff_se_by_level``); ``weight`` (fit): stacking
        weights of :func:`arviz.compare` (NaN for an untrusted fit unless
        ``allow_untrusted``). Coordinates ``factors`` (fit, comma-separated areas),
        ``capability_dims`` (fit: K) and ``trustworthy`` (fit). Attrs ``method`` (the level
        used), ``method_requested``, ``se_multiple``, ``study_sha256``, ``allow_untrusted``.

    Raises
    ------
    FitMismatchError
        Fits of different studies, transforms or levels, or the same fit twice.
    """
    if method not in LOO_METHODS:
        raise ValueError(f"method must be one of {LOO_METHODS}, not {method!r}")
    if len(fits) < 2:
        raise ValueError("give at least two fits to compare")
    check_same_study(fits)
    check_distinct(fits)
    methods = _levels(fits, method)
    names = list(fits)
    loos = _loos(fits, methods)
    used = _level_used(loos, methods, method)
    diff, diff_se = _differences(loos, names, methods)
    u = methods.index(used)
    trusted = [is_trusted(fits[n]) for n in names]
    eligible = [n for n, ok in zip(names, trusted, strict=True) if ok or allow_untrusted]
    return xr.Dataset(
        {
            **_level_table(loos, names, methods),
            "elpd_diff": (("fit", "other"), diff[:, :, u]),
            "elpd_diff_se": (("fit", "other"), diff_se[:, :, u]),
            "elpd_diff_by_level": (("fit", "other", "loo_method"), diff),
            "elpd_diff_se_by_level": (("fit", "other", "loo_method"), diff_se),
            "weight": ("fit", _stacking_weights(loos[used], names, eligible)),
        },
        coords={
            "fit": names,
            "other": names,
            "loo_method": methods,
            "factors": ("fit", [",".join(fit_config(fits[n]).factors) for n in names]),
            "capability_dims": ("fit", [fit_config(fits[n]).capability_dims for n in names]),
            "trustworthy": ("fit", trusted),
        },
        attrs={
            "method": used,
            "method_requested": method,
            "se_multiple": se_multiple,
            "study_sha256": fit_info(next(iter(fits.values()))).study_sha256,
            "allow_untrusted": int(allow_untrusted),
        },
    )
