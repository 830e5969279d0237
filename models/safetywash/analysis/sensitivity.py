"""Prior sensitivity: refit a study with narrower and wider hyperpriors and compare verdicts.

``ModelConfig.prior_scale`` multiplies the scales of the hyperpriors on loadings and
residuals. :func:`refit_prior_scales` refits the study a saved fit was made from with other
values (everything else, including the sampler settings and seed, read from the fit's attrs
unless overridden); :func:`prior_sensitivity` tabulates, per benchmark, how the posterior
median of ``rho`` and ``P(separable) = P(|rho| < tau)`` move, and flags benchmarks whose
verdict depends on the prior:

* the separability verdict ``P(separable) > 0.5`` is not the same at every scale, or
* the sign of ``rho`` the posterior favours flips: ``P(rho > 0) >= 0.5 + SIGN_MARGIN`` at
  one scale and ``P(rho > 0) <= 0.5 - SIGN_MARGIN`` at another (``SIGN_MARGIN = 0.1``:
  odds of at least 3:2 each way). The rule reads probabilities, not an interval edge: a
  benchmark whose median stays at -0.3 is not flagged because its interval reaches 0 at
  one scale, and ``P(rho > 0)`` wobbling around 0.5 by sampling noise (a rho near 0 at
  every scale) is not a flip either. The intervals are reported beside it.

A fit with K > 1 capability dimensions (``ModelConfig.capability_dims``) is refitted with
the same K (the refits copy the fit's config); ``P(separable)`` is then ``P(R < tau)``, the
subspace ``R`` of :func:`safetywash.analysis.separability.separability`, while ``rho`` and
its sign stay those of the general factor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.analysis.intervals import CI_PROB, SAMPLE_DIMS
from safetywash.analysis.separability import DEFAULT_TAU, separability
from safetywash.inference.fitfile import (
    diagnostics_of,
    fit_config,
    fit_sampler_settings,
    study_from_fit,
)
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.data import prepare_data

DEFAULT_SCALES = (0.5, 2.0)
SEPARABLE_PROBABILITY = 0.5
#: How far from 0.5 P(rho > 0) must be for the posterior to favour a sign.
SIGN_MARGIN = 0.1


def refit_prior_scales(
    dt: xr.DataTree,
    scales: Sequence[float] = DEFAULT_SCALES,
    *,
    settings: SamplerSettings | None = None,
    refit_reference: bool = False,
    progressbar: bool = False,
) -> dict[float, xr.DataTree]:
    """Refit the study of a fit with other prior scales, one fit after another.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit (its study is rebuilt from ``constant_data``; its config from attrs).
    scales : sequence of float
        Values of ``ModelConfig.prior_scale`` to fit (the fit's own scale is skipped).
    settings : SamplerSettings, optional
        Default: the fit's own sampler settings
        (:func:`safetywash.inference.fitfile.fit_sampler_settings`).
    refit_reference : bool
        Also refit at the fit's own prior scale, so that every fit compared comes from the
        same code and sampler settings (:func:`prior_sensitivity` then uses this refit as
        the reference instead of the saved fit).
    progressbar : bool
        Show the sampler's progress.

    Returns
    -------
    dict of float -> xarray.DataTree
    """
    config = fit_config(dt)
    settings = settings or fit_sampler_settings(dt)
    study = study_from_fit(dt)
    data = prepare_data(study, config)
    saved = np.asarray(dt["observed_data"]["score"].values, dtype=float)
    if data.y.shape != saved.shape or not np.allclose(data.y, saved, rtol=1e-9, atol=1e-12):
        raise ValueError(
            "the study rebuilt from the fit does not reproduce its scores; cannot refit it"
        )
    refits = {}
    wanted = [float(s) for s in scales]
    if refit_reference:
        wanted = [float(config.prior_scale), *wanted]
    for scale in wanted:
        if scale <= 0:
            raise ValueError(f"prior scales must be positive, not {scale}")
        own = np.isclose(scale, config.prior_scale)
        if scale in refits or (own and not refit_reference):
            continue
        if own:
            scale = float(config.prior_scale)
        refits[scale] = fit(
            study,
            dataclasses.replace(config, prior_scale=scale),
            settings,
            progressbar=progressbar,
        )
    return refits


def favoured_sign(p_positive: xr.DataArray, margin: float = SIGN_MARGIN) -> xr.DataArray:
    """+1 where ``P(rho > 0) >= 0.5 + margin``, -1 where ``<= 0.5 - margin``, else 0."""
    return xr.where(p_positive >= 0.5 + margin, 1, xr.where(p_positive <= 0.5 - margin, -1, 0))


def _check_same_data(dt: xr.DataTree, fits: Mapping[float, xr.DataTree]) -> None:
    dims = fit_config(dt).capability_dims
    for scale, other in fits.items():
        if fit_config(other).capability_dims != dims:
            raise ValueError(
                f"the fit for prior scale {scale} has {fit_config(other).capability_dims} "
                f"capability dimensions, the reference {dims}: refit it with the reference's"
            )
        if not np.isclose(fit_config(other).prior_scale, scale):
            raise ValueError(
                f"the fit given for scale {scale} has prior_scale {fit_config(other).prior_scale}"
            )
        if other["observed_data"].sizes != dt["observed_data"].sizes or not np.array_equal(
            other["observed_data"]["score"].values, dt["observed_data"]["score"].values
        ):
            raise ValueError(f"the fit for prior scale {scale} is not of the same data")


def _spread(values: xr.DataArray) -> xr.DataArray:
    return values.max("prior_scale") - values.min("prior_scale")


def prior_sensitivity(
    dt: xr.DataTree,
    refits: Mapping[float, xr.DataTree],
    *,
    tau: float = DEFAULT_TAU,
    ci_prob: float = CI_PROB,
    group: str = "posterior",
) -> xr.Dataset:
    """How ``rho`` and ``P(separable)`` move with the prior scale, per benchmark.

    Parameters
    ----------
    dt : xarray.DataTree
        The reference fit.
    refits : mapping of float -> xarray.DataTree
        Fits of the same study with other ``prior_scale`` values
        (:func:`refit_prior_scales`); one at the reference's own scale replaces ``dt``.
    tau : float
        Separability threshold.
    ci_prob : float
        Mass of the HDI of ``rho``.
    group : str
        Group holding the draws.

    Returns
    -------
    xarray.Dataset
        Over ``(benchmark, prior_scale)`` (scales ascending, the reference's included):
        ``rho_median``, ``rho_hdi_low``, ``rho_hdi_high`` (the ``ci_prob`` interval),
        ``p_separable``, ``separable`` (``p_separable > 0.5``), ``p_positive``
        (``P(rho > 0)``) and ``rho_sign`` (:func:`favoured_sign`); over ``benchmark``:
        ``rho_median_shift`` and ``p_separable_shift`` (largest minus smallest over
        scales), ``separable_depends_on_prior``, ``sign_depends_on_prior`` (the favoured
        sign is +1 at one scale and -1 at another) and ``prior_dependent`` (either); over
        ``prior_scale``: ``trustworthy`` (the fit's convergence verdict). Coordinates
        ``display_name``, ``role``, ``area``; attrs ``tau``, ``ci_prob``,
        ``reference_scale``, ``sign_margin``, ``capability_dims`` (K > 1:
        ``p_separable`` is ``P(R < tau)``).
    """
    reference = fit_config(dt).prior_scale
    fits = {float(reference): dt, **{float(s): f for s, f in refits.items()}}
    _check_same_data(dt, fits)
    scales = sorted(fits)
    parts = []
    for s in scales:
        part = separability(fits[s], tau=tau, ci_prob=ci_prob, group=group, shares=False)
        part = part[["rho_median", "rho_hdi_low", "rho_hdi_high", "p_separable"]]
        part["p_positive"] = (fits[s][group]["rho"] > 0).mean(SAMPLE_DIMS)
        parts.append(part)
    out = xr.concat(parts, dim=pd.Index(scales, name="prior_scale"), coords="minimal")
    out["separable"] = out["p_separable"] > SEPARABLE_PROBABILITY
    out["rho_sign"] = favoured_sign(out["p_positive"])
    out["rho_median_shift"] = _spread(out["rho_median"])
    out["p_separable_shift"] = _spread(out["p_separable"])
    separable = out["separable"]
    out["separable_depends_on_prior"] = separable.any("prior_scale") & ~separable.all("prior_scale")
    out["sign_depends_on_prior"] = (out["rho_sign"].max("prior_scale") == 1) & (
        out["rho_sign"].min("prior_scale") == -1
    )
    out["prior_dependent"] = out["separable_depends_on_prior"] | out["sign_depends_on_prior"]
    out["trustworthy"] = (
        "prior_scale",
        [bool(diagnostics_of(fits[s]).trustworthy) for s in scales],
    )
    out.attrs.update(
        tau=tau, ci_prob=ci_prob, reference_scale=float(reference), sign_margin=SIGN_MARGIN
    )
    out.attrs["capability_dims"] = fit_config(dt).capability_dims
    return out


def sensitivity_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per benchmark: rho, its interval, P(separable) and P(rho > 0) at every
    scale, shifts, flags.

    Columns ``benchmark``, ``display_name``, ``role``, ``area``, then for every scale ``S``
    ``rho_median@S``, ``rho_hdi_low@S``, ``rho_hdi_high@S``, ``p_separable@S`` and
    ``p_positive@S``, then ``rho_median_shift``, ``p_separable_shift``,
    ``separable_depends_on_prior``, ``sign_depends_on_prior``, ``prior_dependent``; safety
    benchmarks first, then by area.
    """
    frame = pd.DataFrame(
        {
            "benchmark": ds["benchmark"].values,
            "display_name": ds["display_name"].values,
            "role": ds["role"].values,
            "area": ds["area"].values,
        }
    )
    for s in ds["prior_scale"].values:
        for var in ("rho_median", "rho_hdi_low", "rho_hdi_high", "p_separable", "p_positive"):
            frame[f"{var}@{s:g}"] = ds[var].sel(prior_scale=s).values
    for var in (
        "rho_median_shift",
        "p_separable_shift",
        "separable_depends_on_prior",
        "sign_depends_on_prior",
        "prior_dependent",
    ):
        frame[var] = ds[var].values
    frame["_cap"] = frame["role"] == "capability"
    frame = frame.sort_values(["_cap", "area", "benchmark"])
    return frame.drop(columns="_cap").reset_index(drop=True)


def format_sensitivity(ds: xr.Dataset, *, only_safety: bool = True) -> str:
    """Readable report of :func:`prior_sensitivity` (flagged benchmarks marked ``!``)."""
    table = sensitivity_table(ds)
    if only_safety:
        table = table[table["role"] == "safety"]
    scales = [float(s) for s in ds["prior_scale"].values]
    tau = ds.attrs["tau"]
    width = min(int(table["display_name"].str.len().max()), 40) + 2
    head = f"  {'benchmark':<{width}}" + "".join(f"{f'rho@{s:g}':>9}" for s in scales)
    head += "".join(f"{f'P@{s:g}':>8}" for s in scales) + "  flag"
    dims = int(ds.attrs.get("capability_dims", 1))
    separable = f"P(|rho| < {tau:g})" if dims == 1 else f"P(R < {tau:g})"
    lines = [
        f"Prior sensitivity (prior_scale {', '.join(f'{s:g}' for s in scales)}; reference "
        f"{ds.attrs['reference_scale']:g}); P = {separable}; "
        "! = verdict depends on the prior",
    ]
    if dims > 1:
        lines.append(
            f"R: multiple correlation with all {dims} capability dimensions; rho: with the "
            "general factor alone."
        )
    bad = [f"{s:g}" for s, ok in zip(scales, ds["trustworthy"].values, strict=True) if not ok]
    if bad:
        lines.append(f"Warning: the fits at prior_scale {', '.join(bad)} did not converge cleanly.")
    for area, group in table.groupby("area", sort=False):
        lines += ["", f"== {area} ==", head]
        for _, row in group.iterrows():
            text = f"  {str(row['display_name'])[: width - 2]:<{width}}"
            text += "".join(f"{row[f'rho_median@{s:g}']:>+9.2f}" for s in scales)
            text += "".join(f"{row[f'p_separable@{s:g}']:>8.2f}" for s in scales)
            why = []
            if row["separable_depends_on_prior"]:
                why.append("separability")
            if row["sign_depends_on_prior"]:
                why.append("sign of rho")
            text += f"  {'! ' + ' & '.join(why) if why else ''}"
            lines.append(text.rstrip())
    n = int(table["prior_dependent"].sum())
    lines += [
        "",
        f"{n} of {len(table)} benchmarks have a verdict that depends on the prior"
        + (f": {', '.join(table.loc[table.prior_dependent, 'benchmark'])}" if n else "."),
    ]
    return "\n".join(lines)
