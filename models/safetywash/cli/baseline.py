"""The Safetywashing paper's capabilities-correlation baseline (PCA + Spearman).

Prints a table grouped by safety area; --csv writes it (benchmark, display_name, area,
capabilities_correlation, oriented_correlation, flop_correlation, n_llms) and --json writes
{"population", "variance_explained", "correlations": {benchmark key: r}}.
"""

from __future__ import annotations

import argparse

from safetywash.analysis.baseline import baseline_table, format_baseline, paper_baseline
from safetywash.cli.common import (
    UsageError,
    add_dataset_arguments,
    check_study_arguments,
    command_parser,
    resolve_population,
    study_from_args,
)
from safetywash.cli.paths import output_file, write_csv, write_json

EXAMPLES = (
    "safetywash baseline --dataset safetywashing --population chat "
    "--json runs/baseline_chat.json --csv runs/baseline_chat.csv",
    "safetywash baseline --population base --data-dir ../shared/data",
    "safetywash baseline --scores my_scores.csv --metadata my_meta.csv",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash baseline``."""
    parser = command_parser(subparsers, "baseline", __doc__, EXAMPLES)
    add_dataset_arguments(parser)
    parser.add_argument("--csv", type=output_file, metavar="FILE", help="CSV file for the table")
    parser.add_argument(
        "--json", type=output_file, metavar="FILE", help="JSON file for the correlations"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash baseline``."""
    check_study_arguments(args)
    if args.scores is None and (args.dataset or "safetywashing") == "safetywashing":
        if resolve_population("safetywashing", args.population) not in ("base", "chat"):
            raise UsageError("the paper's baseline is per population: --population base or chat")
    study = study_from_args(args)
    result = paper_baseline(study)
    print(format_baseline(result))
    if study.excluded:
        print(f"Not analysed (catalogued as excluded): {', '.join(study.excluded)}")
    if args.csv:
        write_csv(args.csv, baseline_table(result))
        print(f"wrote {args.csv}")
    if args.json:
        write_json(args.json, result.to_json_dict())
    return 0
