"""Plan a new benchmark's evaluation: on which LLMs, and how many, to run it.

For each number ``n`` of LLMs and two ways of choosing them among the candidates (the fit's
LLMs, or those the user can run),

* ``chosen``: spread over capability, the candidates nearest to ``n`` evenly spaced
  quantiles of posterior mean capability (the least and most capable included);
* ``random``: ``n`` candidates drawn at random, anew in every simulation;

:func:`plan_evaluation` simulates a new benchmark and scores it exactly as
:func:`safetywash.analysis.newbenchmark.score_benchmarks` does (the same cut posterior,
:mod:`safetywash.analysis.cutposterior`): in each simulation a true ``rho`` is drawn from a
stated prior (:data:`RHO_PRIORS`), a true capability vector from the fit's posterior, and
the new benchmark's scores ``rho * theta + sqrt(1 - rho**2) * e`` (unit variance over the
fit's LLMs, as the model's ``rho`` assumes), standardised over the evaluated LLMs as the
model standardises a benchmark. Recorded per (n, design): the expected width of rho's
interval, the probability of a decisive verdict (P(|rho| < tau) above or below
:data:`DECISIVE`) and how often the interval covers the true rho. Every simulation shares
its truth and noise across sizes and designs, so the comparisons are paired.

A fit with more than one capability dimension is refused (:func:`check_plan_fit`), as
scoring is.
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
from safetywash.analysis.intervals import CI_KIND, CI_PROB, interval_bounds, interval_label
from safetywash.analysis.latent import sample_values
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.data.validate import MIN_LLMS_PER_BENCHMARK
from safetywash.inference.fitfile import benchmark_table
from safetywash.model.likelihood import capability_correlation

DEFAULT_NS = (4, 6, 8, 12, 20)
DESIGNS = ("chosen", "random")
#: Priors of the new benchmark's rho: uniform on (-1, 1), or the pooled posterior draws of
#: the fit's safety benchmarks' rho.
RHO_PRIORS = ("uniform", "fitted")
#: A verdict is decisive when P(|rho| < tau) is below the first or above the second.
DECISIVE = (0.1, 0.9)
DEFAULT_SIMULATIONS = 200
#: Posterior draws each simulated benchmark is scored with.
DEFAULT_SCORING_DRAWS = 400


def check_plan_fit(dt: xr.DataTree) -> None:
    """Refuse a fit with more than one capability dimension (ValueError saying what to
    run instead): the plan simulates the one-dimensional cut posterior of scoring."""
    check_one_capability_dimension(dt, "planning a new benchmark's evaluation")


def chosen_llms(mean_capability: pd.Series, n: int) -> list[str]:
    """``n`` LLMs spread over capability: nearest to evenly spaced quantiles of its mean."""
    ordered = mean_capability.sort_values(kind="stable").index.astype(str)
    picks = np.round(np.linspace(0, len(ordered) - 1, n)).astype(int)
    return [ordered[i] for i in picks]


def rho_prior_draws(dt, prior, size: int, rng: np.random.Generator, group: str = "posterior"):
    """Draws of the new benchmark's true rho: ``"uniform"``, ``"fitted"`` or given values."""
    if isinstance(prior, str):
        if prior == "uniform":
            return rng.uniform(-1.0, 1.0, size)
        if prior != "fitted":
            raise ValueError(f"prior must be one of {RHO_PRIORS} or values of rho, not {prior!r}")
        table = benchmark_table(dt)
        safety = [str(k) for k in table.index[table["role"] == "safety"]]
        if not safety:
            raise ValueError("the fit has no safety benchmarks: use the uniform prior")
        pool = sample_values(dt[group]["rho"].sel(benchmark=safety), "benchmark").ravel()
    else:
        pool = np.asarray(prior, dtype=float).ravel()
        if pool.size == 0 or (np.abs(pool) >= 1).any():
            raise ValueError("values of rho must be in (-1, 1)")
    return rng.choice(pool, size)


def describe_prior(prior) -> str:
    """The prior of rho in words (what the command prints)."""
    if isinstance(prior, str) and prior == "uniform":
        return "rho ~ Uniform(-1, 1)"
    if isinstance(prior, str):
        return "rho drawn from the pooled posterior draws of the fit's safety benchmarks' rho"
    return f"rho drawn from {len(np.ravel(prior))} given value(s)"


def _check(ns: Sequence[int], candidates: list[str], fitted: list[str]) -> None:
    unknown = [c for c in candidates if c not in fitted]
    if unknown:
        raise ValueError(f"candidate LLMs {unknown[:5]} are not LLMs of the fit")
    for n in ns:
        if not MIN_LLMS_PER_BENCHMARK <= n <= len(candidates):
            raise ValueError(
                f"cannot evaluate on {n} LLMs: between {MIN_LLMS_PER_BENCHMARK} and the "
                f"{len(candidates)} candidate LLMs"
            )


def plan_evaluation(
    dt: xr.DataTree,
    *,
    ns: Sequence[int] = DEFAULT_NS,
    candidates: Sequence[str] | None = None,
    prior="uniform",
    area: str | None = None,
    n_simulations: int = DEFAULT_SIMULATIONS,
    scoring_draws: int = DEFAULT_SCORING_DRAWS,
    tau: float = DEFAULT_TAU,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    seed: int = 0,
    group: str = "posterior",
) -> xr.Dataset:
    """Expected interval width and chance of a decisive verdict by number of LLMs evaluated.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    ns : sequence of int
        Numbers of LLMs to evaluate the new benchmark on.
    candidates : sequence of str, optional
        Fit LLM ids the benchmark can be run on (default: every fitted LLM).
    prior : {"uniform", "fitted"} or array_like
        Prior of the new benchmark's true rho (:data:`RHO_PRIORS`), or values to draw from.
    area : str, optional
        The new benchmark's safety area (its loading prior, as in scoring); default an area
        the fit does not have.
    n_simulations : int
        Simulated benchmarks (each scored at every size, with both designs).
    scoring_draws : int
        Posterior draws (chosen at random, seeded) each simulated benchmark is scored with.
    tau, ci_prob, ci_kind
        As in :func:`safetywash.analysis.newbenchmark.score_benchmarks`.
    seed : int
        Seed of every random step.
    group : str
        Group holding the fit's draws.

    Returns
    -------
    xarray.Dataset
        Over ``(n, design)``: ``expected_width``, ``width_se``, ``p_decisive``,
        ``coverage``; over ``(simulation, n, design)``: ``width``, ``p_separable``; over
        ``simulation``: ``rho_true``; ``chosen`` (n, rank): the chosen LLMs ("" padded).
        Attrs: ``prior`` (in words), ``tau``, ``ci_prob``, ``ci_kind``, ``seed``,
        ``decisive``, ``loading_prior`` (in words).

    Raises
    ------
    ValueError
        For a fit with more than one capability dimension (:func:`check_plan_fit`), bad
        sizes or candidates.
    """
    check_plan_fit(dt)
    post = dt[group]
    fitted = [str(k) for k in post["capability"]["llm"].values]
    candidates = fitted if candidates is None else [str(c) for c in candidates]
    ns = [int(n) for n in ns]
    _check(ns, candidates, fitted)
    rng = np.random.default_rng(seed)
    capability = sample_values(post["capability"], "llm").reshape(-1, len(fitted))
    cand = np.array([fitted.index(c) for c in candidates])
    mean = pd.Series(capability[:, cand].mean(axis=0), index=candidates)
    chosen = {n: [fitted.index(c) for c in chosen_llms(mean, n)] for n in ns}
    prior_all = new_benchmark_prior(dt, area, rng=rng, group=group)
    use = rng.choice(len(capability), min(scoring_draws, len(capability)), replace=False)
    theta_use, prior_use = capability[use], prior_all.take(use)
    rho_true = rho_prior_draws(dt, prior, n_simulations, rng, group)
    draws = _simulate(capability, theta_use, prior_use, rho_true, chosen, cand, rng)
    out = _summarise(draws, rho_true, ns, chosen, fitted, prior, tau, ci_prob, ci_kind, seed)
    areas = post["area_loading_mean"]["area"].values if "area_loading_mean" in post else []
    known = area in [str(a) for a in areas]
    out.attrs["loading_prior"] = (
        f"the fitted mean loading of area {area!r}" if known else "an area the fit does not have"
    )
    return out


def _simulate(capability, theta_use, prior_use, rho_true, chosen, cand, rng) -> np.ndarray:
    """Draws of rho per (simulation, n, design, scoring draw) for simulated benchmarks."""
    ns = list(chosen)
    draws = np.empty((len(rho_true), len(ns), len(DESIGNS), len(theta_use)))
    for s, rho in enumerate(rho_true):
        truth = capability[rng.integers(len(capability))]
        y_all = rho * truth + np.sqrt(1 - rho**2) * rng.standard_normal(len(truth))
        for i, n in enumerate(ns):
            picks = (chosen[n], rng.choice(cand, n, replace=False))
            for d, idx in enumerate(picks):
                y = y_all[idx]
                y = (y - y.mean()) / y.std()  # the model's standardisation (ddof=0)
                params = cut_posterior(theta_use[:, idx], y, prior_use, rng)
                draws[s, i, d] = capability_correlation(params["loading"], params["residual_sd"])
    return draws


def _summarise(draws, rho_true, ns, chosen, fitted, prior, tau, ci_prob, ci_kind, seed):
    dims = ("simulation", "n", "design")
    rho = xr.DataArray(draws[..., None, :], dims=(*dims, "chain", "draw"))
    low, high = interval_bounds(rho, ci_prob=ci_prob, ci_kind=ci_kind)
    truth = xr.DataArray(rho_true, dims="simulation")
    p_sep = (np.abs(rho) < tau).mean(("chain", "draw"))
    decisive = (p_sep < DECISIVE[0]) | (p_sep > DECISIVE[1])
    width = high - low
    size = max(ns)
    names = np.full((len(ns), size), "", dtype=object)
    for i, n in enumerate(ns):
        names[i, :n] = [fitted[j] for j in chosen[n]]
    out = xr.Dataset(
        {
            "expected_width": width.mean("simulation"),
            "width_se": width.std("simulation") / np.sqrt(width.sizes["simulation"]),
            "p_decisive": decisive.mean("simulation"),
            "coverage": ((low <= truth) & (truth <= high)).mean("simulation"),
            "width": width,
            "p_separable": p_sep,
            "rho_true": truth,
            "chosen": (("n", "rank"), names.astype(str)),
        },
        coords={"n": ns, "design": list(DESIGNS)},
    )
    out.attrs.update(
        prior=describe_prior(prior),
        tau=tau,
        ci_prob=ci_prob,
        ci_kind=ci_kind,
        seed=seed,
        n_simulations=int(draws.shape[0]),
        decisive=list(DECISIVE),
    )
    return out


def format_plan(result: xr.Dataset) -> str:
    """Readable table of a :func:`plan_evaluation` result."""
    label = interval_label(result.attrs["ci_prob"], result.attrs["ci_kind"])
    lo, hi = result.attrs["decisive"]
    lines = [
        f"Prior of the new benchmark's rho: {result.attrs['prior']}; "
        f"{result.attrs['n_simulations']} simulated benchmarks (seed {result.attrs['seed']}), "
        f"each scored with the loading prior of {result.attrs['loading_prior']}.",
        f"Decisive: P(|rho| < {result.attrs['tau']:g}) below {lo:g} or above {hi:g}.",
        "",
        f"{'LLMs':>5}  {'design':<8}{'expected ' + label + ' width':>26}"
        f"{'P(decisive)':>13}{'coverage':>10}",
    ]
    for n in result["n"].values:
        for design in result["design"].values:
            r = result.sel(n=n, design=design)
            lines.append(
                f"{int(n):>5}  {design:<8}{float(r.expected_width):>20.2f} ± "
                f"{float(r.width_se):.2f}{float(r.p_decisive):>13.2f}{float(r.coverage):>10.2f}"
            )
    lines += ["", "Chosen LLMs (spread over posterior mean capability):"]
    for n in result["n"].values:
        names = [str(v) for v in result["chosen"].sel(n=n).values if str(v)]
        lines.append(f"  {int(n):>3}: {', '.join(names)}")
    return "\n".join(lines)


def plan_json(result: xr.Dataset, run: str) -> dict:
    """JSON-ready summary of a :func:`plan_evaluation` result."""
    rows = []
    for n in result["n"].values:
        for design in result["design"].values:
            r = result.sel(n=n, design=design)
            rows.append(
                {
                    "n_llms": int(n),
                    "design": str(design),
                    "expected_width": float(r.expected_width),
                    "width_se": float(r.width_se),
                    "p_decisive": float(r.p_decisive),
                    "coverage": float(r.coverage),
                }
            )
    chosen = {
        str(int(n)): [str(v) for v in result["chosen"].sel(n=n).values if str(v)]
        for n in result["n"].values
    }
    names = ("prior", "loading_prior", "tau", "ci_prob", "ci_kind", "seed")
    attrs = {k: result.attrs[k] for k in names}
    return {"run": run, **attrs, "n_simulations": result.attrs["n_simulations"],
            "decisive": result.attrs["decisive"], "rows": rows, "chosen": chosen}  # fmt: skip
