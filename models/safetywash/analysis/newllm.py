"""Score a new LLM against a fitted study without refitting.

Every benchmark parameter of the fit (intercept ``alpha``, capability loading ``lambda``,
residual SD ``sigma`` and, with area factors, the factor loading ``gamma``) is held at each
posterior draw in turn. Given one draw, the new LLM's latent vector
``u = (theta, eta_1, ..., eta_F)`` (capability and area factors) has a Gaussian prior,

* ``theta ~ Normal(m_p, s_p)``, the capability distribution of the LLM's population in that
  draw (0 and 1 for a single population, ``population_mean`` and
  ``exp(population_log_sd)`` otherwise; see :func:`capability_prior`),
* ``eta_f ~ Normal(0, 1)`` (the model's prior on area factors),

and the new scores on the model scale are ``y_b = alpha_b + W_b u + sigma_b e_b`` with
``W_b = (lambda_b, gamma_b [b in area f])``. The likelihood is Gaussian in ``u``, so its
posterior given the draw is Gaussian in closed form (:func:`gaussian_latent_posterior`);
one ``u`` is drawn from it per posterior draw, which gives draws from the posterior of the
new LLM's capability given its scores and the fitted study (the fit's own LLMs are not
refitted: the new LLM does not update the benchmark parameters).

Predicted scores add the residual noise and are mapped back to the benchmark's stored
units (inverse standardisation, then inverse logit for logit-transformed benchmarks, then
the catalog's direction), clipped to the declared range of valid values.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit

from safetywash.data.errors import StudyValidationError
from safetywash.model.transform import LOGIT_EPS

SAMPLE_DIMS = ("chain", "draw")
DEFAULT_PREDICTION_PROB = 0.9
LOG_2PI = float(np.log(2 * np.pi))


# --------------------------------------------------------------------------- fit parameters


@dataclass(frozen=True)
class BenchmarkParameters:
    """Posterior draws of every benchmark parameter, stacked over ``(chain, draw)``.

    Attributes
    ----------
    benchmarks : list of str
        Benchmark keys, in the fit's order.
    intercept, loading, residual_sd, factor_loading : numpy.ndarray
        Shape ``(n_samples, n_benchmarks)`` on the model (standardised) scale;
        ``factor_loading`` is 0 for benchmarks outside factor areas.
    factor_of : numpy.ndarray
        Index of each benchmark's area factor (-1: none), shape ``(n_benchmarks,)``.
    factors : list of str
        Areas with a factor of their own.
    capability : numpy.ndarray
        Fitted capabilities, shape ``(n_samples, n_llms)``.
    chains, draws : int
        Sizes of the sample dimensions.
    """

    benchmarks: list[str]
    intercept: np.ndarray
    loading: np.ndarray
    residual_sd: np.ndarray
    factor_loading: np.ndarray
    factor_of: np.ndarray
    factors: list[str]
    capability: np.ndarray
    chains: int
    draws: int

    @property
    def n_latent(self) -> int:
        """Size of the latent vector: capability plus one per area factor."""
        return 1 + len(self.factors)

    def design(self, benchmark_idx: np.ndarray) -> np.ndarray:
        """Loadings of the latent vector, shape ``(n_samples, len(benchmark_idx), n_latent)``."""
        n = self.intercept.shape[0]
        w = np.zeros((n, len(benchmark_idx), self.n_latent))
        w[:, :, 0] = self.loading[:, benchmark_idx]
        for j, b in enumerate(benchmark_idx):
            f = self.factor_of[b]
            if f >= 0:
                w[:, j, 1 + f] = self.factor_loading[:, b]
        return w


def _stack(da: xr.DataArray, dim: str | None = None) -> np.ndarray:
    """Draws as ``(chain * draw[, dim])``, chain-major (as ``stack(sample=(chain, draw))``)."""
    order = [*SAMPLE_DIMS, dim] if dim else list(SAMPLE_DIMS)
    values = np.asarray(da.transpose(*order).values, dtype=float)
    return values.reshape(values.shape[0] * values.shape[1], *values.shape[2:])


def benchmark_parameters(dt: xr.DataTree, *, group: str = "posterior") -> BenchmarkParameters:
    """Posterior draws of the benchmark parameters of a fit.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit from :func:`safetywash.inference.sampling.fit` (or
        :func:`safetywash.inference.fitfile.load_fit`).
    group : str
        Group holding the draws.

    Returns
    -------
    BenchmarkParameters
    """
    post = dt[group].to_dataset()
    benchmarks = [str(b) for b in post["benchmark"].values]
    n_bench = len(benchmarks)
    intercept = _stack(post["intercept"], "benchmark")
    gamma = np.zeros_like(intercept)
    factor_of = np.full(n_bench, -1, dtype=np.int64)
    factors: list[str] = []
    if "factor_loading" in post.data_vars:
        factors = [str(f) for f in post["area_factor"]["factor"].values]
        area = dict(
            zip(
                np.asarray(dt["constant_data"]["benchmark"].values, dtype=str),
                np.asarray(dt["constant_data"]["benchmark_area"].values, dtype=str),
                strict=True,
            )
        )
        fl = post["factor_loading"]
        values = _stack(fl, "factor_benchmark")
        for j, key in enumerate(np.asarray(fl["factor_benchmark"].values, dtype=str)):
            b = benchmarks.index(key)
            gamma[:, b] = values[:, j]
            factor_of[b] = factors.index(area[key])
    return BenchmarkParameters(
        benchmarks=benchmarks,
        intercept=intercept,
        loading=_stack(post["loading"], "benchmark"),
        residual_sd=_stack(post["residual_sd"], "benchmark"),
        factor_loading=gamma,
        factor_of=factor_of,
        factors=factors,
        capability=_stack(post["capability"], "llm"),
        chains=post.sizes["chain"],
        draws=post.sizes["draw"],
    )


def capability_prior(dt: xr.DataTree, population: str, *, group: str = "posterior"):
    """Per-draw mean and SD of the capability distribution of one population.

    ``population_mean`` and ``exp(population_log_sd)`` when the fit has several
    populations, else 0 and 1: the model's population distribution of capability. (With
    sampled capability the fitted capabilities are normalised to exactly these moments
    within each population; with marginal capability they are the prior's parameters.)

    Returns
    -------
    mean, sd : numpy.ndarray
        Shape ``(n_samples,)``.
    """
    labels = np.asarray(dt["constant_data"]["population_label"].values, dtype=str)
    known = sorted(set(labels))
    if population not in known:
        raise ValueError(f"unknown population {population!r}; the fit has {known}")
    post = dt[group]
    n = post.sizes["chain"] * post.sizes["draw"]
    if "population_mean" in post.data_vars:
        pops = [str(p) for p in post["population_mean"]["population"].values]
        j = pops.index(population)
        mean = _stack(post["population_mean"], "population")[:, j]
        sd = np.exp(_stack(post["population_log_sd"], "population")[:, j])
        return mean, sd
    if len(known) > 1:
        raise ValueError("the fit has several populations but no population parameters")
    return np.zeros(n), np.ones(n)


def default_population(dt: xr.DataTree) -> str:
    """The fit's only population; raises if it has several."""
    labels = sorted(set(np.asarray(dt["constant_data"]["population_label"].values, dtype=str)))
    if len(labels) != 1:
        raise ValueError(f"the fit has several populations {labels}: say which one the LLM is in")
    return str(labels[0])


# --------------------------------------------------------------------------- Gaussian algebra


def gaussian_latent_posterior(
    y: np.ndarray,
    intercept: np.ndarray,
    design: np.ndarray,
    residual_sd: np.ndarray,
    prior_mean: np.ndarray,
    prior_sd: np.ndarray,
):
    """Conjugate posterior of a Gaussian latent vector, one problem per posterior draw.

    Model: ``u ~ Normal(prior_mean, diag(prior_sd^2))`` and
    ``y_j ~ Normal(intercept_j + design_j @ u, residual_sd_j)`` independently.

    Parameters
    ----------
    y : numpy.ndarray
        Observations, shape ``(n,)`` or ``(S, n)``.
    intercept, residual_sd : numpy.ndarray
        Shape ``(S, n)``.
    design : numpy.ndarray
        Shape ``(S, n, k)``.
    prior_mean, prior_sd : numpy.ndarray
        Shape ``(S, k)``.

    Returns
    -------
    mean : numpy.ndarray
        Posterior mean of ``u``, shape ``(S, k)``.
    cov : numpy.ndarray
        Posterior covariance, shape ``(S, k, k)``.
    log_marginal : numpy.ndarray
        ``log p(y)`` with ``u`` integrated out, shape ``(S,)``.
    """
    resid = y - intercept
    prec_y = 1.0 / residual_sd**2
    prior_prec = 1.0 / prior_sd**2
    weighted = design * prec_y[..., None]
    precision = np.einsum("snk,snl->skl", weighted, design)
    k = design.shape[-1]
    precision[:, np.arange(k), np.arange(k)] += prior_prec
    rhs = prior_mean * prior_prec + np.einsum("snk,sn->sk", weighted, resid)
    chol = np.linalg.cholesky(precision)
    mean = np.linalg.solve(precision, rhs[..., None])[..., 0]
    eye = np.broadcast_to(np.eye(k), precision.shape)
    cov = np.linalg.solve(precision, eye)
    logdet_precision = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    # log p(y) = log p(y | u*) + log p(u*) - log p(u* | y) at the posterior mean u*.
    fitted = intercept + np.einsum("snk,sk->sn", design, mean)
    loglik = -0.5 * (LOG_2PI + np.log(residual_sd**2) + (y - fitted) ** 2 * prec_y).sum(-1)
    logprior = -0.5 * (LOG_2PI + np.log(prior_sd**2) + (mean - prior_mean) ** 2 * prior_prec)
    log_post_at_mean = -0.5 * k * LOG_2PI + 0.5 * logdet_precision
    return mean, cov, loglik + logprior.sum(-1) - log_post_at_mean


def latent_prior(params: BenchmarkParameters, mean: np.ndarray, sd: np.ndarray):
    """Prior mean and SD of the latent vector ``(theta, eta...)``, shape ``(S, k)``."""
    n = params.intercept.shape[0]
    prior_mean = np.zeros((n, params.n_latent))
    prior_sd = np.ones((n, params.n_latent))
    prior_mean[:, 0] = mean
    prior_sd[:, 0] = sd
    return prior_mean, prior_sd


# --------------------------------------------------------------------------- scales


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


# --------------------------------------------------------------------------- input


def _close(key: str, keys: list[str]) -> str:
    near = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    return f"; close matches: {near}" if near else ""


def read_new_scores(path: str | Path) -> pd.DataFrame:
    """Read a new LLM's scores: a CSV with columns ``benchmark,value``.

    Returns
    -------
    pandas.DataFrame
        Columns ``benchmark``, ``value`` (as text) and ``line`` (1-based file line; the
        header is line 1). Validate with :func:`validate_new_scores`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no score file at {path}")
    frame = pd.read_csv(
        path, dtype=str, keep_default_na=False, skip_blank_lines=True, encoding="utf-8-sig"
    )
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("benchmark", "value") if c not in frame.columns]
    if missing:
        raise StudyValidationError(
            f"missing column(s) {missing}; the file needs a header 'benchmark,value'",
            source=str(path),
        )
    frame = frame[["benchmark", "value"]].copy()
    frame["line"] = np.arange(2, len(frame) + 2)
    return frame


def validate_new_scores(
    scores: pd.DataFrame, dt: xr.DataTree, *, source: str = "scores"
) -> pd.Series:
    """Check a new LLM's scores against a fit; return the values by benchmark key.

    Parameters
    ----------
    scores : pandas.DataFrame
        Columns ``benchmark`` and ``value`` (numbers or text); an optional ``line`` column
        gives file lines for error messages (else the row number is reported).
    dt : xarray.DataTree
        The fit.
    source : str
        Name of the input in error messages.

    Returns
    -------
    pandas.Series
        Raw values (stored units) indexed by benchmark key, in the fit's benchmark order.

    Raises
    ------
    StudyValidationError
        Naming the line of an unknown benchmark key (with close matches), a duplicate, a
        missing or non-numeric value, or a value outside the benchmark's declared range.
    """
    table = benchmark_table(dt)
    keys = list(table.index)
    excluded = set(json.loads(dt.attrs.get("excluded_benchmarks", "[]")))
    lines = scores["line"].to_numpy() if "line" in scores.columns else np.arange(len(scores)) + 1
    if len(scores) == 0:
        raise StudyValidationError(
            "no scores given: at least one benchmark is needed", source=source
        )
    seen: dict[str, int] = {}
    values = {}
    for (key, value), line in zip(
        scores[["benchmark", "value"]].itertuples(index=False), lines, strict=True
    ):
        line = int(line)
        key = str(key).strip()
        if key not in table.index:
            why = (
                " (it is left out of this fit: a part of an aggregate or excluded by the "
                f"catalog, and the fit is at the {_level(dt)} level)"
                if key in excluded
                else ""
            )
            raise StudyValidationError(
                f"unknown benchmark {key!r}{why}{_close(key, keys)}",
                source=source,
                line=line,
                column=key,
            )
        if key in seen:
            raise StudyValidationError(
                f"benchmark {key!r} given twice (first on line {seen[key]})",
                source=source,
                line=line,
                column=key,
            )
        seen[key] = line
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is None or not np.isfinite(number):
            problem = "missing value" if text == "" else f"value {text!r} is not a finite number"
            raise StudyValidationError(problem, source=source, line=line, column=key)
        lo, hi = table.loc[key, "lower"], table.loc[key, "upper"]
        if (np.isfinite(lo) and number < lo) or (np.isfinite(hi) and number > hi):
            raise StudyValidationError(
                f"value {number:g} is outside the declared range "
                f"[{'unbounded' if np.isnan(lo) else f'{lo:g}'}, "
                f"{'unbounded' if np.isnan(hi) else f'{hi:g}'}]",
                source=source,
                line=line,
                column=key,
            )
        values[key] = number
    return pd.Series(values, dtype=float).reindex([k for k in keys if k in values])


def _level(dt: xr.DataTree) -> str:
    try:
        return json.loads(dt.attrs["model_config"]).get("level", "aggregate")
    except (KeyError, ValueError):
        return "aggregate"


# --------------------------------------------------------------------------- scoring


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
        :func:`validate_new_scores`. Keys must be benchmarks of the fit.
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
        factors; over ``benchmark``: ``observed`` (given raw value, NaN if absent),
        ``predicted`` (chain, draw, benchmark) posterior predictive in stored units,
        ``predicted_median``, ``predicted_low``, ``predicted_high``; coordinates
        ``display_name``, ``role``, ``area``, ``is_observed``.
    """
    if not 0 < ci_prob < 1:
        raise ValueError("ci_prob must be between 0 and 1")
    table = benchmark_table(dt)
    unknown = [k for k in scores.index if k not in table.index]
    if unknown:
        raise ValueError(f"benchmarks {unknown} are not in the fit")
    if scores.empty or not np.isfinite(scores.to_numpy(dtype=float)).all():
        raise ValueError("scores must be a non-empty series of finite numbers")
    population = str(population) if population else default_population(dt)
    params = benchmark_parameters(dt, group=group)
    keys = params.benchmarks
    table = table.loc[keys]
    given = [k for k in keys if k in scores.index]
    idx = np.array([keys.index(k) for k in given], dtype=np.int64)
    y = to_model_scale(scores.loc[given].to_numpy(dtype=float), table.loc[given])

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
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(cov)
    u = mean + np.einsum("skl,sl->sk", chol, rng.standard_normal(mean.shape))

    all_idx = np.arange(len(keys))
    mu = params.intercept + np.einsum("snk,sk->sn", params.design(all_idx), u)
    y_new = mu + params.residual_sd * rng.standard_normal(mu.shape)
    predicted = to_raw_scale(y_new, table)

    shape = (params.chains, params.draws)
    theta = u[:, 0]
    share_below = float((params.capability < theta[:, None]).mean())
    lo_q, hi_q = (1 - ci_prob) / 2, (1 + ci_prob) / 2
    observed = scores.reindex(keys).to_numpy(dtype=float)
    out = xr.Dataset(
        {
            "capability": (SAMPLE_DIMS, theta.reshape(shape)),
            "capability_median": np.median(theta),
            "capability_low": np.quantile(theta, lo_q),
            "capability_high": np.quantile(theta, hi_q),
            "capability_share_below": share_below,
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
        attrs={
            "ci_prob": ci_prob,
            "population": population,
            "seed": seed,
            "n_scores": len(given),
            "interval": "equal-tailed",
        },
    )
    if params.factors:
        out["area_factor"] = (
            (*SAMPLE_DIMS, "factor"),
            u[:, 1:].reshape(*shape, len(params.factors)),
        )
        out = out.assign_coords(factor=params.factors)
    return out


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
    pct = f"{100 * result.attrs['ci_prob']:g}%"
    lines = [
        f"Capability of {name} (population {result.attrs['population']!r}, "
        f"{result.attrs['n_scores']} scores given): median {float(result.capability_median):+.2f}"
        f", {pct} interval [{float(result.capability_low):+.2f}, "
        f"{float(result.capability_high):+.2f}]; more capable than "
        f"{100 * float(result.capability_share_below):.0f}% of the fitted LLMs.",
        "",
        f"Predicted scores on the benchmarks it lacks (stored units, median and {pct} interval):",
    ]
    table = new_llm_table(result)
    missing = table[~table["is_observed"]]
    width = min(int(table["display_name"].str.len().max()), 50) + 2
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

    return {
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
