"""Plan a new benchmark's evaluation: on which LLMs to run it, and how many are needed.

For each number of LLMs (--n), simulates new safety benchmarks with a true rho drawn from a
stated prior (--prior: uniform on (-1, 1), or the fit's safety benchmarks' rho), scores each
as score-benchmark does (from the fit's capability posterior, without refitting), and
reports the expected width of rho's interval and the probability of a decisive verdict
(P(|rho| < tau) below 0.1 or above 0.9), for LLMs chosen to spread over capability against
LLMs taken at random. --candidates restricts both to the LLMs you can run (a CSV with an LLM
column; names matched to the fit's as in score-benchmark).
"""

from __future__ import annotations

import argparse

from safetywash.analysis.fits import open_fit
from safetywash.analysis.intervals import CI_PROB
from safetywash.analysis.plan import (
    DEFAULT_NS,
    DEFAULT_SIMULATIONS,
    RHO_PRIORS,
    check_plan_fit,
    format_plan,
    plan_evaluation,
    plan_json,
)
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.cli.common import (
    UsageError,
    add_ci_kind_argument,
    add_ci_prob_argument,
    add_seed_argument,
    add_tau_argument,
    command_parser,
    int_at_least,
)
from safetywash.cli.paths import add_run_argument, input_file, output_file, write_json
from safetywash.data.llmnames import describe_matches, match_llms
from safetywash.data.table import read_table
from safetywash.inference.fitfile import llm_table
from safetywash.report.plan_figure import plot_plan

EXAMPLES = (
    "safetywash plan runs/chat",
    "safetywash plan runs/chat --n 4 6 8 12 20 --candidates my_llms.csv --prior fitted "
    "--json plan.json --figure plan.png --seed 1",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash plan``."""
    parser = command_parser(subparsers, "plan", __doc__, EXAMPLES)
    add_run_argument(parser)
    parser.add_argument(
        "--n", nargs="+", type=int_at_least(3), default=list(DEFAULT_NS), metavar="N",
        help="numbers of LLMs to evaluate on (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--candidates", type=input_file, metavar="CSV",
        help="the LLMs you can run: a CSV with an LLM column (default: every fitted LLM)",
    )  # fmt: skip
    parser.add_argument(
        "--llm-column", default="llm", metavar="NAME",
        help="the column of --candidates naming the LLMs (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--prior", choices=RHO_PRIORS, default="uniform",
        help="prior of the new benchmark's rho (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--area", default=None, metavar="AREA",
        help="the new benchmark's safety area (default: an area the fit does not have)",
    )  # fmt: skip
    parser.add_argument(
        "--simulations", type=int_at_least(10), default=DEFAULT_SIMULATIONS, metavar="N",
        help="simulated benchmarks (default: %(default)s)",
    )  # fmt: skip
    add_tau_argument(parser, DEFAULT_TAU)
    add_ci_prob_argument(parser, CI_PROB, "credible interval")
    add_ci_kind_argument(parser)
    add_seed_argument(parser, default=0, help="seed of the simulations (default: %(default)s)")
    parser.add_argument(
        "--encoding", default="utf-8", help="text encoding of --candidates (default: %(default)s)"
    )
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write the plan here")
    parser.add_argument(
        "--figure", type=output_file, metavar="FILE", help="draw the plan here (PNG)"
    )
    return parser


def candidate_llms(args: argparse.Namespace, dt) -> list[str] | None:
    """The fitted LLMs named in ``--candidates`` (printing the matches), or None."""
    if args.candidates is None:
        return None
    table = read_table(args.candidates, required=[args.llm_column], encoding=args.encoding)
    matches = match_llms(
        table[args.llm_column].astype(str).tolist(),
        llm_table(dt),
        source=str(args.candidates),
        lines=table["line"].astype(int).tolist(),
    )
    found = [m.llm for m in matches if m.llm is not None]
    print(f"Candidates in {args.candidates}: {len(found)} of {len(matches)} are LLMs of the fit")
    print("\n".join(describe_matches(matches)))
    if len(found) < max(args.n):
        raise UsageError(
            f"--n {max(args.n)} needs at least as many candidate LLMs of the fit; "
            f"{args.candidates} names {len(found)}"
        )
    return found


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash plan``."""
    dt = open_fit(args.run)
    check_plan_fit(dt)
    candidates = candidate_llms(args, dt)
    result = plan_evaluation(
        dt,
        ns=sorted(set(args.n)),
        candidates=candidates,
        prior=args.prior,
        area=args.area,
        n_simulations=args.simulations,
        tau=args.tau,
        ci_prob=args.ci_prob,
        ci_kind=args.ci_kind,
        seed=args.seed,
    )
    print(format_plan(result))
    if args.json:
        write_json(args.json, plan_json(result, str(args.run)))
    if args.figure:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        plot_plan(result).savefig(args.figure, dpi=130)
        print(f"wrote {args.figure}")
    return 0
