"""Verdicts on model structures: is a separate factor for a safety area supported?

:func:`structure_verdicts` turns a comparison from
:func:`safetywash.analysis.structures.compare_structures` into one plain-language verdict
per area factor of the richer fits; :func:`format_structures` and :func:`structures_json`
render the comparison with its verdicts. Fits that did not pass their convergence
diagnostics are marked wherever they appear.
"""

from __future__ import annotations

import math

import xarray as xr


def _untrusted(ds: xr.Dataset, names) -> list[str]:
    """The fits among ``names`` that did not pass their diagnostics."""
    return [n for n in names if not bool(ds["trustworthy"].sel(fit=n))]


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


def _verdict_sentence(ds, area, richer, simpler, joint, d, s, others, bad, untrusted) -> str:
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
    if untrusted:
        sentence += (
            f" Warning: UNTRUSTED, {' and '.join(repr(n) for n in untrusted)} did not pass the "
            "convergence diagnostics; refit longer before relying on this."
        )
    return sentence


def _verdict(ds: xr.Dataset, area: str, richer: str, simpler: str) -> dict:
    high = ds["n_high_k"].sel(loo_method=ds.attrs["method"])
    joint = sorted(_factor_set(ds, richer) - _factor_set(ds, simpler) - {area})
    d = float(ds["elpd_diff"].sel(fit=richer, other=simpler))
    s = float(ds["elpd_diff_se"].sel(fit=richer, other=simpler))
    bad = {n: int(high.sel(fit=n)) for n in (richer, simpler) if int(high.sel(fit=n))}
    others = _other_levels(ds, richer, simpler)
    untrusted = _untrusted(ds, (richer, simpler))
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
        "trusted": not untrusted,
        "sentence": _verdict_sentence(
            ds, area, richer, simpler, joint, d, s, others, bad, untrusted
        ),
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
        Pareto k above the threshold in either fit), ``trusted`` (both fits passed their
        convergence diagnostics), ``sentence``.
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


def _weight_text(ds: xr.Dataset, name: str) -> str:
    weight = float(ds["weight"].sel(fit=name))
    return "none (untrusted)" if math.isnan(weight) else f"{weight:.2f}"


def format_structures(ds: xr.Dataset) -> str:
    """Readable report of a structure comparison with the verdicts; untrusted fits are
    marked ``!`` and their stacking weight shown as none (unless they were weighted)."""
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
        f" {'fit':<{width - 1}}{'factors':<28}{'level':<14}{'elpd':>10}{'SE':>8}{'p_loo':>8}"
        f"{f'k>{float(ds.good_k.max()):.2f}':>12}",
    ]
    for m in [str(v) for v in ds["loo_method"].values]:
        n_points = int(ds["n_points"].sel(loo_method=m))
        for n in names:
            r = ds.sel(fit=n, loo_method=m)
            marker = " *" if m == used else ""
            flag = "!" if not bool(r.trustworthy) else " "
            lines.append(
                f"{flag}{n:<{width - 1}}{(str(r.factors.item()) or '-'):<28}{m + marker:<14}"
                f"{float(r.elpd):>10.1f}{float(r.se):>8.1f}{float(r.p):>8.1f}"
                f"{f'{int(r.n_high_k)}/{n_points}':>12}"
            )
    untrusted = _untrusted(ds, names)
    lines += [
        "",
        f"Stacking weights ({used}): " + ", ".join(f"{n} {_weight_text(ds, n)}" for n in names),
    ]
    if untrusted:
        weighted = bool(ds.attrs.get("allow_untrusted", 0))
        lines.append(
            f"! UNTRUSTED (did not pass the convergence diagnostics): {', '.join(untrusted)}; "
            + ("weighted anyway (allow_untrusted)." if weighted else "no stacking weight.")
        )
    lines.append("")
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
    """JSON-ready dictionary of a structure comparison with the verdicts (``weight`` null
    for an untrusted fit given no weight)."""
    names = [str(n) for n in ds["fit"].values]
    methods = [str(m) for m in ds["loo_method"].values]
    return {
        "loo_method": ds.attrs["method"],
        "loo_method_requested": ds.attrs["method_requested"],
        "se_multiple": float(ds.attrs["se_multiple"]),
        "study_sha256": ds.attrs["study_sha256"],
        "untrusted_weighted": bool(ds.attrs.get("allow_untrusted", 0)),
        "fits": [
            {
                "name": n,
                "factors": sorted(_factor_set(ds, n)),
                "trusted": bool(ds["trustworthy"].sel(fit=n)),
                "weight": None
                if math.isnan(float(ds["weight"].sel(fit=n)))
                else float(ds["weight"].sel(fit=n)),
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
