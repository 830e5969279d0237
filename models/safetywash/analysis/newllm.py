"""Score a new LLM against a fitted study without refitting.

Every benchmark parameter of the fit is held at each posterior draw in turn
(:func:`safetywash.analysis.latent.benchmark_parameters`). Given one draw, the new LLM's
latent vector ``u = (theta, a_2, ..., a_K, eta_1, ..., eta_F)`` (general capability, the
further capability axes of a fit with K > 1 capability dimensions, area factors) has a
Gaussian prior (its population's capability distribution, ``Normal(0, 1)`` axes and area
factors) and a Gaussian likelihood, so its posterior given the draw is Gaussian in closed form
(:func:`safetywash.analysis.latent.gaussian_latent_posterior`); one ``u`` is drawn from it
per posterior draw, which gives draws from the posterior of the new LLM's capability given
its scores and the fitted study (the fit's own LLMs are not refitted: the new LLM does not
update the benchmark parameters).

Predicted scores are drawn from the model's predictive distribution
(:mod:`safetywash.model.likelihood`: cell mean plus residual noise) and mapped back to the
benchmark's stored units by the fit's score transform
(:func:`safetywash.inference.fitfile.fitted_transform`), clipped to the declared range of
valid values. Scores are read and checked by :mod:`safetywash.analysis.newscores`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.analysis.intervals import SAMPLE_DIMS, percent
from safetywash.analysis.latent import (
    BenchmarkParameters,
    benchmark_parameters,
    capability_prior,
    default_population,
    gaussian_latent_posterior,
    latent_prior,
)
from safetywash.inference.fitfile import benchmark_table, fitted_transform
from safetywash.model.axes import AXIS_DIM
from safetywash.model.likelihood import cell_mean, cell_sd, predictive_draws
from safetywash.model.transform import ScoreTransform

#: Probability of the equal-tailed intervals of a new LLM's capability and predictions.
DEFAULT_PREDICTION_PROB = 0.9


def _check_scores(scores: pd.Series, table: pd.DataFrame) -> None:
    unknown = [k for k in scores.index if k not in table.index]
    if unknown:
        raise ValueError(f"benchmarks {unknown} are not in the fit")
    if scores.empty or not np.isfinite(scores.to_numpy(dtype=float)).all():
        raise ValueError("scores must be a non-empty series of finite numbers")


def _latent_draws(
    dt: xr.DataTree,
    params: BenchmarkParameters,
    y: np.ndarray,
    idx: np.ndarray,
    population: str,
    rng: np.random.Generator,
    group: str,
) -> np.ndarray:
    """One draw of the new LLM's latent vector per posterior draw, shape ``(S, k)``."""
    pop_mean, pop_sd = capability_prior(dt, population, group=group)
    prior_mean, prior_sd = latent_prior(params, pop_mean, pop_sd)
    mean, cov, _ = gaussian_latent_posterior(
        y,
        params.intercept[:, idx],
        params.design(idx),
        params.residual_sd[:, idx],
        prior_mean,
        prior_sd,
    )
    chol = np.linalg.cholesky(cov)
    return mean + np.einsum("skl,sl->sk", chol, rng.standard_normal(mean.shape))


def _predicted_scores(
    params: BenchmarkParameters,
    u: np.ndarray,
    transform: ScoreTransform,
    rng: np.random.Generator,
) -> np.ndarray:
    """Posterior predictive scores of every benchmark in stored units, shape ``(S, B)``."""
    bench_idx = np.arange(len(params.benchmarks))
    llm_idx = np.zeros(len(bench_idx), dtype=np.int64)  # the new LLM is the only one
    terms = {}
    if params.axes:
        terms = {"axis_loading": params.axis_loading, "axis_score": u[:, None, params.axis_columns]}
    if params.factors:
        terms = {
            **terms,
            "factor_loading": params.factor_loading,
            "area_factor": u[:, None, params.factor_columns],
            # benchmarks without a factor have loading 0: any factor index will do
            "cell_factor": np.maximum(params.factor_of, 0),
        }
    mu = cell_mean(params.intercept, params.loading, u[:, :1], llm_idx, bench_idx, **terms)
    y_new = predictive_draws(mu, cell_sd(params.residual_sd, bench_idx), rng)
    return transform.inverse(y_new, transform.positions(params.benchmarks), clip=True)


def score_new_llm(
    dt: xr.DataTree,
    scores: pd.Series,
    *,
    population: str | None = None,
    ci_prob: float = DEFAULT_PREDICTION_PROB,
    seed: int = 0,
    group: str = "posterior",
) -> xr.Dataset:
    """Posterior of a new LLM's capability and its predicted scores, without refitting.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    scores : pandas.Series
        Raw (stored-unit) scores indexed by benchmark key, e.g. from
        :func:`safetywash.analysis.newscores.validate_new_scores`. Keys must be benchmarks
        of the fit.
    population : str, optional
        The new LLM's population (its capability prior); default the fit's only one.
    ci_prob : float
        Probability of the equal-tailed intervals (quantiles commute with the monotone
        back-transform to stored units, so the bounds are the same on either scale).
    seed : int
        Seed of the draws of the latent vector and of the residual noise.
    group : str
        Group holding the fit's draws.

    Returns
    -------
    xarray.Dataset
        ``capability`` (chain, draw): draws of the new LLM's capability ``theta`` (on the
        fit's capability scale); ``capability_median``, ``capability_low``,
        ``capability_high``; ``capability_share_below``: posterior mean share of the
        fitted LLMs with lower capability; ``area_factor`` (chain, draw, factor) with area
        factors; with K > 1 capability dimensions ``axis_score`` (chain, draw,
        capability_axis), the new LLM's position on the further capability axes (on the
        fit's oriented axes), and its ``axis_score_median``, ``axis_score_low``,
        ``axis_score_high``; over ``benchmark``: ``observed`` (given raw value, NaN if absent),
        ``predicted`` (chain, draw, benchmark) posterior predictive in stored units,
        ``predicted_median``, ``predicted_low``, ``predicted_high``; coordinates
        ``display_name``, ``role``, ``area``, ``is_observed``.
    """
    if not 0 < ci_prob < 1:
        raise ValueError("ci_prob must be between 0 and 1")
    table = benchmark_table(dt)
    _check_scores(scores, table)
    population = str(population) if population else default_population(dt)
    params = benchmark_parameters(dt, group=group)
    keys = params.benchmarks
    table = table.loc[keys]
    given = [k for k in keys if k in scores.index]
    idx = np.array([keys.index(k) for k in given], dtype=np.int64)
    transform = fitted_transform(dt)
    y = transform.forward(scores.loc[given].to_numpy(dtype=float), transform.positions(given))
    rng = np.random.default_rng(seed)
    u = _latent_draws(dt, params, y, idx, population, rng, group)
    predicted = _predicted_scores(params, u, transform, rng)
    out = _result(dt, params, u, predicted, scores.reindex(keys), table, ci_prob, group)
    out.attrs = {
        "ci_prob": ci_prob,
        "population": population,
        "seed": seed,
        "n_scores": len(given),
        "interval": "equal-tailed",
    }
    return out


def _result(
    dt: xr.DataTree,
    params: BenchmarkParameters,
    u: np.ndarray,
    predicted: np.ndarray,
    observed: pd.Series,
    table: pd.DataFrame,
    ci_prob: float,
    group: str,
) -> xr.Dataset:
    """The :func:`score_new_llm` dataset from the latent and predictive draws."""
    keys = params.benchmarks
    shape = (params.chains, params.draws)
    theta = u[:, 0]
    lo_q, hi_q = (1 - ci_prob) / 2, (1 + ci_prob) / 2
    observed = observed.to_numpy(dtype=float)
    out = xr.Dataset(
        {
            "capability": (SAMPLE_DIMS, theta.reshape(shape)),
            "capability_median": np.median(theta),
            "capability_low": np.quantile(theta, lo_q),
            "capability_high": np.quantile(theta, hi_q),
            "capability_share_below": float((params.capability < theta[:, None]).mean()),
            "observed": ("benchmark", observed),
            "predicted": ((*SAMPLE_DIMS, "benchmark"), predicted.reshape(*shape, len(keys))),
            "predicted_median": ("benchmark", np.median(predicted, axis=0)),
            "predicted_low": ("benchmark", np.quantile(predicted, lo_q, axis=0)),
            "predicted_high": ("benchmark", np.quantile(predicted, hi_q, axis=0)),
        },
        coords={
            "chain": dt[group]["chain"].values,
            "draw": dt[group]["draw"].values,
            "benchmark": keys,
            "display_name": ("benchmark", table["display_name"].to_numpy()),
            "role": ("benchmark", table["role"].to_numpy()),
            "area": ("benchmark", table["area"].to_numpy()),
            "is_observed": ("benchmark", np.isfinite(observed)),
        },
    )
    if params.factors:
        out["area_factor"] = (
            (*SAMPLE_DIMS, "factor"),
            u[:, params.factor_columns].reshape(*shape, len(params.factors)),
        )
        out = out.assign_coords(factor=params.factors)
    if params.axes:
        axes = u[:, params.axis_columns]
        out["axis_score"] = ((*SAMPLE_DIMS, AXIS_DIM), axes.reshape(*shape, len(params.axes)))
        out["axis_score_median"] = (AXIS_DIM, np.median(axes, axis=0))
        out["axis_score_low"] = (AXIS_DIM, np.quantile(axes, lo_q, axis=0))
        out["axis_score_high"] = (AXIS_DIM, np.quantile(axes, hi_q, axis=0))
        out = out.assign_coords({AXIS_DIM: params.axes})
    return out


def _axis_lines(result: xr.Dataset, pct: str) -> list[str]:
    """The new LLM's further capability axes, one line (none with one dimension)."""
    if "axis_score" not in result.data_vars:
        return []
    parts = [
        f"{a} {float(result.axis_score_median.sel({AXIS_DIM: a})):+.2f} "
        f"[{float(result.axis_score_low.sel({AXIS_DIM: a})):+.2f}, "
        f"{float(result.axis_score_high.sel({AXIS_DIM: a})):+.2f}]"
        for a in result[AXIS_DIM].values
    ]
    return [
        f"Further capability axes (median, {pct} interval; prior Normal(0, 1), as for every "
        "LLM): " + "; ".join(parts) + "."
    ]


def new_llm_table(result: xr.Dataset) -> pd.DataFrame:
    """Per-benchmark table of a :func:`score_new_llm` result (observed and predicted)."""
    frame = (
        result[["observed", "predicted_median", "predicted_low", "predicted_high"]]
        .reset_coords(["display_name", "role", "area", "is_observed"])
        .to_dataframe()
        .reset_index()
    )
    frame["_cap"] = frame["role"] != "capability"
    frame = frame.sort_values(["is_observed", "_cap", "area", "benchmark"])
    return frame.drop(columns="_cap").reset_index(drop=True)


def format_new_llm(result: xr.Dataset, *, name: str = "the new LLM") -> str:
    """Readable report of a :func:`score_new_llm` result."""
    pct = percent(result.attrs["ci_prob"])
    lines = [
        f"Capability of {name} (population {result.attrs['population']!r}, "
        f"{result.attrs['n_scores']} scores given): median {float(result.capability_median):+.2f}"
        f", {pct} interval [{float(result.capability_low):+.2f}, "
        f"{float(result.capability_high):+.2f}]; more capable than "
        f"{100 * float(result.capability_share_below):.0f}% of the fitted LLMs.",
        *_axis_lines(result, pct),
        "",
        f"Scores given vs what its capability predicts (stored units, median and {pct} interval):",
    ]
    table = new_llm_table(result)
    width = min(int(table["display_name"].str.len().max()), 50) + 2
    for r in table[table["is_observed"]].itertuples():
        where = (
            "above"
            if r.observed > r.predicted_high
            else "below"
            if r.observed < r.predicted_low
            else "within"
        )
        lines.append(
            f"  {r.display_name[: width - 2]:<{width}}{r.observed:>10.4g}  predicted "
            f"{r.predicted_median:.4g} [{r.predicted_low:.4g}, {r.predicted_high:.4g}]: "
            f"{where} ({r.area or r.role})"
        )
    lines += ["", f"Predicted scores on the benchmarks it lacks (median and {pct} interval):"]
    missing = table[~table["is_observed"]]
    for r in missing.itertuples():
        lines.append(
            f"  {r.display_name[: width - 2]:<{width}}{r.predicted_median:>10.4g}"
            f"   [{r.predicted_low:.4g}, {r.predicted_high:.4g}]   ({r.area})"
        )
    if missing.empty:
        lines.append("  (none: every benchmark of the fit was given)")
    return "\n".join(lines)


def new_llm_json(result: xr.Dataset) -> dict:
    """JSON-ready dictionary of a :func:`score_new_llm` result (summaries only)."""
    table = new_llm_table(result)

    def rows(frame: pd.DataFrame) -> list[dict]:
        return [
            {
                "benchmark": r.benchmark,
                "display_name": r.display_name,
                "area": r.area,
                "observed": None if not np.isfinite(r.observed) else float(r.observed),
                "median": float(r.predicted_median),
                "low": float(r.predicted_low),
                "high": float(r.predicted_high),
            }
            for r in frame.itertuples()
        ]

    out = {
        "population": result.attrs["population"],
        "ci_prob": float(result.attrs["ci_prob"]),
        "interval": result.attrs["interval"],
        "capability": {
            "median": float(result.capability_median),
            "low": float(result.capability_low),
            "high": float(result.capability_high),
            "share_of_fitted_llms_below": float(result.capability_share_below),
        },
        "predictions": rows(table[~table["is_observed"]]),
        "observed": rows(table[table["is_observed"]]),
    }
    if "axis_score" in result.data_vars:
        out["capability_axes"] = {
            str(a): {
                "median": float(result.axis_score_median.sel({AXIS_DIM: a})),
                "low": float(result.axis_score_low.sel({AXIS_DIM: a})),
                "high": float(result.axis_score_high.sel({AXIS_DIM: a})),
            }
            for a in result[AXIS_DIM].values
        }
    return out
