"""Capability-adjusted safety scores: each LLM's score with its capability part removed.

On the model scale an observed (standardised, oriented) score is

.. math::

    y_{ib} = \\alpha_b + \\lambda_b \\theta_i + \\gamma_b \\eta_{i,a(b)} + \\varepsilon_{ib},

so its *capability-adjusted* value is, per posterior draw,

.. math::

    \\tilde y_{ib} = y_{ib} - \\lambda_b \\theta_i
                  = \\alpha_b + \\gamma_b \\eta_{i,a(b)} + \\varepsilon_{ib},

the score the LLM would have had at capability ``theta = 0`` (the capability of the
average fitted LLM; for several populations the average over populations), keeping
everything that is specific to it (area factor and residual). Its posterior reflects the
uncertainty in ``lambda_b`` and ``theta_i``. With K > 1 capability dimensions
(``ModelConfig.capability_dims``) the whole capability part is removed, the further axes'
``sum_k L_{b,k} u_{i,k}`` too: the score at the average fitted LLM's position on every
capability dimension (capability on another axis, coding say, is capability as well).

In the benchmark's own units the adjusted value is the inverse of the fit's transform at
``tilde y``: oriented (higher = safer) units ``center_b + scale_b * tilde y`` for
standardised benchmarks, i.e. the oriented observed score minus
``scale_b * lambda_b * theta_i``; for logit-transformed benchmarks the inverse logit of the
same is mapped into the benchmark's range (so the capability part is removed on the logit
scale). Adjusted values are counterfactual and, for standardised benchmarks, may fall
outside the declared range of valid scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.analysis.intervals import (
    CI_KIND,
    CI_PROB,
    SAMPLE_DIMS,
    check_interval,
    interval_bounds,
    interval_label,
)
from safetywash.analysis.latent import capability_dims_of, sample_values
from safetywash.inference.fitfile import benchmark_table, cell_index, fitted_transform, llm_table
from safetywash.model.axes import AXIS_DIM
from safetywash.model.likelihood import cell_mean

CSV_COLUMNS = (
    "llm",
    "llm_name",
    "benchmark",
    "display_name",
    "area",
    "direction",
    "raw_score",
    "oriented_score",
    "adjusted_median",
    "adjusted_hdi_low",
    "adjusted_hdi_high",
    "adjusted_std_median",
    "adjusted_std_hdi_low",
    "adjusted_std_hdi_high",
    "p_above_capability_prediction",
)


def _chosen_benchmarks(
    table: pd.DataFrame, benchmarks: Sequence[str] | None, roles: Sequence[str]
) -> list[str]:
    keys = list(table.index)
    if benchmarks is None:
        chosen = [k for k in keys if table.loc[k, "role"] in set(roles)]
    else:
        chosen = [str(k) for k in benchmarks]
        unknown = [k for k in chosen if k not in keys]
        if unknown:
            raise ValueError(f"benchmarks {unknown} are not in the fit")
    if not chosen:
        raise ValueError(f"no benchmark with role in {list(roles)} in the fit")
    return chosen


def _axis_terms(post: xr.Dataset) -> dict:
    """Keyword arguments of :func:`cell_mean` for the further capability axes (empty with
    one capability dimension)."""
    if "axis_loading" not in post.data_vars:
        return {}
    return {
        "axis_loading": sample_values(post["axis_loading"], "benchmark", AXIS_DIM),
        "axis_score": sample_values(post["axis_score"], "llm", AXIS_DIM),
    }


def _cell_draws(dt: xr.DataTree, cells: np.ndarray, group: str) -> dict:
    """Per observed cell: the adjusted draws on both scales and ``P(y > prediction)``."""
    llm_idx, bench_idx = (idx[cells] for idx in cell_index(dt))
    post = dt[group]
    intercept = sample_values(post["intercept"], "benchmark")
    loading = sample_values(post["loading"], "benchmark")
    capability = sample_values(post["capability"], "llm")
    axes = _axis_terms(post)
    # what capability predicts: the model's cell mean without the area-factor term
    prediction = cell_mean(intercept, loading, capability, llm_idx, bench_idx, **axes)
    capability_part = prediction - intercept[..., bench_idx]
    if not axes:  # the same numbers as ever with one capability dimension
        capability_part = loading[..., bench_idx] * capability[..., llm_idx]
    y = np.asarray(dt["observed_data"]["score"].values, dtype=float)[cells]
    adjusted_std = y - capability_part
    transform = fitted_transform(dt)
    sign = transform.sign[bench_idx]
    oriented = transform.inverse(adjusted_std, bench_idx) * sign
    # the stored raw scores (no decoder of them short of rebuilding the study)
    raw_obs = np.asarray(dt["constant_data"]["raw_value"].values, dtype=float)[cells]
    dims = (*SAMPLE_DIMS, "cell")
    return {
        "raw_score": raw_obs,
        "oriented_score": raw_obs * sign,
        "p_above_capability_prediction": (y > prediction).mean(axis=(0, 1)),
        "adjusted": xr.DataArray(oriented, dims=dims),
        "adjusted_std": xr.DataArray(adjusted_std, dims=dims),
    }


def _summaries(columns: dict, ci_prob: float, ci_kind: str) -> dict[str, np.ndarray]:
    """Median and interval bounds of the draws among ``columns`` (values kept as they are)."""
    out = {}
    for name, values in columns.items():
        if not isinstance(values, xr.DataArray):
            out[name] = values
            continue
        low, high = interval_bounds(values, ci_prob=ci_prob, ci_kind=ci_kind)
        out[f"{name}_median"] = values.median(SAMPLE_DIMS).values
        out[f"{name}_hdi_low"] = low.values
        out[f"{name}_hdi_high"] = high.values
    return out


def adjusted_scores(
    dt: xr.DataTree,
    *,
    benchmarks: Sequence[str] | None = None,
    roles: Sequence[str] = ("safety",),
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    group: str = "posterior",
) -> xr.Dataset:
    """Posterior of every observed score with its capability part removed.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit (``posterior`` with ``capability`` and ``loading``; ``observed_data`` and
        ``constant_data``).
    benchmarks : sequence of str, optional
        Benchmarks to adjust; default every benchmark whose role is in ``roles``.
    roles : sequence of str
        Roles adjusted when ``benchmarks`` is not given (default safety benchmarks only).
    ci_prob, ci_kind : float, str
        Mass and kind of the intervals (the variables keep the ``hdi`` names).
    group : str
        Group holding the draws.

    Returns
    -------
    xarray.Dataset
        Over ``(llm, benchmark)``, NaN where the LLM has no score: ``raw_score`` (stored
        units), ``oriented_score`` (higher = safer), ``adjusted_median``,
        ``adjusted_hdi_low``, ``adjusted_hdi_high`` (oriented benchmark units, see the
        module docstring), ``adjusted_std_median``, ``adjusted_std_hdi_low``,
        ``adjusted_std_hdi_high`` (model scale: ``y - lambda * theta``, less
        ``sum_k L_k u_k`` too with K > 1 capability dimensions) and
        ``p_above_capability_prediction`` = ``P(y > alpha + lambda * theta (+ L u))``, the
        probability that the LLM scores above what its capability predicts. Coordinates
        ``llm_name``, ``display_name``, ``role``, ``area``, ``direction``; attrs
        ``ci_prob``, ``ci_kind``, ``definition``, ``capability_dims``.
    """
    check_interval(ci_prob, ci_kind)
    table = benchmark_table(dt)
    keys = list(table.index)
    chosen = _chosen_benchmarks(table, benchmarks, roles)
    llms = llm_table(dt)
    llm_idx, bench_idx = cell_index(dt)
    cells = np.flatnonzero(np.isin(bench_idx, [keys.index(k) for k in chosen]))
    columns = _summaries(_cell_draws(dt, cells, group), ci_prob, ci_kind)
    llm_of_cell = llm_idx[cells]
    row_of = {k: j for j, k in enumerate(chosen)}
    col = np.array([row_of[keys[b]] for b in bench_idx[cells]])
    data = {}
    for name in columns:
        grid = np.full((len(llms), len(chosen)), np.nan)
        grid[llm_of_cell, col] = columns[name]
        data[name] = (("llm", "benchmark"), grid)
    sub = table.loc[chosen]
    return xr.Dataset(
        data,
        coords={
            "llm": llms.index.to_numpy(),
            "benchmark": chosen,
            "llm_name": ("llm", llms["display_name"].to_numpy()),
            "display_name": ("benchmark", sub["display_name"].to_numpy()),
            "role": ("benchmark", sub["role"].to_numpy()),
            "area": ("benchmark", sub["area"].to_numpy()),
            "direction": ("benchmark", sub["direction"].to_numpy()),
        },
        attrs={"ci_prob": ci_prob, "ci_kind": ci_kind, **_definition(dt, group)},
    )


def _definition(dt: xr.DataTree, group: str) -> dict:
    """The ``definition`` and ``capability_dims`` attrs of :func:`adjusted_scores`."""
    dims = capability_dims_of(dt, group=group)
    if dims == 1:
        removed = "loading * capability"
    else:
        removed = "(loading * capability + the further capability axes' loadings * scores)"
    return {
        "definition": f"adjusted = observed - {removed} on the model scale "
        "(intercept + area-factor part + residual), mapped back to oriented "
        "benchmark units",
        "capability_dims": dims,
    }


def adjusted_table(ds: xr.Dataset) -> pd.DataFrame:
    """Long table of :func:`adjusted_scores` (observed cells only), columns :data:`CSV_COLUMNS`."""
    frame = ds.reset_coords().to_dataframe().reset_index()
    frame = frame[np.isfinite(frame["raw_score"])]
    order = {k: i for i, k in enumerate(ds["benchmark"].values)}
    frame = frame.assign(_b=frame["benchmark"].map(order)).sort_values(
        ["_b", "adjusted_median"], ascending=[True, False]
    )
    return frame[list(CSV_COLUMNS)].reset_index(drop=True)


def default_plot_benchmark(ds: xr.Dataset, dt: xr.DataTree, *, group: str = "posterior") -> str:
    """The adjusted benchmark most entangled with capability (largest median ``|rho|``;
    with K > 1 capability dimensions, largest median subspace ``R``) among those observed
    for at least half of the LLMs (else among all)."""
    keys = [str(k) for k in ds["benchmark"].values]
    post = dt[group]
    entangled = post["subspace_r"] if "subspace_r" in post.data_vars else np.abs(post["rho"])
    rho = entangled.sel(benchmark=keys).median(SAMPLE_DIMS)
    counts = np.isfinite(ds["raw_score"]).sum("llm")
    enough = counts >= max(3, ds.sizes["llm"] // 2)
    candidates = rho.where(enough) if bool(enough.any()) else rho
    return str(candidates["benchmark"].values[int(np.nanargmax(candidates.values))])


def plot_adjusted(ds: xr.Dataset, benchmark: str, path: str | Path) -> Path:
    """Observed vs capability-adjusted scores of every LLM on one benchmark, as a PNG.

    LLMs are sorted by adjusted median; hollow circles are observed (oriented) scores,
    filled circles the adjusted medians with their interval; the right margin shows each LLM's
    rank among the observed LLMs before and after adjustment.

    Returns
    -------
    pathlib.Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if benchmark not in ds["benchmark"].values:
        raise ValueError(f"benchmark {benchmark!r} is not among the adjusted benchmarks")
    r = ds.sel(benchmark=benchmark)
    keep = np.isfinite(r["raw_score"].values)
    names = r["llm_name"].values[keep]
    obs = r["oriented_score"].values[keep]
    med = r["adjusted_median"].values[keep]
    low, high = r["adjusted_hdi_low"].values[keep], r["adjusted_hdi_high"].values[keep]
    order = np.argsort(med)
    raw_rank = _ranks(obs)
    adj_rank = _ranks(med)
    pos = np.arange(len(order))

    fig, ax = plt.subplots(figsize=(8.5, 0.32 * len(order) + 1.8))
    ax.hlines(pos, low[order], high[order], color="tab:blue", lw=2, alpha=0.6)
    kind = str(ds.attrs.get("ci_kind", CI_KIND)).upper()
    ax.plot(med[order], pos, "o", color="tab:blue", label=f"capability-adjusted (median, {kind})")
    ax.plot(obs[order], pos, "o", mfc="none", color="0.3", label="observed")
    ax.set_yticks(pos, names[order], fontsize=8)
    for p, i in zip(pos, order, strict=True):
        ax.annotate(
            f"{raw_rank[i]} → {adj_rank[i]}",
            xy=(1.01, p),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            va="center",
        )
    label = interval_label(ds.attrs["ci_prob"], ds.attrs.get("ci_kind", CI_KIND))
    ax.set_xlabel(f"{r['display_name'].item()} (oriented: higher = safer)")
    ax.set_title(
        f"Observed vs capability-adjusted scores ({label}); right: rank before → after",
        fontsize=9,
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank 1 = highest (safest) value."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks
