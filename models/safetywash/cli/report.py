"""Write the report of a fit: Markdown, self-contained HTML and figures.

Reads RUN/posterior.nc (from 'safetywash fit') and writes RUN/report.md, RUN/report.html
(figures embedded) and figures named <study>_<what>.png/.svg into the figures folder: rho
forest by area, capability ranking, scores against capability, the posterior predictive
check of the benchmark correlation matrix and, for fits with area factors, a loadings
heatmap. The check's replicated scores use the fit's seed + 2. The report is replaced
whole: the figures are made in a staging folder and moved in, then report.html and last
report.md replace the old ones.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")

from safetywash.analysis.intervals import CI_PROB
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.cli.common import (
    add_ci_kind_argument,
    add_ci_prob_argument,
    add_tau_argument,
    check_names,
    command_parser,
)
from safetywash.cli.paths import output_dir, run_dir, writable_run
from safetywash.inference.fitfile import benchmark_table, load_fit
from safetywash.report.document import FIGURES_FOLDER, write_report
from safetywash.report.runfolder import clean_leftovers

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
    writable_run(args.run)
    figures = args.figures if args.figures is not None else args.run / FIGURES_FOLDER
    for folder in (args.run, figures):
        clean_leftovers(folder, ["report.md", "report.html"])
    dt = load_fit(args.run / "posterior.nc")
    check_names(args.benchmarks or [], benchmark_table(dt).index, "benchmark", "--benchmarks")
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
