"""Verdicts on model structures: is a separate factor for a safety area supported, are
further capability dimensions?

:func:`structure_verdicts` turns a comparison from
:func:`safetywash.analysis.structures.compare_structures` into one plain-language verdict
per area factor of the richer fits (compared among fits with the same number of capability
dimensions); :func:`capability_dims_verdicts` into one per fit with more capability
dimensions than another fit of the same area factors. :func:`format_structures` and
:func:`structures_json` render the comparison with its verdicts. Fits that did not pass
their convergence diagnostics are marked wherever they appear.
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


def _dims(ds: xr.Dataset, name: str) -> int:
    """A fit's number of capability dimensions (1 for a comparison made before they were
    recorded)."""
    if "capability_dims" not in ds.coords:
        return 1
    return int(ds["capability_dims"].sel(fit=name))


def _simpler_fit(ds: xr.Dataset, richer: str, area: str) -> str | None:
    """The fit without ``area``'s factor, else the largest proper subset, else None (among
    the fits with as many capability dimensions as ``richer``)."""
    names = [str(n) for n in ds["fit"].values if _dims(ds, str(n)) == _dims(ds, richer)]
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


def _pair(ds: xr.Dataset, richer: str, simpler: str) -> dict:
    """ELPD difference ``richer - simpler`` at the level used, its SE, the other levels, the
    fits with high Pareto k and the untrusted fits of the pair."""
    high = ds["n_high_k"].sel(loo_method=ds.attrs["method"])
    return {
        "d": float(ds["elpd_diff"].sel(fit=richer, other=simpler)),
        "s": float(ds["elpd_diff_se"].sel(fit=richer, other=simpler)),
        "others": _other_levels(ds, richer, simpler),
        "bad": {n: int(high.sel(fit=n)) for n in (richer, simpler) if int(high.sel(fit=n))},
        "untrusted": _untrusted(ds, (richer, simpler)),
    }


def _evidence(ds: xr.Dataset, richer: str, simpler: str, pair: dict) -> str:
    """``: ELPD ... (SE ...; supported needs > k SE)[; the simpler structure predicts
    better].`` and the other levels and warnings, the tail of every verdict sentence."""
    k_mult = float(ds.attrs["se_multiple"])
    d, s = pair["d"], pair["s"]
    sentence = (
        f": ELPD {richer!r} - {simpler!r} = {d:+.1f} (SE {s:.1f}; supported needs > {k_mult:g} SE)"
    )
    if not d > k_mult * s and d < -k_mult * s:
        sentence += "; the simpler structure predicts better"
    sentence += "."
    if pair["others"]:
        sentence += (
            " Other LOO levels: "
            + ", ".join(f"{m} {od:+.1f} (SE {os_:.1f})" for m, (od, os_) in pair["others"].items())
            + "."
        )
    return sentence + _warnings(ds, pair["bad"], pair["untrusted"])


def _warnings(ds: xr.Dataset, bad: dict, untrusted: list[str]) -> str:
    """The warnings of a verdict: unreliable PSIS (high Pareto k), untrusted fits."""
    sentence = ""
    used = ds.attrs["method"]
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


def _verdict_record(ds: xr.Dataset, richer: str, simpler: str, pair: dict) -> dict:
    """The keys every verdict has (``sentence`` added by the caller)."""
    return {
        "richer": richer,
        "simpler": simpler,
        "elpd_diff": pair["d"],
        "elpd_diff_se": pair["s"],
        "other_levels": {m: {"elpd_diff": v[0], "se": v[1]} for m, v in pair["others"].items()},
        "supported": bool(pair["d"] > float(ds.attrs["se_multiple"]) * pair["s"]),
        "reliable": not pair["bad"],
        "trusted": not pair["untrusted"],
    }


def _verdict(ds: xr.Dataset, area: str, richer: str, simpler: str) -> dict:
    joint = sorted(_factor_set(ds, richer) - _factor_set(ds, simpler) - {area})
    pair = _pair(ds, richer, simpler)
    record = _verdict_record(ds, richer, simpler, pair)
    together = f" (jointly with {', '.join(joint)}: the fits differ by all of them)"
    sentence = (
        f"A separate factor for area {area} is {'' if record['supported'] else 'not '}supported"
        f"{together if joint else ''}"
    )
    return {
        "area": area,
        **{k: record[k] for k in ("richer", "simpler")},
        "joint_with": joint,
        **{k: v for k, v in record.items() if k not in ("richer", "simpler")},
        "sentence": sentence + _evidence(ds, richer, simpler, pair),
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


def _simpler_dims_fit(ds: xr.Dataset, richer: str) -> str | None:
    """The fit with the same area factors and the most capability dimensions below
    ``richer``'s, else None."""
    names = [str(n) for n in ds["fit"].values]
    mine = _dims(ds, richer)
    fewer = [
        n for n in names if _factor_set(ds, n) == _factor_set(ds, richer) and _dims(ds, n) < mine
    ]
    return max(fewer, key=lambda n: _dims(ds, n)) if fewer else None


def capability_dims_verdicts(ds: xr.Dataset) -> list[dict]:
    """Plain-language verdicts on the further capability dimensions of the richer fits.

    For every fit with K > 1 capability dimensions, the simpler fit compared with is the one
    with the same area factors and the most dimensions below K (the verdict is joint for
    all the dimensions the two differ by). Supported when the ELPD gain exceeds
    ``se_multiple`` standard errors of the difference, as for area factors.

    Returns
    -------
    list of dict
        Keys ``capability_dims`` (the richer fit's K), ``simpler_capability_dims``,
        ``richer``, ``simpler``, ``elpd_diff``, ``elpd_diff_se``, ``other_levels``,
        ``supported``, ``reliable``, ``trusted`` (as :func:`structure_verdicts`) and
        ``sentence``.
    """
    verdicts = []
    for richer in [str(n) for n in ds["fit"].values]:
        simpler = _simpler_dims_fit(ds, richer)
        if simpler is None:
            continue
        k, k_simpler = _dims(ds, richer), _dims(ds, simpler)
        pair = _pair(ds, richer, simpler)
        record = _verdict_record(ds, richer, simpler, pair)
        jointly = f" (jointly: the fits differ by {k - k_simpler} dimensions)"
        sentence = (
            f"{k} capability dimensions are {'' if record['supported'] else 'not '}supported "
            f"over {k_simpler}{jointly if k - k_simpler > 1 else ''}"
        )
        verdicts.append(
            {
                "capability_dims": k,
                "simpler_capability_dims": k_simpler,
                **record,
                "sentence": sentence + _evidence(ds, richer, simpler, pair),
            }
        )
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
    marked ``!`` and their stacking weight shown as none (unless they were weighted); a
    column ``K`` gives the capability dimensions when a fit has more than one."""
    used = ds.attrs["method"]
    names = [str(n) for n in ds["fit"].values]
    width = max(max(len(n) for n in names), 4) + 2
    # the K column only where a fit has further capability dimensions
    dims = {n: f"{_dims(ds, n):>3} " for n in names}
    if all(_dims(ds, n) == 1 for n in names):
        dims = dict.fromkeys(names, "")
    lines = [
        f"PSIS-LOO used: {METHOD_LABELS[used]} [{used}]"
        + (
            " (chosen automatically: fewest high Pareto k)"
            if ds.attrs["method_requested"] == "auto"
            else ""
        ),
        "",
        f" {'fit':<{width - 1}}{'factors':<28}{'  K ' if dims[names[0]] else ''}{'level':<14}"
        f"{'elpd':>10}{'SE':>8}{'p_loo':>8}{f'k>{float(ds.good_k.max()):.2f}':>12}",
    ]
    for m in [str(v) for v in ds["loo_method"].values]:
        n_points = int(ds["n_points"].sel(loo_method=m))
        for n in names:
            r = ds.sel(fit=n, loo_method=m)
            marker = " *" if m == used else ""
            flag = "!" if not bool(r.trustworthy) else " "
            lines.append(
                f"{flag}{n:<{width - 1}}{(str(r.factors.item()) or '-'):<28}{dims[n]}"
                f"{m + marker:<14}{float(r.elpd):>10.1f}{float(r.se):>8.1f}{float(r.p):>8.1f}"
                f"{f'{int(r.n_high_k)}/{n_points}':>12}"
            )
    if dims[names[0]]:
        lines.append("K: capability dimensions (a general factor plus K - 1 further axes).")
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
    verdicts = structure_verdicts(ds) + capability_dims_verdicts(ds)
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
    for an untrusted fit given no weight; every fit's ``capability_dims``; the area-factor
    ``verdicts`` and the ``capability_dims_verdicts``)."""
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
                "capability_dims": _dims(ds, n),
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
        "capability_dims_verdicts": capability_dims_verdicts(ds),
    }
