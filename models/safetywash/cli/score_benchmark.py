"""Score a new safety benchmark against a fitted study without refitting.

SCORES is a wide CSV: one row per LLM (its name in the --llm-column column), one column per
new benchmark, in the benchmark's own units. Describe the benchmarks with --metadata
META.csv (the catalog format of data/README.md: key, role = safety, area, direction, ...), or
declare every column with --safety COL=AREA (higher is better unless listed in
--lower-is-better). LLM names are matched to the fit's (exact id, id without organisation,
case, display name); the matches are printed. For every new benchmark the command gives its
capability correlation rho (median and interval) and P(|rho| < tau), from the fit's
capability posterior with the new benchmark not feeding back into capability: per posterior
draw, its intercept, loading and residual SD given that draw's capability.
"""

from __future__ import annotations

import argparse

import pandas as pd

from safetywash.analysis.fits import open_fit
from safetywash.analysis.intervals import CI_PROB
from safetywash.analysis.newbenchmark import (
    align_to_fit,
    benchmark_scores_json,
    check_new_benchmarks,
    format_benchmark_scores,
    score_benchmarks,
)
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.cli.common import (
    UsageError,
    add_ci_kind_argument,
    add_ci_prob_argument,
    add_seed_argument,
    add_tau_argument,
    command_parser,
)
from safetywash.cli.paths import add_run_argument, input_file, output_file, write_json
from safetywash.cli.values import UniqueKeys, key_value
from safetywash.data.declare import Declarations
from safetywash.data.llmnames import describe_matches
from safetywash.data.readers import LLM_META_COLUMNS, read_wide_csv
from safetywash.data.study import BenchmarkStudy
from safetywash.data.table import read_table

EXAMPLES = (
    "safetywash score-benchmark runs/chat --scores my_bench.csv --metadata my_bench_meta.csv",
    "safetywash score-benchmark runs/chat --scores my_bench.csv --safety my_refusals=alignment "
    "--lower-is-better my_refusals --llm-column model --json my_bench.json --tau 0.5 --seed 1",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash score-benchmark``."""
    parser = command_parser(subparsers, "score-benchmark", __doc__, EXAMPLES)
    add_run_argument(parser)
    parser.add_argument(
        "--scores", type=input_file, required=True, metavar="CSV",
        help="wide CSV: an LLM column and one column per new benchmark",
    )  # fmt: skip
    parser.add_argument(
        "--metadata", type=input_file, metavar="META.csv",
        help="catalog of the new benchmarks (key, role, area, direction, ...)",
    )  # fmt: skip
    parser.add_argument(
        "--safety", nargs="+", default={}, type=key_value("COL=AREA"),
        action=UniqueKeys, metavar="COL=AREA",
        help="without --metadata: declare every column as a safety benchmark of AREA",
    )  # fmt: skip
    parser.add_argument(
        "--lower-is-better", nargs="+", default=[], metavar="COL",
        help="with --safety: columns where a lower score is better/safer",
    )  # fmt: skip
    parser.add_argument(
        "--llm-column", default="llm", metavar="NAME",
        help="the column of SCORES naming the LLMs (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--strict-names", action="store_true", help="refuse any LLM name the fit does not have"
    )
    add_tau_argument(parser, DEFAULT_TAU)
    add_ci_prob_argument(parser, CI_PROB, "credible interval")
    add_ci_kind_argument(parser)
    add_seed_argument(parser, default=0, help="seed of the posterior draws (default: %(default)s)")
    parser.add_argument(
        "--encoding", default="utf-8", help="text encoding of the CSV files (default: %(default)s)"
    )
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write the result here")
    return parser


def declared_areas(args: argparse.Namespace) -> dict[str, str]:
    """The checks of the declarations that need no file read: ``--safety`` as COL -> AREA."""
    if args.metadata is not None:
        if args.safety or args.lower_is_better:
            raise UsageError("give --metadata or --safety/--lower-is-better, not both")
        return {}
    if not args.safety:
        raise UsageError(
            "the new benchmarks are not described: give --metadata META.csv or "
            "--safety COL=AREA for each column"
        )
    return dict(args.safety)


def flag_catalog(
    columns: list[str], areas: dict[str, str], lower: list[str], *, source: str
) -> pd.DataFrame:
    """The catalog that ``--safety COL=AREA`` and ``--lower-is-better COL`` declare: every
    column of the score file a safety benchmark (:meth:`Declarations.catalog`)."""
    unknown = [c for c in [*areas, *lower] if c not in columns]
    if unknown:
        raise UsageError(f"--safety/--lower-is-better: no column {unknown} in the score file")
    undeclared = [c for c in columns if c not in areas]
    if undeclared:
        raise UsageError(
            f"column(s) {undeclared} of the score file are not declared: give --safety "
            "COL=AREA for each new benchmark, or --metadata META.csv"
        )
    return Declarations(safety=areas, lower_is_better=tuple(lower)).catalog(source)


def read_new_benchmarks(
    args: argparse.Namespace, areas: dict[str, str]
) -> tuple[BenchmarkStudy, list[int]]:
    """The new benchmarks as a study, and the file line of each of its LLMs."""
    names = [args.llm_column, *LLM_META_COLUMNS]
    table = read_table(args.scores, required=[args.llm_column], encoding=args.encoding, names=names)
    metadata = args.metadata
    if metadata is None:
        columns = [c for c in table.columns if c not in (*names, "line")]
        metadata = flag_catalog(columns, areas, args.lower_is_better, source=str(args.scores))
    study = read_wide_csv(args.scores, metadata, llm_column=args.llm_column, encoding=args.encoding)
    line_of = dict(zip(table[args.llm_column].astype(str), table["line"], strict=True))
    return study, [int(line_of[str(n)]) for n in study.llms.index]


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash score-benchmark``."""
    areas = declared_areas(args)
    new, lines = read_new_benchmarks(args, areas)
    dt = open_fit(args.run)
    check_new_benchmarks(new, dt)
    aligned, matches = align_to_fit(
        new, dt, source=str(args.scores), lines=lines, strict=args.strict_names
    )
    matched = sum(m.llm is not None for m in matches)
    print(f"LLM names of {args.scores}: {matched} of {len(matches)} matched LLMs of the fit")
    print("\n".join(describe_matches(matches)))
    result = score_benchmarks(
        dt, aligned, tau=args.tau, ci_prob=args.ci_prob, ci_kind=args.ci_kind, seed=args.seed
    )
    print()
    print(format_benchmark_scores(result))
    if args.json:
        write_json(args.json, benchmark_scores_json(result, str(args.run)), ensure_ascii=False)
    return 0
