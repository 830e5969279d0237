"""The ``safetywash`` console command: one parser, one subcommand per step of the analysis.

User errors (bad arguments, unknown datasets or benchmarks, missing or malformed files, fits
that do not match) are reported here, in one place, as a single ``error:`` line with exit
status 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from safetywash.analysis.designs import BenchmarkNotInFitError
from safetywash.cli import (
    adjusted,
    baseline,
    compare,
    datasets,
    fit,
    holdout,
    plan,
    report,
    sbc,
    score_benchmark,
    score_llm,
    sensitivity,
)
from safetywash.cli.common import CommandParser, UsageError, add_progress_argument
from safetywash.data.errors import CatalogError, StudyValidationError
from safetywash.data.registry import DatasetError
from safetywash.inference.fitfile import FitMismatchError
from safetywash.inference.netcdf import FitFileError
from safetywash.report.runfolder import OutputFolderError

#: Subcommand modules, in the order ``safetywash --help`` lists them (the flow of a study).
COMMANDS = (datasets, baseline, fit, report, compare, adjusted, score_llm, sensitivity, holdout)
COMMANDS += (sbc,)
COMMANDS += (score_benchmark, plan)

#: Exceptions that mean the input is wrong, not the code.
USER_ERRORS = (
    UsageError,
    StudyValidationError,
    CatalogError,
    FitMismatchError,
    FitFileError,
    OutputFolderError,
    BenchmarkNotInFitError,
    DatasetError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    ValueError,
)

EXAMPLES = (
    "safetywash datasets",
    "safetywash fit --dataset safetywashing --population chat --out runs/chat",
    "safetywash report runs/chat",
    "safetywash compare runs/chat --benchmarks rmsce_mmlu brier_mmlu",
    "safetywash fit --help",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``safetywash`` parser with every subcommand."""
    parser = CommandParser(
        prog="safetywash",
        description="Bayesian analysis of whether AI-safety benchmarks measure safety or "
        "capability.",
        epilog="examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, title="commands"
    )
    for module in COMMANDS:
        command = module.add_parser(subparsers)
        add_progress_argument(command)
        command.set_defaults(handler=module.run)
    return parser


def one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    return text or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``safetywash`` with ``argv`` (default: the process's arguments).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for a user error (one ``error:`` line on stderr)
        and whatever the subcommand returns otherwise (``fit``: 2 for an untrusted fit).
    """
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(None if argv is None else list(argv))
        except SystemExit as done:  # --help
            return done.code if isinstance(done.code, int) else 0
        args.argv = list(sys.argv[1:] if argv is None else argv)
        return args.handler(args)
    except USER_ERRORS as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
