"""The one interval convention of the analyses and reports: probability, kind and label.

Credible intervals default to :data:`CI_PROB` and :data:`CI_KIND` (the names arviz-stats
uses: ``ci_prob``, ``ci_kind``); their bounds come from :func:`interval_bounds` and labels
such as "94% HDI" from :func:`interval_label`, never typed by hand.
"""

from __future__ import annotations

import arviz as az
import xarray as xr

#: The dimensions a posterior's draws run along (ArviZ's ``sample_dims``).
SAMPLE_DIMS = ("chain", "draw")
#: Default probability mass of credible intervals.
CI_PROB = 0.94
#: Default kind: ``"hdi"`` (highest density) or ``"eti"`` (equal-tailed).
CI_KIND = "hdi"
CI_KINDS = ("hdi", "eti")
#: The kinds in words, for running text.
CI_KIND_NAMES = {"hdi": "highest-density", "eti": "equal-tailed"}


def check_interval(ci_prob: float, ci_kind: str) -> None:
    """Raise ``ValueError`` for a probability outside (0, 1) or an unknown kind."""
    if not 0 < ci_prob < 1:
        raise ValueError(f"ci_prob must be between 0 and 1, not {ci_prob}")
    if ci_kind not in CI_KINDS:
        raise ValueError(f"ci_kind must be one of {CI_KINDS}, not {ci_kind!r}")


def percent(prob: float) -> str:
    """A probability as a percentage: ``0.94`` -> ``"94%"``."""
    return f"{100 * prob:g}%"


def interval_label(ci_prob: float = CI_PROB, ci_kind: str = CI_KIND, *, long: bool = False) -> str:
    """The label of an interval, e.g. ``"94% HDI"`` or ``"90% ETI"``.

    With ``long``, in words: ``"94% highest-density interval"``.
    """
    check_interval(ci_prob, ci_kind)
    if long:
        return f"{percent(ci_prob)} {CI_KIND_NAMES[ci_kind]} interval"
    return f"{percent(ci_prob)} {ci_kind.upper()}"


def interval_bounds(
    da: xr.DataArray, ci_prob: float = CI_PROB, ci_kind: str = CI_KIND
) -> tuple[xr.DataArray, xr.DataArray]:
    """Lower and upper bounds of the credible interval of ``da`` over ``(chain, draw)``.

    Parameters
    ----------
    da : xarray.DataArray
        Draws with dims ``chain`` and ``draw`` (and any others, kept).
    ci_prob : float
        Probability mass of the interval.
    ci_kind : {"hdi", "eti"}
        Highest-density (:func:`arviz.hdi`) or equal-tailed (:func:`arviz.eti`).

    Returns
    -------
    low, high : xarray.DataArray
        Over the other dims of ``da``.
    """
    check_interval(ci_prob, ci_kind)
    compute = az.hdi if ci_kind == "hdi" else az.eti
    bounds = compute(da, prob=ci_prob)
    return bounds.sel(ci_bound="lower", drop=True), bounds.sel(ci_bound="upper", drop=True)
