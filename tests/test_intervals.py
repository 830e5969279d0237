"""The interval convention (``safetywash.analysis.intervals``)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from safetywash.analysis.intervals import (
    CI_KIND,
    CI_PROB,
    interval_bounds,
    interval_label,
    percent,
)


def _draws(values: np.ndarray) -> xr.DataArray:
    return xr.DataArray(values.reshape(4, -1, values.shape[-1]), dims=("chain", "draw", "x"))


def test_labels_follow_the_convention():
    assert interval_label() == f"{100 * CI_PROB:g}% {CI_KIND.upper()}"
    assert interval_label(0.9, "eti") == "90% ETI"
    assert interval_label(0.5) == "50% HDI"
    assert interval_label() == "94% HDI"
    assert interval_label(0.9, "eti", long=True) == "90% equal-tailed interval"
    assert interval_label(0.8, long=True) == "80% highest-density interval"
    assert percent(0.94) == "94%" and percent(0.5) == "50%"
    with pytest.raises(ValueError, match="ci_prob"):
        interval_label(1.2)
    with pytest.raises(ValueError, match="ci_prob"):
        interval_label(1.5)
    with pytest.raises(ValueError, match="ci_kind"):
        interval_label(0.9, "central")


def test_bounds_are_equal_tailed_or_highest_density():
    rng = np.random.default_rng(0)
    values = np.stack([rng.normal(size=4000), rng.exponential(size=4000)], axis=-1)
    da = _draws(values)
    low, high = interval_bounds(da, 0.8, "eti")
    np.testing.assert_allclose(low.values, np.quantile(values, 0.1, axis=0), rtol=1e-2)
    np.testing.assert_allclose(high.values, np.quantile(values, 0.9, axis=0), rtol=1e-2)
    hdi_low, hdi_high = interval_bounds(da, 0.8)
    # The shortest 80% interval of an exponential starts at 0 and is shorter than the ETI.
    assert hdi_low.values[1] < 0.01
    assert (hdi_high - hdi_low).values[1] < (high - low).values[1]
    # Both hold about 80% of the draws.
    for lo, hi in ((low, high), (hdi_low, hdi_high)):
        inside = ((values >= lo.values) & (values <= hi.values)).mean(axis=0)
        np.testing.assert_allclose(inside, 0.8, atol=0.01)
