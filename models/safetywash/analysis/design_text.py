"""The readable text and JSON of a comparison of benchmark designs
(:func:`safetywash.analysis.designs.compare_benchmarks`): a plain sentence per pair, the
ranking by posterior mean ``|rho|`` and the matrix of pairwise probabilities; with K > 1
capability dimensions the subspace ``R`` beside every ``|rho|`` result.
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from safetywash.analysis.designs import ABS_RHO_NAMES, SUBSPACE_NAMES
from safetywash.analysis.intervals import interval_label


def _subspace(ds: xr.Dataset) -> bool:
    """Whether the comparison has the subspace ``R`` beside ``|rho|`` (K > 1)."""
    return "subspace_r_mean" in ds.data_vars


def _name(ds: xr.Dataset, key: str) -> str:
    return str(ds["display_name"].sel(benchmark=key).item())


def _interval(ds: xr.Dataset) -> str:
    return interval_label(ds.attrs["ci_prob"], ds.attrs["ci_kind"])


def describe_pair(ds: xr.Dataset, first: str, second: str, *, subspace: bool = False) -> str:
    """A plain sentence: which of two benchmarks is less capability-entangled, how surely.

    The benchmark more probably less entangled is named first. ``subspace``: by the
    subspace ``R`` (all K capability dimensions) instead of ``|rho|``.
    """
    names = SUBSPACE_NAMES if subspace else ABS_RHO_NAMES
    p = float(ds[names[3]].sel(benchmark=first, other=second))
    a, b = (first, second) if p >= 0.5 else (second, first)
    prob = p if p >= 0.5 else 1 - p
    diff = ds.sel(benchmark=a, other=b)
    median, low, high = (float(diff[n]) for n in names[4:])
    by = f"By R (all {ds.attrs['capability_dims']} capability dimensions), " if subspace else ""
    return (
        f"{by}{_name(ds, a)} is less capability-entangled than {_name(ds, b)} with probability "
        f"{format_probability(prob, ds.attrs['n_draws'])} ({'R' if subspace else '|rho|'} "
        f"difference {median:+.2f}, {_interval(ds)} [{low:+.2f}, {high:+.2f}])."
    )


def format_probability(p: float, n_draws: int | None = None) -> str:
    """A posterior probability to two decimals, without rounding a near-certainty to 1.

    With ``n_draws`` draws, 1 (0) means that every (no) draw agreed: shown as
    ``"> 0.99 (all N draws)"`` (``"< 0.01 (no draw of N)"``).
    """
    if n_draws and p >= 1.0:
        return f"> 0.99 (all {n_draws} draws)"
    if n_draws and p <= 0.0:
        return f"< 0.01 (no draw of {n_draws})"
    if 0.99 < p < 1.0:
        return "> 0.99"
    if 0.0 < p < 0.01:
        return "< 0.01"
    return f"{p:.2f}"


def _every_draw_note(p: float, n_draws: int | None) -> str:
    if n_draws and p in (0.0, 1.0):
        return f" ({'every' if p else 'no'} one of the {n_draws} draws)"
    return ""


def _ranked(ds: xr.Dataset) -> list[str]:
    keys = [str(k) for k in ds["benchmark"].values]
    return sorted(keys, key=lambda k: int(ds["rank"].sel(benchmark=k)))


def _pair_lines(ds: xr.Dataset, a: str, b: str, *, subspace: bool = False) -> list[str]:
    d = ds.sel(benchmark=a, other=b)
    names = SUBSPACE_NAMES if subspace else ABS_RHO_NAMES
    prob, median, low, high = (float(d[n]) for n in names[3:])
    what, term = ("R", "R_{}") if subspace else ("|rho|", "|rho_{}|")
    return [
        f"{what} of {_name(ds, a)} ({a}) minus {what} of {_name(ds, b)} ({b}):",
        f"  median {median:+.3f}, {_interval(ds)} [{low:+.3f}, {high:+.3f}]",
        f"  P({term.format(a)} < {term.format(b)}) = {prob:.3f}"
        + _every_draw_note(prob, ds.attrs["n_draws"]),
        "",
    ]


def _ranking_lines(ds: xr.Dataset) -> list[str]:
    ranked = _ranked(ds)
    tau = ds.attrs["tau"]
    width = min(max(len(_name(ds, k)) for k in ranked), 48) + 2
    subspace = _subspace(ds)
    lines = [
        "Ranking (least capability-entangled first):",
        f"  {'#':>2}  {'benchmark':<{width}}{'rho':>7}{'mean |rho|':>11}{f'P(|rho|<{tau:g})':>15}"
        + (f"{'R':>7}{f'P(R<{tau:g})':>11}" if subspace else ""),
    ]
    for k in ranked:
        r = ds.sel(benchmark=k)
        line = (
            f"  {int(r['rank']):>2}  {_name(ds, k)[: width - 2]:<{width}}"
            f"{float(r.rho_median):>+7.2f}{float(r.abs_rho_mean):>11.2f}{float(r.p_separable):>15.2f}"
        )
        if subspace:
            line += f"{float(r.subspace_r_median):>7.2f}{float(r.p_separable_subspace):>11.2f}"
        lines.append(line)
    if subspace:
        lines.append(
            f"R: multiple correlation with all {ds.attrs['capability_dims']} capability "
            "dimensions (median); rho: with the general factor alone."
        )
    return lines


def _matrix_lines(ds: xr.Dataset) -> list[str]:
    ranked = _ranked(ds)
    col = max(max(len(k) for k in ranked), 6) + 1
    lines = [
        "",
        "P(|rho_row| < |rho_column|):",
        " " * (col + 2) + "".join(f"{k[: col - 1]:>{col}}" for k in ranked),
    ]
    for k in ranked:
        cells = []
        for j in ranked:
            v = float(ds["prob_less_entangled"].sel(benchmark=k, other=j))
            cells.append(f"{'-' if np.isnan(v) else f'{v:.2f}':>{col}}")
        lines.append(f"  {k[: col - 1]:<{col}}" + "".join(cells))
    return lines


def format_benchmark_comparison(ds: xr.Dataset) -> str:
    """Readable report of :func:`compare_benchmarks`: pair sentence or ranking and matrix."""
    keys = [str(k) for k in ds["benchmark"].values]
    kinds = (False, True) if _subspace(ds) else (False,)
    lines = []
    if len(keys) == 2:
        lines = [line for kind in kinds for line in _pair_lines(ds, *keys, subspace=kind)]
    lines += _ranking_lines(ds)
    if len(keys) > 2:
        lines += _matrix_lines(ds)
    lines.append("")
    pairs = [keys] if len(keys) == 2 else list(itertools.pairwise(_ranked(ds)))
    lines += [describe_pair(ds, a, b, subspace=kind) for a, b in pairs for kind in kinds]
    return "\n".join(lines)


def _nan_to_none(value: float):
    return None if not np.isfinite(value) else float(value)


def benchmark_comparison_json(ds: xr.Dataset) -> dict:
    """JSON-ready dictionary of :func:`compare_benchmarks`.

    With two benchmarks ``A, B``: ``benchmarks``, ``prob_first_less_entangled``
    (``P(|rho_A| < |rho_B|)``), ``difference_median`` and ``difference_hdi`` (the
    ``ci_kind`` interval) of ``|rho_A| - |rho_B|``, and ``sentence``; always ``ci_prob``,
    ``ci_kind``, ``tau``, ``ranking`` and ``pairwise_prob_less_entangled``
    (``matrix[i][j] = P(|rho_i| < |rho_j|)`` in the order of ``benchmarks``). With K > 1
    capability dimensions ``subspace`` holds the same by the subspace ``R``
    (``capability_dims``, ``by_benchmark`` medians, means and ``P(R < tau)``, the pairwise
    matrix ``P(R_i < R_j)`` and, for two benchmarks, the pair's numbers and sentence).
    """
    keys = [str(k) for k in ds["benchmark"].values]
    out: dict = {"benchmarks": keys}
    if len(keys) == 2:
        a, b = keys
        d = ds.sel(benchmark=a, other=b)
        out.update(
            prob_first_less_entangled=float(d.prob_less_entangled),
            difference_median=float(d.difference_median),
            difference_hdi=[float(d.difference_hdi_low), float(d.difference_hdi_high)],
            sentence=describe_pair(ds, a, b),
        )
    out.update(
        ci_prob=float(ds.attrs["ci_prob"]),
        ci_kind=str(ds.attrs["ci_kind"]),
        tau=float(ds.attrs["tau"]),
        n_draws=int(ds.attrs["n_draws"]),
    )
    out["ranking"] = [
        {
            "rank": int(ds["rank"].sel(benchmark=k)),
            "benchmark": k,
            "display_name": _name(ds, k),
            "rho_median": float(ds["rho_median"].sel(benchmark=k)),
            "abs_rho_mean": float(ds["abs_rho_mean"].sel(benchmark=k)),
            "p_separable": float(ds["p_separable"].sel(benchmark=k)),
        }
        for k in _ranked(ds)
    ]
    matrix = ds["prob_less_entangled"].sel(benchmark=keys, other=keys).values
    out["pairwise_prob_less_entangled"] = {
        "benchmarks": keys,
        "matrix": [[_nan_to_none(v) for v in row] for row in matrix],
    }
    if _subspace(ds):
        out["subspace"] = _subspace_json(ds, keys)
    return out


def _subspace_json(ds: xr.Dataset, keys: list[str]) -> dict:
    """The ``subspace`` entry of :func:`benchmark_comparison_json` (K > 1)."""
    out: dict = {"capability_dims": int(ds.attrs["capability_dims"])}
    if len(keys) == 2:
        d = ds.sel(benchmark=keys[0], other=keys[1])
        out.update(
            prob_first_less_entangled=float(d.prob_less_entangled_subspace),
            difference_median=float(d.subspace_difference_median),
            difference_hdi=[
                float(d.subspace_difference_hdi_low),
                float(d.subspace_difference_hdi_high),
            ],
            sentence=describe_pair(ds, *keys, subspace=True),
        )
    out["by_benchmark"] = {
        k: {
            "subspace_r_median": float(ds["subspace_r_median"].sel(benchmark=k)),
            "subspace_r_mean": float(ds["subspace_r_mean"].sel(benchmark=k)),
            "p_separable": float(ds["p_separable_subspace"].sel(benchmark=k)),
        }
        for k in keys
    }
    matrix = ds["prob_less_entangled_subspace"].sel(benchmark=keys, other=keys).values
    out["pairwise_prob_less_entangled"] = {
        "benchmarks": keys,
        "matrix": [[_nan_to_none(v) for v in row] for row in matrix],
    }
    return out
