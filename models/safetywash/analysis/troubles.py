"""Why a fit is not to be trusted, and what to run instead.

The convergence figures (R-hat, ESS, divergences) say *that* a fit failed; the causes seen
on real tables say *why*: a benchmark treated as an almost perfect measure of capability
(a Heywood case: its residual SD near 0), an area or benchmark with too little data, scores
crowded against a bound, or a sampler that needs longer adaptation. :func:`fit_troubles`
reads a fit (posterior, constant_data, diagnostics) and names each cause it finds, with the
command-line flags that address it; :func:`suggested_flags` merges them into one retry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.analysis.intervals import SAMPLE_DIMS
from safetywash.inference.diagnostics import MAX_RHAT, MIN_ESS, Diagnostics
from safetywash.inference.fitfile import (
    benchmark_table,
    cell_index,
    diagnostics_of,
    fit_info,
    fitted_transform,
)

#: |rho| median (subspace R with more than one capability dimension) at or above which a
#: benchmark is an almost perfect capability measure.
HEYWOOD_RHO = 0.97
#: Fewer observed LLMs than this leave a benchmark's three parameters barely identified.
FEW_OBSERVATIONS = 6
#: Share of a benchmark's scores within ``BOUND_BAND`` of a bound that counts as crowded.
CROWDED_SHARE = 0.25
BOUND_BAND = 0.05
#: Sampler settings of the retry for geometry problems.
RETRY_FLAGS = {"--tune": "2000", "--target-accept": "0.99"}
#: Variables whose slow mixing in a sampled fit points at the per-LLM capabilities: the
#: chains of a sparse table can hold capability in different places, which moves every
#: benchmark's rho together (sparse SBC rounds: R-hat 1.013-1.033 on rho after a plain
#: retry, trusted with capability integrated out), see :func:`_slow_capability`.
CAPABILITY_SPACE = ("rho", "capability")


@dataclass(frozen=True)
class Trouble:
    """One likely cause of an untrusted fit.

    Attributes
    ----------
    subject : str
        The parameter, benchmark or area concerned.
    problem : str
        What is wrong, in plain words.
    flags : dict of str -> str
        Command-line flags to try (``{"--tune": "2000"}``; value ``""`` for a switch).
    advice : str
        What to do when no flag addresses it (empty otherwise).
    kind : str
        ``"near_perfect"`` for a benchmark treated as an almost perfect capability measure,
        ``"capability_space"`` for sampled capabilities that mixed slowest, else empty.
    """

    subject: str
    problem: str
    flags: dict[str, str]
    advice: str = ""
    kind: str = ""

    def line(self) -> str:
        """The cause and remedy on one line."""
        todo = " ".join(f"{k} {v}".strip() for k, v in self.flags.items())
        remedy = f"try {todo}" if todo else self.advice
        return f"{self.subject}: {self.problem}" + (f"; {remedy}" if remedy else "")


def fit_troubles(dt: xr.DataTree) -> list[Trouble]:
    """The likely causes of a fit's failed diagnostics, most specific first.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit (:func:`safetywash.inference.sampling.fit`) with its diagnostics in attrs.

    Returns
    -------
    list of Trouble
        Empty when the fit is trusted.
    """
    diagnostics = diagnostics_of(dt)
    if diagnostics.trustworthy:
        return []
    table = benchmark_table(dt)
    _, bench_idx = cell_index(dt)
    counts = pd.Series(np.bincount(bench_idx, minlength=len(table)), index=table.index)
    found = _heywood(dt, table) + _thin(table, counts) + _crowded(dt, table, bench_idx)
    found += _slow_capability(dt, diagnostics, found)
    found.append(_sampler(diagnostics))
    return found


def slowest_among(diagnostics: Diagnostics, names) -> bool:
    """Whether one of ``names`` is a variable whose R-hat or ESS failed, or, in a fit that
    failed on divergences alone, a variable with the worst R-hat or ESS."""
    slow = []
    if diagnostics.max_rhat > MAX_RHAT:
        slow.append(diagnostics.worst_rhat)
    if diagnostics.min_ess_bulk < MIN_ESS:
        slow.append(diagnostics.worst_ess_bulk)
    if diagnostics.min_ess_tail < MIN_ESS:
        slow.append(diagnostics.worst_ess_tail)
    if not slow:
        # Divergences alone: the slowest variables still say where the geometry is hard
        # (sparse SBC seed 198: 4 divergences, worst R-hat on capability; retried with
        # smaller steps, R-hat 1.013 on rho).
        slow = [diagnostics.worst_rhat, diagnostics.worst_ess_bulk, diagnostics.worst_ess_tail]
    return any(name in names for name in slow)


def suggested_flags(troubles: list[Trouble]) -> dict[str, str]:
    """All troubles' flags merged (later causes do not override earlier ones)."""
    merged: dict[str, str] = {}
    for trouble in troubles:
        for flag, value in trouble.flags.items():
            merged.setdefault(flag, value)
    return merged


def near_perfect(troubles: list[Trouble]) -> bool:
    """Whether a benchmark was treated as an almost perfect measure of capability."""
    return any(t.kind == "near_perfect" for t in troubles)


def capability_out(troubles: list[Trouble]) -> bool:
    """Whether the causes found call for capability integrated out: a near-perfect
    benchmark, or sampled capabilities that mixed slowest."""
    return any(t.kind in ("near_perfect", "capability_space") for t in troubles)


def _slow_capability(dt: xr.DataTree, diagnostics: Diagnostics, found) -> list[Trouble]:
    """A sampled one-factor fit whose failing R-hat or ESS is worst on rho or capability
    (and no near-perfect benchmark to blame already)."""
    info = fit_info(dt)
    if info.capability_mode != "sampled" or info.model_config.factors or near_perfect(found):
        return []
    if not slowest_among(diagnostics, CAPABILITY_SPACE):
        return []
    return [
        Trouble(
            subject="capability",
            problem="the LLMs' capabilities and every rho tied to them mixed slowest (chains "
            "can settle on different capabilities where scores are sparse)",
            flags={"--capability-mode": "marginal", **RETRY_FLAGS},
            kind="capability_space",
        )
    ]


def _heywood(dt: xr.DataTree, table: pd.DataFrame) -> list[Trouble]:
    post = dt["posterior"]
    if "rho" not in post.data_vars:
        return []
    info = fit_info(dt)
    # Integrating capability out removes the per-LLM coordinates that stall next to a
    # near-perfect benchmark; a fit that already did so gets longer tuning only.
    marginal = (
        {}
        if info.capability_mode == "marginal" or info.model_config.factors
        else {"--capability-mode": "marginal"}
    )
    # With more than one capability dimension a benchmark can measure the capability
    # subspace almost perfectly (R -> 1) while its rho on the general factor stays moderate.
    name, corr = ("R", post["subspace_r"]) if "subspace_r" in post else ("|rho|", post["rho"])
    median = np.abs(corr).median(SAMPLE_DIMS).to_series()
    sd = post["residual_sd"].median(SAMPLE_DIMS).to_series() if "residual_sd" in post else {}
    out = []
    for key in median.index[median.to_numpy() >= HEYWOOD_RHO]:
        sd_text = f", residual SD median {sd[key]:.2f}" if key in sd else ""
        out.append(
            Trouble(
                subject=str(key),
                problem=f"{name} median {median[key]:.3f}{sd_text}: treated as an almost perfect "
                "measure of capability (towards a Heywood case, residual SD -> 0, where the "
                "sampler stalls); its number of items (n_items) in the benchmark metadata "
                "puts a measurement-noise floor under its residual",
                flags={**marginal, **RETRY_FLAGS},
                kind="near_perfect",
            )
        )
    return out


def _thin(table: pd.DataFrame, counts: pd.Series) -> list[Trouble]:
    out = []
    safety = table[table["role"] == "safety"]
    for area, size in safety.groupby("area").size().items():
        if size <= 2:
            out.append(
                Trouble(
                    subject=f"area {area}",
                    problem=f"has {size} benchmark{'s' if size > 1 else ''}: its mean loading "
                    "rests on the prior and the other areas",
                    flags={},
                    advice="read its interval with care, or add benchmarks to the area",
                )
            )
    for key in counts.index[counts.to_numpy() < FEW_OBSERVATIONS]:
        out.append(
            Trouble(
                subject=f"benchmark {key}",
                problem=f"has {counts[key]} observations (fewer than {FEW_OBSERVATIONS})",
                flags={},
                advice="score it on more LLMs, or leave it out (role 'excluded' in the metadata)",
            )
        )
    return out


def _crowded(dt: xr.DataTree, table: pd.DataFrame, bench_idx: np.ndarray) -> list[Trouble]:
    treated = fitted_transform(dt).logit  # already given the logistic treatment
    raw = np.asarray(dt["constant_data"]["raw_value"].values, dtype=float)
    out = []
    for b, key in enumerate(table.index):
        if treated[b]:
            continue
        lower = table.at[key, "chance"] if np.isfinite(table.at[key, "chance"]) else None
        lower = table.at[key, "lower"] if lower is None else lower
        upper = table.at[key, "upper"]
        if not (np.isfinite(lower) and np.isfinite(upper)) or upper <= lower:
            continue
        share = (raw[bench_idx == b] - lower) / (upper - lower)
        crowded = np.mean((share <= BOUND_BAND) | (share >= 1 - BOUND_BAND))
        if crowded >= CROWDED_SHARE:
            out.append(
                Trouble(
                    subject=f"benchmark {key}",
                    problem=f"{crowded:.0%} of its scores lie within {BOUND_BAND:.0%} of a "
                    "bound (floor or ceiling effects a linear model cannot follow)",
                    flags={"--transform": "logit"},
                )
            )
    return out


def _sampler(diagnostics: Diagnostics) -> Trouble:
    if diagnostics.divergences or diagnostics.max_rhat > 1.01:
        worst = diagnostics.worst_rhat if diagnostics.max_rhat > 1.01 else "the sampler"
        return Trouble(
            subject=worst,
            problem="the sampler did not explore the posterior well "
            f"(R-hat {diagnostics.max_rhat:.3f}, {diagnostics.divergences} divergences)",
            flags=dict(RETRY_FLAGS),
        )
    return Trouble(
        subject=diagnostics.worst_ess_bulk,
        problem=f"too few effective draws (bulk ESS {diagnostics.min_ess_bulk:.0f}, tail ESS "
        f"{diagnostics.min_ess_tail:.0f})",
        flags={"--draws": "2000"},
    )
