"""Compare benchmark designs within a fit, or model structures across fits.

Benchmarks (RUN --benchmarks A B [C ...]): prints the posterior of |rho_A| - |rho_B|
(median, credible interval), P(|rho_A| < |rho_B|) and a plain sentence; with more than
two benchmarks, a ranking by posterior mean |rho| (with P(separable)) and the matrix
P(|rho_row| < |rho_column|). --json writes {"benchmarks", "prob_first_less_entangled",
"difference_median", "difference_hdi", ...}.

Structures (--fits RUN RUN [...]): PSIS-LOO of each fit (per score, per LLM, or per LLM
with its latent scores integrated out; --loo auto picks the level with fewest high Pareto
k), Pareto k counts, ELPD differences and, for every area factor of a richer fit, whether a
separate factor for that area is supported (ELPD gain > --se-multiple standard errors); for
fits that differ in their capability dimensions (fit --capability-dims K), each fit's K and
whether the further dimensions are supported, by the same rule.
Fits must be of the same study and different fits (the same fit twice, by path, by
content or by identical study, config, sampler settings and seed, is refused). Fits that
did not pass their convergence diagnostics are marked '!' and get no stacking weight
unless --allow-untrusted (then a warning says so). Run folders (holding posterior.nc) or
.nc files are accepted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetywash.analysis.design_text import benchmark_comparison_json, format_benchmark_comparison
from safetywash.analysis.designs import compare_benchmarks
from safetywash.analysis.fits import open_fit
from safetywash.analysis.intervals import CI_PROB
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.analysis.structure_verdicts import format_structures, structures_json
from safetywash.analysis.structures import (
    DEFAULT_SE_MULTIPLE,
    LOO_METHODS,
    compare_structures,
)
from safetywash.cli.common import (
    UsageError,
    add_ci_kind_argument,
    add_ci_prob_argument,
    add_tau_argument,
    command_parser,
    float_between,
)
from safetywash.cli.paths import fit_path, output_file, write_json
from safetywash.data.files import sha256_file
from safetywash.inference.fitfile import fit_info

EXAMPLES = (
    "safetywash compare runs/chat --benchmarks rmsce_mmlu brier_mmlu --json cmp.json",
    "safetywash compare runs/chat --benchmarks rmsce_mmlu brier_mmlu rmsce_piqa",
    "safetywash compare --fits runs/one_factor runs/area_factors --loo auto --json loo.json",
    "safetywash compare --fits runs/k1 runs/k2 runs/k3 --loo llm-marginal",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash compare``."""
    parser = command_parser(subparsers, "compare", __doc__, EXAMPLES)
    parser.add_argument(
        "run", nargs="?", type=fit_path, metavar="RUN", help="run folder or .nc fit (benchmarks)"
    )
    parser.add_argument("--benchmarks", nargs="+", metavar="KEY", help="benchmark keys")
    parser.add_argument("--fits", nargs="+", type=fit_path, metavar="RUN", help="fits to compare")
    add_ci_prob_argument(parser, CI_PROB, "credible interval")
    add_ci_kind_argument(parser)
    add_tau_argument(parser, DEFAULT_TAU)
    parser.add_argument(
        "--loo", choices=LOO_METHODS, default="auto", help="LOO level (default: %(default)s)"
    )
    parser.add_argument(
        "--se-multiple",
        type=float_between(0.0, low_inclusive=True),
        default=DEFAULT_SE_MULTIPLE,
        help="ELPD gain (in SEs of the difference) needed to call a factor or further "
        "capability dimensions supported (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-untrusted",
        action="store_true",
        help="give stacking weight to fits that did not pass their diagnostics too (--fits)",
    )
    parser.add_argument(
        "--json", type=output_file, metavar="FILE", help="write the result as JSON here"
    )
    return parser


def fit_file(path: Path) -> Path:
    """The ``posterior.nc`` of a run folder, or the ``.nc`` file itself."""
    return path / "posterior.nc" if path.is_dir() else path


def check_different_files(paths: list[Path]) -> None:
    """Refuse the same fit file given twice (same path, or the same bytes)."""
    seen: dict[object, Path] = {}
    for path in paths:
        file = fit_file(path)
        for key in (("path", file.resolve()), ("sha256", sha256_file(file))):
            if key in seen:
                how = "the same file" if key[0] == "path" else "identical copies (same sha256)"
                raise UsageError(
                    f"--fits {seen[key]} and {path} are {how}: a fit compared with itself; "
                    "give fits of different structures"
                )
            seen[key] = path


def fit_name(path: Path, taken: set[str]) -> str:
    """A short unique name for a fit: its run folder's name (or file stem)."""
    path = Path(path)
    name = path.name if path.is_dir() else path.stem
    if name == "posterior":
        name = path.parent.name
    base, i = name or "fit", 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def compare_designs(args: argparse.Namespace) -> dict:
    """RUN --benchmarks: print the comparison; return its JSON payload."""
    if args.run is None:
        raise UsageError("--benchmarks needs the run folder (or .nc file) of a fit")
    dt = open_fit(args.run)
    result = compare_benchmarks(
        dt, args.benchmarks, tau=args.tau, ci_prob=args.ci_prob, ci_kind=args.ci_kind
    )
    print(format_benchmark_comparison(result))
    diagnostics = fit_info(dt).diagnostics
    if diagnostics is not None and not diagnostics.trustworthy:
        print(f"warning: {args.run} is NOT TRUSTED: {diagnostics.verdict()}", file=sys.stderr)
    return benchmark_comparison_json(result)


def compare_fits(args: argparse.Namespace) -> dict:
    """--fits: print the structure comparison; return its JSON payload."""
    if args.run is not None:
        raise UsageError("with --fits, give the fits after --fits only")
    if len(args.fits) < 2:
        raise UsageError("--fits needs at least two fits")
    check_different_files(args.fits)
    taken: set[str] = set()
    fits = {fit_name(p, taken): open_fit(p) for p in args.fits}
    result = compare_structures(
        fits, method=args.loo, se_multiple=args.se_multiple, allow_untrusted=args.allow_untrusted
    )
    print(format_structures(result))
    untrusted = [n for n, ok in zip(fits, result["trustworthy"].values, strict=True) if not ok]
    if untrusted and args.allow_untrusted:
        print(
            f"warning: the stacking weights include untrusted fits ({', '.join(untrusted)}) "
            "because of --allow-untrusted",
            file=sys.stderr,
        )
    return structures_json(result)


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash compare``."""
    if (args.fits is None) == (args.benchmarks is None):
        raise UsageError("give either RUN --benchmarks KEY KEY [...] or --fits RUN RUN [...]")
    payload = compare_designs(args) if args.benchmarks is not None else compare_fits(args)
    if args.json:
        write_json(args.json, payload, ensure_ascii=False)
    return 0
