"""Fit a study; when the first attempt fails its diagnostics at the default tuning, retry once.

What ``safetywash fit`` does at its defaults, and what the trust suite measures. The retry
takes longer tuning and a higher target acceptance (:data:`RETRY_FLAGS`, for geometry that
needs smaller steps). For a sampled-capability fit with a benchmark treated as an almost
perfect measure of capability, or whose capabilities (and so every rho) mixed slowest
(:mod:`safetywash.analysis.troubles`), it integrates capability out; with capability
integrated out it also doubles the draws. The first
attempt's diagnostics and the flags of the retry are recorded in the fit's attrs
(``retried_after``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import xarray as xr

from safetywash.analysis.troubles import (
    RETRY_FLAGS,
    capability_out,
    fit_troubles,
)
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import diagnostics_of, fit_info
from safetywash.inference.sampling import fit
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig

#: Root attr of a retried fit: the first attempt's diagnostics and the retry's flags.
RETRIED_ATTR = "retried_after"
#: A retry with capability integrated out draws this many times the first attempt's draws.
MARGINAL_RETRY_DRAW_FACTOR = 2


def retry_plan(
    first: xr.DataTree, settings: SamplerSettings
) -> tuple[dict[str, str], ModelConfig, SamplerSettings]:
    """The flags, config and settings of the retry after an untrusted ``first`` attempt."""
    info = fit_info(first)
    config = info.model_config
    flags = dict(RETRY_FLAGS)
    sampled = info.capability_mode == "sampled"
    if sampled and not config.factors and capability_out(fit_troubles(first)):
        flags["--capability-mode"] = "marginal"
        config = replace(config, capability="marginal")
    if info.capability_mode == "marginal" or config.capability == "marginal":
        # Capability integrated out: no per-LLM coordinates, so draws are cheap, and what
        # is left after a retry is a slowly mixing spread (R-hat 1.011-1.014, bulk ESS
        # 385-397 on simulated stress cases) whose effective draws grow with the draws.
        flags["--draws"] = str(MARGINAL_RETRY_DRAW_FACTOR * settings.draws)
    settings = replace(
        settings,
        draws=int(flags.get("--draws", settings.draws)),
        tune=int(RETRY_FLAGS["--tune"]),
        target_accept=float(RETRY_FLAGS["--target-accept"]),
    )
    return flags, config, settings


def fit_with_retry(
    study: BenchmarkStudy,
    config: ModelConfig | None = None,
    settings: SamplerSettings | None = None,
    *,
    retry: bool = True,
    announce: Callable[[str], None] | None = None,
    **fit_kwargs,
) -> xr.DataTree:
    """:func:`safetywash.inference.sampling.fit`, retried once when not trusted.

    Parameters
    ----------
    study, config, settings
        As for :func:`~safetywash.inference.sampling.fit`.
    retry : bool
        Retry an untrusted fit (only at the default ``tune`` and ``target_accept``: a user
        who chose them gets what they chose).
    announce : callable, optional
        Called with one line saying why and how the fit is retried.
    **fit_kwargs
        Passed to :func:`~safetywash.inference.sampling.fit` on both attempts.

    Returns
    -------
    xarray.DataTree
        The first attempt when trusted (or not retried), else the retry, with
        ``attrs[RETRIED_ATTR]``: JSON of ``first_attempt`` (its diagnostics) and
        ``retry_flags``.
    """
    settings = settings or SamplerSettings()
    dt = fit(study, config, settings, **fit_kwargs)
    first = diagnostics_of(dt)
    defaults = SamplerSettings()
    at_defaults = (settings.tune, settings.target_accept) == (defaults.tune, defaults.target_accept)
    if first.trustworthy or not retry or not at_defaults:
        return dt
    flags, config, settings = retry_plan(dt, settings)
    if announce is not None:
        text = " ".join(f"{k} {v}" for k, v in flags.items())
        announce(
            f"The fit is not trusted ({'; '.join(first.problems)}); retrying once with {text} "
            "(recorded in the fit; --no-retry turns this off)"
        )
    dt = fit(study, config, settings, **fit_kwargs)
    dt.attrs[RETRIED_ATTR] = json.dumps(
        {"first_attempt": first.to_dict(), "retry_flags": flags}, sort_keys=True
    )
    return dt


def retry_record(dt: xr.DataTree) -> dict | None:
    """``{"first_attempt": ..., "retry_flags": ...}`` of a retried fit, else None."""
    return json.loads(dt.attrs[RETRIED_ATTR]) if RETRIED_ATTR in dt.attrs else None
