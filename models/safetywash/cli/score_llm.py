"""Score a new LLM against a fitted study without refitting.

SCORES is a CSV with a header 'benchmark,value' and one row per benchmark the LLM was
scored on, in the study's stored units. Holding every benchmark parameter at each posterior
draw, the new LLM's capability has a closed-form Gaussian posterior per draw; the command
prints the posterior of its capability (and its place among the fitted LLMs; with a fit of
K > 1 capability dimensions, its positions on the further capability axes too) and
predicted scores with intervals on the benchmarks it lacks, back in stored units.
"""

from __future__ import annotations

import argparse

from safetywash.analysis.fits import open_fit
from safetywash.analysis.newllm import (
    DEFAULT_PREDICTION_PROB,
    format_new_llm,
    new_llm_json,
    score_new_llm,
)
from safetywash.analysis.newscores import read_new_scores, validate_new_scores
from safetywash.cli.common import (
    add_ci_prob_argument,
    add_seed_argument,
    command_parser,
)
from safetywash.cli.paths import add_run_argument, input_file, output_file, write_json

EXAMPLES = (
    "safetywash score-llm runs/chat --scores new_llm.csv",
    "safetywash score-llm runs/chat --scores new_llm.csv --json out.json --population chat "
    '--ci-prob 0.9 --seed 0 --name "My LLM"',
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash score-llm``."""
    parser = command_parser(subparsers, "score-llm", __doc__, EXAMPLES)
    add_run_argument(parser)
    parser.add_argument(
        "--scores", type=input_file, required=True, metavar="CSV", help="CSV: benchmark,value"
    )
    parser.add_argument(
        "--population", metavar="NAME", help="the LLM's population (default: the fit's only)"
    )
    add_ci_prob_argument(parser, DEFAULT_PREDICTION_PROB, "prediction interval")
    add_seed_argument(parser, default=0, help="seed of the posterior draws (default: %(default)s)")
    parser.add_argument("--name", default="the new LLM", help="name used in the report")
    parser.add_argument(
        "--encoding",
        default="utf-8",
        help="text encoding of the score file, e.g. latin-1 or cp1252 (default: %(default)s)",
    )
    parser.add_argument(
        "--json", type=output_file, metavar="FILE", help="write the result as JSON here"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash score-llm``."""
    dt = open_fit(args.run)
    scores = validate_new_scores(
        read_new_scores(args.scores, encoding=args.encoding), dt, source=str(args.scores)
    )
    result = score_new_llm(
        dt, scores, population=args.population, ci_prob=args.ci_prob, seed=args.seed
    )
    print(format_new_llm(result, name=args.name))
    if args.json:
        write_json(args.json, {"name": args.name, **new_llm_json(result)}, ensure_ascii=False)
    return 0
