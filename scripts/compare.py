"""Compare benchmark designs within a fit, or model structures across fits.

Usage
-----
    python scripts/compare.py runs/chat --benchmarks rmsce_mmlu brier_mmlu --json OUT.json
    python scripts/compare.py runs/chat --benchmarks rmsce_mmlu brier_mmlu rmsce_piqa
    python scripts/compare.py --fits runs/one_factor runs/area_factors [--loo auto] [--json OUT]

Benchmarks: prints the posterior of |rho_A| - |rho_B| (median, HDI), P(|rho_A| < |rho_B|)
and a plain sentence; with more than two benchmarks, a ranking by posterior mean |rho|
(with P(separable)) and the matrix P(|rho_row| < |rho_column|). The JSON holds
{"benchmarks", "prob_first_less_entangled", "difference_median", "difference_hdi", ...}.

Structures: PSIS-LOO of each fit (per score, per LLM, or per LLM with its latent scores
integrated out; --loo auto picks the level with fewest high Pareto k), Pareto k counts,
ELPD differences and, for every area factor of a richer fit, whether a separate factor
for that area is supported (ELPD gain > --se-multiple standard errors). Fits must be of the
same study. Run folders (holding posterior.nc) or .nc files are accepted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetywash.analysis.designs import (
    BenchmarkNotInFitError,
    benchmark_comparison_json,
    compare_benchmarks,
    format_benchmark_comparison,
)
from safetywash.analysis.fits import open_fit
from safetywash.analysis.separability import DEFAULT_CI_PROB, DEFAULT_TAU
from safetywash.analysis.structures import (
    DEFAULT_SE_MULTIPLE,
    LOO_METHODS,
    compare_structures,
    format_structures,
    structures_json,
)
from safetywash.inference.fitfile import FitMismatchError


def _fit_name(path: Path, taken: set[str]) -> str:
    path = Path(path)
    name = path.name if path.is_dir() else path.stem
    if name == "posterior":
        name = path.parent.name
    base, i = name or "fit", 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="run folder or .nc fit (benchmarks)")
    parser.add_argument("--benchmarks", nargs="+", metavar="KEY", help="benchmark keys")
    parser.add_argument("--fits", nargs="+", type=Path, metavar="RUN", help="fits to compare")
    parser.add_argument("--ci-prob", type=float, default=DEFAULT_CI_PROB, help="HDI mass")
    parser.add_argument("--tau", type=float, default=DEFAULT_TAU, help="separability threshold")
    parser.add_argument("--loo", choices=LOO_METHODS, default="auto", help="LOO level")
    parser.add_argument(
        "--se-multiple",
        type=float,
        default=DEFAULT_SE_MULTIPLE,
        help="ELPD gain (in SEs of the difference) needed to call a factor supported",
    )
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)

    if (args.fits is None) == (args.benchmarks is None):
        parser.error("give either RUN --benchmarks KEY KEY [...] or --fits RUN RUN [...]")
    try:
        if args.benchmarks is not None:
            if args.run is None:
                parser.error("--benchmarks needs the run folder (or .nc file) of a fit")
            dt = open_fit(args.run)
            result = compare_benchmarks(dt, args.benchmarks, tau=args.tau, ci_prob=args.ci_prob)
            print(format_benchmark_comparison(result))
            payload = benchmark_comparison_json(result)
        else:
            if args.run is not None:
                parser.error("with --fits, give the fits after --fits only")
            if len(args.fits) < 2:
                parser.error("--fits needs at least two fits")
            taken: set[str] = set()
            fits = {_fit_name(p, taken): open_fit(p) for p in args.fits}
            result = compare_structures(fits, method=args.loo, se_multiple=args.se_multiple)
            print(format_structures(result))
            payload = structures_json(result)
    except (BenchmarkNotInFitError, FitMismatchError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
