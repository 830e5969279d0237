"""Capability-adjusted safety scores of every LLM in a fit (capability part removed).

For each LLM and safety benchmark it scored, the posterior of its score minus
loading * capability (on the model scale: intercept + area-factor part + residual), mapped
back to the benchmark's oriented units (higher = safer): median and credible interval
(--ci-prob, --ci-kind). Writes a long CSV (llm, llm_name, benchmark, display_name, area,
direction, raw_score, oriented_score, adjusted_median, adjusted_hdi_low, adjusted_hdi_high,
the same on the model scale, and P(score above what capability predicts)) and a PNG of
observed vs adjusted scores (and ranks) for one benchmark (default: the most
capability-entangled well-observed one).
"""

from __future__ import annotations

import argparse

from safetywash.analysis.adjusted import (
    adjusted_scores,
    adjusted_table,
    default_plot_benchmark,
    plot_adjusted,
)
from safetywash.analysis.fits import open_fit
from safetywash.analysis.intervals import CI_PROB, interval_label
from safetywash.cli.common import (
    add_ci_kind_argument,
    add_ci_prob_argument,
    check_names,
    command_parser,
)
from safetywash.cli.paths import add_run_argument, output_file, writable_run, write_csv
from safetywash.inference.fitfile import benchmark_table

EXAMPLES = (
    "safetywash adjusted runs/chat",
    "safetywash adjusted runs/chat --csv runs/chat/adjusted_scores.csv "
    "--figure figures/adjusted_wmdp.png --benchmark wmdp --ci-prob 0.94",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash adjusted``."""
    parser = command_parser(subparsers, "adjusted", __doc__, EXAMPLES)
    add_run_argument(parser)
    parser.add_argument(
        "--csv", type=output_file, metavar="FILE", help="CSV (default RUN/adjusted_scores.csv)"
    )
    parser.add_argument(
        "--figure", type=output_file, metavar="FILE", help="PNG of one benchmark's adjusted scores"
    )
    parser.add_argument("--benchmark", metavar="KEY", help="benchmark key for the figure")
    add_ci_prob_argument(parser, CI_PROB, "credible interval")
    add_ci_kind_argument(parser)
    parser.add_argument(
        "--include-capability", action="store_true", help="adjust capability benchmarks too"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash adjusted``."""
    out = args.csv or writable_run(args.run) / "adjusted_scores.csv"
    dt = open_fit(args.run)
    roles = ("safety", "capability") if args.include_capability else ("safety",)
    meta = benchmark_table(dt)
    adjustable = meta.index[meta["role"].isin(roles)]
    where = (
        "a benchmark of this fit" if args.include_capability else "a safety benchmark of this fit"
    )
    check_names(
        [args.benchmark] if args.benchmark else [], adjustable, "benchmark", "--benchmark", where
    )
    ds = adjusted_scores(dt, roles=roles, ci_prob=args.ci_prob, ci_kind=args.ci_kind)
    table = adjusted_table(ds)
    write_csv(out, table)
    print(f"wrote {out} ({len(table)} LLM x benchmark cells, {ds.sizes['benchmark']} benchmarks)")
    benchmark = args.benchmark or default_plot_benchmark(ds, dt)
    sub = table[table["benchmark"] == benchmark]
    label = interval_label(args.ci_prob, args.ci_kind)
    print(f"\n{sub['display_name'].iloc[0]} ({benchmark}), oriented units, {label}:")
    for r in sub.itertuples():
        print(
            f"  {r.llm_name[:32]:<34}observed {r.oriented_score:>9.4g}   adjusted "
            f"{r.adjusted_median:>9.4g} [{r.adjusted_hdi_low:.4g}, {r.adjusted_hdi_high:.4g}]"
        )
    if args.figure:
        path = plot_adjusted(ds, benchmark, args.figure)
        print(f"wrote {path}")
    return 0
