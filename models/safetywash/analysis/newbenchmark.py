"""Score a new safety benchmark against a fitted study without refitting.

The new benchmark's scores (a :class:`~safetywash.data.study.BenchmarkStudy` of one or more
safety benchmarks, its LLMs matched to the fit's by
:func:`safetywash.data.llmnames.match_llms` in :func:`align_to_fit`) are put on the model
scale by the rule the model uses for a benchmark (:class:`~safetywash.model.transform.
ScoreTransform`, with the fit's transform kind, fitted on the matched LLMs' scores). Its
intercept, capability loading and residual SD then get the cut posterior of
:mod:`safetywash.analysis.cutposterior`: one draw per posterior draw of the fitted
capability, so the new benchmark does not feed back into capability. Its capability
correlation is the model's, ``rho = lambda / sqrt(lambda**2 + sigma**2)``
(:func:`safetywash.model.likelihood.capability_correlation`): the fit's capability has
unit spread within each population (exactly so for sampled capability), the scale on which
the fit's own ``rho`` is defined. In a fit with area factors the new benchmark loads on
capability only; an area factor it shares counts in its residual, as ``gamma`` does in the
fit's ``rho``.

What the cut leaves out, and a refit that includes the benchmark does not: the benchmark
sharpening capability (a benchmark that loads strongly on capability narrows its own
interval in a refit; Safetywashing chat, WMDP with rho -0.95: the cut's interval is 29%
wider) and moving the hyperparameters of its area (its loading prior is the area's fitted
mean loading, which a refit moves towards the new benchmark: a benchmark unlike the rest of
a small, strongly pooled area gets a rho nearer the area's than a refit gives it).
``benchmarks/bench_score_benchmark.py`` measures both against refits.

A fit with more than one capability dimension is refused
(:func:`safetywash.analysis.cutposterior.check_one_capability_dimension`): add the benchmark
and refit instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.analysis.cutposterior import (
    check_one_capability_dimension,
    cut_posterior,
    new_benchmark_prior,
)
from safetywash.analysis.intervals import (
    CI_KIND,
    CI_PROB,
    SAMPLE_DIMS,
    interval_bounds,
    interval_label,
)
from safetywash.analysis.latent import sample_values
from safetywash.analysis.separability import DEFAULT_TAU, format_shares
from safetywash.data.catalog import proportion_items
from safetywash.data.errors import StudyValidationError
from safetywash.data.llmnames import LlmMatch, match_llms
from safetywash.data.study import BenchmarkStudy
from safetywash.data.validate import MIN_LLMS_PER_BENCHMARK
from safetywash.inference.fitfile import benchmark_table, fit_config, llm_table
from safetywash.model.likelihood import capability_correlation, variance_shares
from safetywash.model.transform import ScoreTransform

#: Parameter draws of :func:`score_benchmarks`, each over (chain, draw, benchmark).
DRAW_VARIABLES = ("rho", "loading", "intercept", "residual_sd")
#: Variance shares per draw (capability = rho**2, benchmark-specific, measurement noise).
SHARE_NAMES = ("capability_share", "specific_share", "noise_share")


def align_to_fit(
    new: BenchmarkStudy,
    dt: xr.DataTree,
    *,
    source: str | None = None,
    lines: Sequence[int] | None = None,
    strict: bool = False,
) -> tuple[BenchmarkStudy, list[LlmMatch]]:
    """The new study on the fit's LLM ids, restricted to the LLMs that matched.

    Parameters
    ----------
    new : BenchmarkStudy
        The new benchmark(s), LLMs named as in the user's file.
    dt : xarray.DataTree
        The fit.
    source, lines, strict
        As in :func:`safetywash.data.llmnames.match_llms` (``lines``: the file line of
        every LLM of ``new.llms``, in order).

    Returns
    -------
    study : BenchmarkStudy
        Scores of the matched LLMs under the fit's LLM ids (benchmarks with fewer than
        :data:`MIN_LLMS_PER_BENCHMARK` of them are kept; :func:`score_benchmarks` refuses
        them by name).
    matches : list of LlmMatch
        One per LLM of ``new``, for :func:`safetywash.data.llmnames.describe_matches`.
    """
    names = [str(n) for n in new.llms.index]
    matches = match_llms(names, llm_table(dt), source=source, lines=lines, strict=strict)
    rename = {m.name: m.llm for m in matches if m.llm is not None}
    if not rename:
        raise StudyValidationError(
            f"none of its {len(names)} LLMs is an LLM of the fit (names are matched by id, "
            "id without organisation, case and display name)",
            source=source or new.name,
        )
    scores = new.scores[new.scores["llm"].isin(rename)].assign(llm=lambda f: f["llm"].map(rename))
    llms = new.llms.loc[list(rename)].rename(index=rename)
    aligned = BenchmarkStudy.from_frames(
        scores, llms, new.benchmarks, name=new.name, source=source or new.name, min_llms=1
    )
    return aligned, matches


def check_new_benchmarks(new: BenchmarkStudy, dt: xr.DataTree) -> None:
    """Raise ``ValueError`` unless every benchmark of ``new`` is a safety benchmark the fit
    does not have and the fit has one capability dimension."""
    dims = fit_config(dt).capability_dims
    check_one_capability_dimension(
        dt,
        "scoring a new benchmark without refitting",
        f"add it to the study and refit (fit --add-scores NEW.csv --capability-dims {dims})",
    )
    fitted = benchmark_table(dt).index
    for key, row in new.benchmarks.iterrows():
        if row["role"] != "safety":
            raise ValueError(
                f"benchmark {key!r} has role {row['role']!r}: only safety benchmarks are scored "
                "without refitting (a capability benchmark changes capability itself: refit)"
            )
        if key in fitted:
            raise ValueError(
                f"benchmark {key!r} is already in the fit (its rho is in the fit's "
                "separability table); give the new benchmark another key"
            )


def model_scale_scores(
    new: BenchmarkStudy, key: str, kind: str, *, llms: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, float]:
    """A benchmark's LLMs, scores on the model scale (by the model's own transform rule,
    fitted on the scores of ``llms`` only, when given) and its model-scale measurement-noise
    variance (NaN unless its score is a proportion of a known number of items)."""
    cells = new.scores[new.scores["benchmark"] == key]
    if llms is not None:
        cells = cells[cells["llm"].isin(set(llms))]
    # Cells of an already validated study: the constructor, which trusts its input, will do.
    one = BenchmarkStudy(cells, new.llms, new.benchmarks.loc[[key]], name=new.name)
    transform = ScoreTransform.fit(one, kind)
    if not transform.scale[0] > 0:
        raise ValueError(f"benchmark {key!r} has the same score on every LLM: nothing to relate")
    scored = one.scores["llm"].astype(str).tolist()
    raw = one.scores["value"].to_numpy(dtype=float)
    index = np.zeros(len(scored), dtype=np.int64)
    noise = transform.noise_variance(raw, index, proportion_items(one.benchmarks))
    return scored, transform.forward(raw, index), float(noise[0])


def score_benchmarks(
    dt: xr.DataTree,
    new: BenchmarkStudy,
    *,
    tau: float = DEFAULT_TAU,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    seed: int = 0,
    group: str = "posterior",
) -> xr.Dataset:
    """Posterior of new safety benchmarks' capability correlation, without refitting.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    new : BenchmarkStudy
        Safety benchmarks not in the fit, its LLMs named by the fit's LLM ids (see
        :func:`align_to_fit`); LLMs the fit does not have are ignored.
    tau : float
        Separability threshold: ``p_separable`` is P(|rho| < tau).
    ci_prob, ci_kind
        The credible interval (as :func:`safetywash.analysis.separability.separability`).
    seed : int
        Seed of the cut-posterior draws.
    group : str
        Group holding the fit's draws.

    Returns
    -------
    xarray.Dataset
        Over ``(chain, draw, benchmark)``: ``rho``, ``loading``, ``intercept``,
        ``residual_sd`` (model scale) and the variance shares ``capability_share`` (rho**2),
        ``specific_share``, ``noise_share`` (NaN unless the score is a proportion of a known
        number of items). Over ``benchmark``: ``n_llms`` (fitted LLMs scored), the shares'
        medians ``*_share_median``,
        ``rho_median``, ``rho_hdi_low``, ``rho_hdi_high``, ``p_separable``,
        ``loading_median``; coordinates ``display_name``, ``area``. Attrs ``tau``,
        ``ci_prob``, ``ci_kind``, ``seed``.
    """
    if not 0 < tau < 1:
        raise ValueError("tau must be between 0 and 1")
    check_new_benchmarks(new, dt)
    post = dt[group]
    fitted = [str(k) for k in post["capability"]["llm"].values]
    position = {k: i for i, k in enumerate(fitted)}
    capability = sample_values(post["capability"], "llm").reshape(-1, len(fitted))
    kind = fit_config(dt).transform
    rng = np.random.default_rng(seed)
    shape = (post.sizes["chain"], post.sizes["draw"])
    keys = [str(k) for k in new.benchmarks.index]
    draws = {name: np.empty((*shape, len(keys))) for name in DRAW_VARIABLES}
    n_llms = np.zeros(len(keys), dtype=np.int64)
    noise = np.full(len(keys), np.nan)
    cells = new.scores[new.scores["llm"].isin(position)]
    for j, key in enumerate(keys):
        inside_n = int((cells["benchmark"] == key).sum())
        if inside_n < MIN_LLMS_PER_BENCHMARK:
            raise ValueError(
                f"benchmark {key!r} is scored on {inside_n} LLM(s) of the fit; at least "
                f"{MIN_LLMS_PER_BENCHMARK} are needed"
            )
        llms, y, noise[j] = model_scale_scores(new, key, kind, llms=list(position))
        area = str(new.benchmarks.loc[key, "area"])
        prior = new_benchmark_prior(dt, area, rng=rng, group=group)
        theta = capability[:, [position[k] for k in llms]]
        params = cut_posterior(theta, y, prior, rng)
        params["rho"] = capability_correlation(params["loading"], params["residual_sd"])
        for name in DRAW_VARIABLES:
            draws[name][..., j] = params[name].reshape(shape)
        n_llms[j] = inside_n
    coords = {"chain": post["chain"].values, "draw": post["draw"].values, "benchmark": keys}
    out = xr.Dataset(
        {name: ((*SAMPLE_DIMS, "benchmark"), v) for name, v in draws.items()}, coords=coords
    )
    out = _add_shares(out, noise)
    return _summarise(out, new, n_llms, tau=tau, ci_prob=ci_prob, ci_kind=ci_kind, seed=seed)


def _add_shares(out: xr.Dataset, noise_variance: np.ndarray) -> xr.Dataset:
    """Variance shares per draw (:func:`safetywash.model.likelihood.variance_shares`).

    The cut residual has no noise floor, so a draw whose residual variance is below the
    known noise counts all of it as noise (specific share 0); NaN noise: not separated.
    """
    noise = xr.DataArray(noise_variance, coords={"benchmark": out["benchmark"]})
    residual = out["residual_sd"]
    floor = np.sqrt(np.minimum(noise.fillna(0.0), residual**2))
    capability, specific, noise_share = variance_shares(out["loading"], residual, floor)
    out["capability_share"] = capability
    out["specific_share"] = specific
    out["noise_share"] = noise_share.where(np.isfinite(noise))
    return out


def _summarise(out: xr.Dataset, new: BenchmarkStudy, n_llms, **attrs) -> xr.Dataset:
    low, high = interval_bounds(out["rho"], ci_prob=attrs["ci_prob"], ci_kind=attrs["ci_kind"])
    out["n_llms"] = ("benchmark", n_llms)
    out["rho_median"] = out["rho"].median(SAMPLE_DIMS)
    out["rho_hdi_low"] = low
    out["rho_hdi_high"] = high
    out["p_separable"] = (np.abs(out["rho"]) < attrs["tau"]).mean(SAMPLE_DIMS)
    out["loading_median"] = out["loading"].median(SAMPLE_DIMS)
    for name in SHARE_NAMES:
        out[f"{name}_median"] = out[name].median(SAMPLE_DIMS)
    meta = new.benchmarks.loc[out["benchmark"].values]
    out = out.assign_coords(
        display_name=("benchmark", meta["display_name"].astype(str).to_numpy()),
        area=("benchmark", meta["area"].astype(str).to_numpy()),
    )
    out.attrs.update(attrs)
    return out


def benchmark_scores_table(result: xr.Dataset) -> pd.DataFrame:
    """One row per scored benchmark: key, name, area, n_llms, rho summaries, p_separable."""
    columns = ["n_llms", "rho_median", "rho_hdi_low", "rho_hdi_high", "p_separable"]
    columns += [f"{name}_median" for name in SHARE_NAMES]
    frame = result[columns].reset_coords(["display_name", "area"]).to_dataframe()
    return frame.reset_index()[["benchmark", "display_name", "area", *columns]]


def format_benchmark_scores(result: xr.Dataset) -> str:
    """Readable table of a :func:`score_benchmarks` result."""
    tau = result.attrs["tau"]
    label = interval_label(result.attrs["ci_prob"], result.attrs["ci_kind"])
    table = benchmark_scores_table(result)
    width = min(max(int(table["display_name"].str.len().max()), 9), 44) + 2
    lines = [
        f"{'benchmark':<{width}}{'area':<24}{'LLMs':>5}{'rho':>7}{label:>17}"
        f"{f'P(|rho|<{tau:g})':>14}  cap/spec/noise"
    ]
    for r in table.itertuples():
        lines.append(
            f"{r.display_name[: width - 2]:<{width}}{r.area[:23]:<24}{r.n_llms:>5}"
            f"{r.rho_median:>+7.2f}   [{r.rho_hdi_low:+.2f}, {r.rho_hdi_high:+.2f}]"
            f"{r.p_separable:>14.2f}  "
            + format_shares(
                r.capability_share_median, r.specific_share_median, r.noise_share_median
            )
        )
    return "\n".join(lines)


def benchmark_scores_json(result: xr.Dataset, run: str) -> dict:
    """``{"run": ..., "benchmarks": {key: {...}}}`` for a :func:`score_benchmarks` result."""
    out = {}
    for r in benchmark_scores_table(result).itertuples():
        out[r.benchmark] = {
            "n_llms": int(r.n_llms),
            "rho_median": float(r.rho_median),
            "rho_interval": [float(r.rho_hdi_low), float(r.rho_hdi_high)],
            "ci_prob": float(result.attrs["ci_prob"]),
            "p_separable": float(r.p_separable),
            "tau": float(result.attrs["tau"]),
        }
    return {"run": run, "benchmarks": out}
