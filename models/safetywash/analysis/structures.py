"""Model structures across fits: is a separate factor for a safety area supported?

:func:`compare_structures` compares fits of the same study with different ``factors`` by
their expected log predictive density (PSIS-LOO, :func:`arviz.loo`) at one of the levels
of :mod:`safetywash.analysis.loo` (``"cell"``, ``"llm"``, ``"llm-marginal"``).
``"auto"`` computes every level all fits support and uses the one with the smallest share
of Pareto k above the PSIS threshold (ties: ``llm-marginal``, then ``cell``, then ``llm``).
:func:`structure_verdicts` turns the ELPD differences into a verdict per area factor.
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
) -> xr.Dataset:
    """Compare fits of the same study with different factor structures by PSIS-LOO.

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

    Returns
    -------
    xarray.Dataset
        Over ``(fit, loo_method)`` for every computed level: ``elpd``, ``se``, ``p``,
        ``n_high_k`` (Pareto k above ``good_k``) and over ``loo_method``: ``n_points``,
        ``good_k``; over ``(fit, other)`` for the level used: ``elpd_diff`` (fit minus
        other) and ``elpd_diff_se`` (and over ``(fit, other, loo_method)`` for every level:
        ``elpd_diff_by_level``, ``elpd_diff_se_by_level``); ``weight`` (fit): stacking
        weights of :func:`arviz.compare`. Coordinate ``factors`` (fit, comma-separated
        areas). Attrs ``method`` (the level used), ``method_requested``, ``se_multiple``,
        ``study_sha256``.
    """
    if method not in LOO_METHODS:
        raise ValueError(f"method must be one of {LOO_METHODS}, not {method!r}")
    if len(fits) < 2:
        raise ValueError("give at least two fits to compare")
    check_same_study(fits)
    methods = _levels(fits, method)
    names = list(fits)
    loos: dict[str, dict[str, object]] = {m: {} for m in methods}
    for name, dt in fits.items():
        reff = relative_efficiency(dt)
        for m in methods:
            loos[m][name] = loo_of(dt, m, reff=reff)
    used = _level_used(loos, methods, method)
    diff, diff_se = _differences(loos, names, methods)
    u = methods.index(used)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(dict(loos[used]), round_to="none")
    return xr.Dataset(
        {
            **_level_table(loos, names, methods),
            "elpd_diff": (("fit", "other"), diff[:, :, u]),
            "elpd_diff_se": (("fit", "other"), diff_se[:, :, u]),
            "elpd_diff_by_level": (("fit", "other", "loo_method"), diff),
            "elpd_diff_se_by_level": (("fit", "other", "loo_method"), diff_se),
            "weight": ("fit", table["weight"].reindex(names).to_numpy(dtype=float)),
        },
        coords={
            "fit": names,
            "other": names,
            "loo_method": methods,
            "factors": ("fit", [",".join(fit_config(fits[n]).factors) for n in names]),
        },
        attrs={
            "method": used,
            "method_requested": method,
            "se_multiple": se_multiple,
            "study_sha256": fit_info(next(iter(fits.values()))).study_sha256,
        },
    )


def _factor_set(ds: xr.Dataset, name: str) -> frozenset[str]:
    text = str(ds["factors"].sel(fit=name).item())
    return frozenset(a for a in text.split(",") if a)


def _simpler_fit(ds: xr.Dataset, richer: str, area: str) -> str | None:
    """The fit without ``area``'s factor, else the largest proper subset, else None."""
    names = [str(n) for n in ds["fit"].values]
    mine = _factor_set(ds, richer)
    exact = [n for n in names if _factor_set(ds, n) == mine - {area}]
    if exact:
        return exact[0]
    subsets = [n for n in names if _factor_set(ds, n) < mine]
    return max(subsets, key=lambda n: len(_factor_set(ds, n))) if subsets else None


def _other_levels(ds: xr.Dataset, richer: str, simpler: str) -> dict[str, tuple[float, float]]:
    """The ELPD difference and its SE at every computed level but the one used."""
    pair = {"fit": richer, "other": simpler}
    return {
        str(m): (
            float(ds["elpd_diff_by_level"].sel(**pair, loo_method=m)),
            float(ds["elpd_diff_se_by_level"].sel(**pair, loo_method=m)),
        )
        for m in ds["loo_method"].values
        if m != ds.attrs["method"]
    }


def _verdict_sentence(ds, area, richer, simpler, joint, d, s, others, bad) -> str:
    used = ds.attrs["method"]
    k_mult = float(ds.attrs["se_multiple"])
    supported = d > k_mult * s
    together = f" (jointly with {', '.join(joint)}: the fits differ by all of them)"
    sentence = (
        f"A separate factor for area {area} is {'' if supported else 'not '}supported"
        f"{together if joint else ''}: ELPD {richer!r} - {simpler!r} = {d:+.1f} "
        f"(SE {s:.1f}; supported needs > {k_mult:g} SE)"
    )
    if not supported and d < -k_mult * s:
        sentence += "; the simpler structure predicts better"
    sentence += "."
    if others:
        sentence += (
            " Other LOO levels: "
            + ", ".join(f"{m} {od:+.1f} (SE {os_:.1f})" for m, (od, os_) in others.items())
            + "."
        )
    if bad:
        n_points = int(ds["n_points"].sel(loo_method=used))
        unit = "cells" if used == "cell" else "LLMs"
        which = ", ".join(f"{v} of {n_points} {unit} in {n!r}" for n, v in bad.items())
        threshold = float(ds["good_k"].sel(loo_method=used))
        sentence += (
            f" Warning: unreliable, Pareto k > {threshold:.2g} for {which}; consider "
            "k-fold cross-validation (arviz.loo_kfold)."
        )
    return sentence


def _verdict(ds: xr.Dataset, area: str, richer: str, simpler: str) -> dict:
    high = ds["n_high_k"].sel(loo_method=ds.attrs["method"])
    joint = sorted(_factor_set(ds, richer) - _factor_set(ds, simpler) - {area})
    d = float(ds["elpd_diff"].sel(fit=richer, other=simpler))
    s = float(ds["elpd_diff_se"].sel(fit=richer, other=simpler))
    bad = {n: int(high.sel(fit=n)) for n in (richer, simpler) if int(high.sel(fit=n))}
    others = _other_levels(ds, richer, simpler)
    return {
        "area": area,
        "richer": richer,
        "simpler": simpler,
        "joint_with": joint,
        "elpd_diff": d,
        "elpd_diff_se": s,
        "other_levels": {m: {"elpd_diff": v[0], "se": v[1]} for m, v in others.items()},
        "supported": bool(d > float(ds.attrs["se_multiple"]) * s),
        "reliable": not bad,
        "sentence": _verdict_sentence(ds, area, richer, simpler, joint, d, s, others, bad),
    }


def structure_verdicts(ds: xr.Dataset) -> list[dict]:
    """Plain-language verdicts on each area factor of the richer fits.

    For every fit and every area ``X`` among its factors, the simpler fit compared with is
    the one whose factors are those of the fit without ``X``; when no such fit was given,
    the fit with the largest proper subset of its factors (the verdict is then joint for
    all areas the two differ by). Supported when the ELPD gain exceeds
    ``se_multiple`` standard errors of the difference.

    Returns
    -------
    list of dict
        Keys ``area``, ``richer``, ``simpler``, ``joint_with`` (other areas the two fits
        differ by), ``elpd_diff``, ``elpd_diff_se``, ``other_levels`` (the difference and
        its SE at the other computed LOO levels), ``supported``, ``reliable`` (no
        Pareto k above the threshold in either fit), ``sentence``.
    """
    verdicts = []
    for richer in [str(n) for n in ds["fit"].values]:
        for area in sorted(_factor_set(ds, richer)):
            simpler = _simpler_fit(ds, richer, area)
            if simpler is not None:
                verdicts.append(_verdict(ds, area, richer, simpler))
    return verdicts


METHOD_LABELS = {
    "cell": "leave-one-score-out (per cell)",
    "llm": "leave-one-LLM-out (summed log-likelihood per LLM)",
    "llm-marginal": "leave-one-LLM-out with the LLM's latent scores integrated out",
}


def format_structures(ds: xr.Dataset) -> str:
    """Readable report of :func:`compare_structures` with the verdicts."""
    used = ds.attrs["method"]
    names = [str(n) for n in ds["fit"].values]
    width = max(max(len(n) for n in names), 4) + 2
    lines = [
        f"PSIS-LOO used: {METHOD_LABELS[used]} [{used}]"
        + (
            " (chosen automatically: fewest high Pareto k)"
            if ds.attrs["method_requested"] == "auto"
            else ""
        ),
        "",
        f"{'fit':<{width}}{'factors':<28}{'level':<14}{'elpd':>10}{'SE':>8}{'p_loo':>8}"
        f"{f'k>{float(ds.good_k.max()):.2f}':>12}",
    ]
    for m in [str(v) for v in ds["loo_method"].values]:
        n_points = int(ds["n_points"].sel(loo_method=m))
        for n in names:
            r = ds.sel(fit=n, loo_method=m)
            marker = " *" if m == used else ""
            lines.append(
                f"{n:<{width}}{(str(r.factors.item()) or '-'):<28}{m + marker:<14}"
                f"{float(r.elpd):>10.1f}{float(r.se):>8.1f}{float(r.p):>8.1f}"
                f"{f'{int(r.n_high_k)}/{n_points}':>12}"
            )
    lines += [
        "",
        f"Stacking weights ({used}): "
        + ", ".join(f"{n} {float(ds.weight.sel(fit=n)):.2f}" for n in names),
        "",
    ]
    verdicts = structure_verdicts(ds)
    if verdicts:
        lines += [v["sentence"] for v in verdicts]
    else:
        lines.append(
            "No fit's factors extend another's: no verdict on area factors (compare a fit "
            "with area factors against one without them)."
        )
    return "\n".join(lines)


def structures_json(ds: xr.Dataset) -> dict:
    """JSON-ready dictionary of :func:`compare_structures` with the verdicts."""
    names = [str(n) for n in ds["fit"].values]
    methods = [str(m) for m in ds["loo_method"].values]
    return {
        "loo_method": ds.attrs["method"],
        "loo_method_requested": ds.attrs["method_requested"],
        "se_multiple": float(ds.attrs["se_multiple"]),
        "study_sha256": ds.attrs["study_sha256"],
        "fits": [
            {
                "name": n,
                "factors": sorted(_factor_set(ds, n)),
                "weight": float(ds["weight"].sel(fit=n)),
                "loo": {
                    m: {
                        "elpd": float(ds["elpd"].sel(fit=n, loo_method=m)),
                        "se": float(ds["se"].sel(fit=n, loo_method=m)),
                        "p": float(ds["p"].sel(fit=n, loo_method=m)),
                        "n_high_pareto_k": int(ds["n_high_k"].sel(fit=n, loo_method=m)),
                        "n_points": int(ds["n_points"].sel(loo_method=m)),
                        "pareto_k_threshold": float(ds["good_k"].sel(loo_method=m)),
                    }
                    for m in methods
                },
            }
            for n in names
        ],
        "verdicts": structure_verdicts(ds),
    }
