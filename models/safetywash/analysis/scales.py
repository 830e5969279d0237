"""A fit's score scales: stored (raw) units to the model's standardised scale and back.

Per benchmark a fit stores how its scores were transformed (orientation by the catalog's
direction, an optional logit between the floor and the upper bound, then standardisation);
:func:`benchmark_table` reads that from ``constant_data`` and :func:`to_model_scale` /
:func:`to_raw_scale` apply it in either direction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit

from safetywash.model.transform import LOGIT_EPS


def benchmark_table(dt: xr.DataTree) -> pd.DataFrame:
    """Per-benchmark scale metadata of a fit (from ``constant_data``), indexed by key.

    Columns ``display_name``, ``role``, ``area``, ``direction``, ``lower``, ``upper``,
    ``chance``, ``floor`` (the logit's lower end: chance, else lower bound), ``logit``,
    ``sign`` (+1 / -1 for higher / lower is better) and ``center``, ``scale`` (the
    standardisation: model-scale ``y = (oriented transformed value - center) / scale``).
    """
    const = dt["constant_data"].to_dataset()
    keys = np.asarray(const["benchmark"].values, dtype=str)
    frame = pd.DataFrame(index=pd.Index(keys, name="benchmark"))
    for name in ("display_name", "role", "area", "direction"):
        frame[name] = np.asarray(const[f"benchmark_{name}"].values, dtype=str)
    for name in ("lower", "upper", "chance"):
        frame[name] = np.asarray(const[f"benchmark_{name}"].values, dtype=float)
    frame["logit"] = np.asarray(const["logit_transformed"].values, dtype=bool)
    frame["sign"] = np.where(frame["direction"] == "lower", -1.0, 1.0)
    if "logit_floor" in const:
        frame["floor"] = np.asarray(const["logit_floor"].values, dtype=float)
    else:  # fits written before the floor was stored: the rule of that time
        frame["floor"] = frame["chance"].where(frame["chance"].notna(), frame["lower"])
    frame["center"], frame["scale"] = _standardisation(const, frame)
    return frame


def _standardisation(const: xr.Dataset, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per-benchmark centre and SD used to standardise the fit's scores.

    Fits store them as ``transform_center`` / ``transform_sd``. Older fits stored the centre
    as ``benchmark_center`` and meant to store the SD as ``benchmark_scale``, which the
    catalog's (text) ``scale`` column overwrote; for those the SD is recomputed from the
    raw values exactly as :func:`safetywash.model.build.prepare_data` does and checked against
    the saved centres and standardised scores.
    """
    if "transform_center" in const and "transform_sd" in const:
        return (
            np.asarray(const["transform_center"].values, dtype=float),
            np.asarray(const["transform_sd"].values, dtype=float),
        )
    saved_center = np.asarray(const["benchmark_center"].values, dtype=float)
    saved = np.asarray(const["benchmark_scale"].values) if "benchmark_scale" in const else None
    if saved is not None and np.issubdtype(saved.dtype, np.number):
        return saved_center, saved.astype(float)
    raw = np.asarray(const["raw_value"].values, dtype=float)
    b = np.asarray(const["benchmark_index"].values, dtype=np.int64)
    rows = frame.iloc[b]
    oriented = raw * rows["sign"].to_numpy()
    if rows["logit"].any():
        lo, hi = rows["floor"].to_numpy(), rows["upper"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.clip((raw - lo) / (hi - lo), LOGIT_EPS, 1 - LOGIT_EPS)
        oriented = np.where(
            rows["logit"].to_numpy(),
            np.log(share / (1 - share)) * rows["sign"].to_numpy(),
            oriented,
        )
    values = pd.Series(oriented).groupby(b)
    center = values.mean().reindex(range(len(frame))).to_numpy()
    scale = values.std(ddof=0).reindex(range(len(frame))).to_numpy()
    if not np.allclose(center, saved_center, rtol=1e-9, atol=1e-9, equal_nan=True):
        raise ValueError("cannot reconstruct the fit's standardisation: centres differ")
    y = np.asarray(const["transformed_value"].values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        recomputed = (oriented - center[b]) / scale[b]
    if not np.allclose(recomputed, y, rtol=1e-7, atol=1e-9, equal_nan=True):
        raise ValueError("cannot reconstruct the fit's standardisation: scores differ")
    return center, scale


def to_model_scale(raw: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """Map stored (raw) scores to the model scale, as :func:`safetywash.model.build.prepare_data`.

    Parameters
    ----------
    raw : numpy.ndarray
        Shape ``(..., n)`` with the last axis over the rows of ``table``.
    table : pandas.DataFrame
        Rows of :func:`benchmark_table` for those benchmarks.
    """
    sign = table["sign"].to_numpy()
    out = raw * sign
    logit = table["logit"].to_numpy()
    if logit.any():
        lo, hi = table["floor"].to_numpy(), table["upper"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.clip((raw - lo) / (hi - lo), LOGIT_EPS, 1 - LOGIT_EPS)
        out = np.where(logit, np.log(share / (1 - share)) * sign, out)
    return (out - table["center"].to_numpy()) / table["scale"].to_numpy()


def to_raw_scale(y: np.ndarray, table: pd.DataFrame, *, clip: bool = True) -> np.ndarray:
    """Inverse of :func:`to_model_scale`: model-scale values to stored units.

    Logit-transformed values map into ``(floor, upper)``; with ``clip`` the others are
    clipped to the declared range ``[lower, upper]`` (NaN bounds: unbounded).
    """
    sign = table["sign"].to_numpy()
    oriented = y * table["scale"].to_numpy() + table["center"].to_numpy()
    raw = oriented * sign
    logit = table["logit"].to_numpy()
    if logit.any():
        lo, hi = table["floor"].to_numpy(), table["upper"].to_numpy()
        share = expit(oriented * sign)
        raw = np.where(logit, lo + share * (hi - lo), raw)
    if clip:
        lower = np.where(np.isnan(table["lower"].to_numpy()), -np.inf, table["lower"].to_numpy())
        upper = np.where(np.isnan(table["upper"].to_numpy()), np.inf, table["upper"].to_numpy())
        raw = np.clip(raw, lower, upper)
    return raw
