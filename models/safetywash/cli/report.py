"""Write the report of a fit: Markdown, self-contained HTML and figures.

Reads RUN/posterior.nc (from 'safetywash fit') and writes RUN/report.md, RUN/report.html
(figures embedded) and figures named <study>_<what>.png/.svg into the figures folder: rho
forest by area, capability ranking, scores against capability, the posterior predictive
check of the benchmark correlation matrix and, for fits with area factors, a loadings
heatmap. The check's replicated scores use the fit's seed + 2.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")

from safetywash.analysis.intervals import CI_PROB
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.cli.common import (
    UsageError,
    add_ci_kind_argument,
    add_ci_prob_argument,
    add_tau_argument,
    command_parser,
    output_dir,
    run_dir,
)
from safetywash.inference.fitfile import benchmark_table, load_fit
from safetywash.report.document import write_report

EXAMPLES = (
    "safetywash report runs/chat",
    "safetywash report runs/chat --tau 0.5 --ci-prob 0.9",
    "safetywash report runs/chat --benchmarks wmdp bbq truthfulqa_mc1",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash report``."""
    parser = command_parser(subparsers, "report", __doc__, EXAMPLES)
    parser.add_argument("run", type=run_dir, metavar="RUN", help="run folder holding posterior.nc")
    parser.add_argument(
        "--figures",
        type=output_dir,
        default=None,
        metavar="DIR",
        help="figures folder (default: RUN/figures, linked from RUN/report.md)",
    )
    add_tau_argument(parser, DEFAULT_TAU)
    add_ci_prob_argument(parser, CI_PROB, "credible interval")
    add_ci_kind_argument(parser)
    parser.add_argument(
        "--benchmarks",
        nargs="+",
        metavar="KEY",
        help="benchmarks for the scores-vs-capability panels (default: safety benchmarks "
        "spanning high and low |rho|)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash report``."""
    dt = load_fit(args.run / "posterior.nc")
    known = list(benchmark_table(dt).index)
    unknown = [b for b in args.benchmarks or [] if b not in known]
    if unknown:
        raise UsageError(f"benchmark(s) {unknown} are not in this fit; choose from {known}")
    md, page, report = write_report(
        dt,
        args.run,
        figures_dir=args.figures,
        tau=args.tau,
        ci_prob=args.ci_prob,
        ci_kind=args.ci_kind,
        benchmarks=args.benchmarks,
    )
    print(report.blocks[1].text)
    print(f"wrote {md} and {page}")
    for png, svg in report.figures.values():
        print(f"wrote {png} and {svg}")
    return 0
