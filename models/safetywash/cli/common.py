"""Shared command-line plumbing: the parser class, common options, the study they name.

Value checks (:mod:`safetywash.cli.values`) run while the arguments are parsed; checks that
need two arguments together (a population of a dataset, an output folder and
``--overwrite``, a table option without a table) run first thing in a command's ``run``,
before any data is loaded or any sampler starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from safetywash.analysis.intervals import CI_KIND, CI_KINDS
from safetywash.cli.values import (
    MAX_SEED,
    UniqueKeys,
    UsageError,
    check_names,
    closest,
    encoding_name,
    existing_dir,
    float_between,
    int_at_least,
    key_value,
    name_of,
    seed_value,
)
from safetywash.data.combine import add_benchmarks
from safetywash.data.declare import Declarations
from safetywash.data.load import (
    DATASET_POPULATIONS,
    default_data_dir,
    default_population,
    load_dataset,
)
from safetywash.data.registry import DATA_DIR_ENV, dataset_names
from safetywash.data.study import BenchmarkStudy
from safetywash.data.usertable import UserTable, read_user_study

__all__ = [
    "MAX_SEED",
    "CommandParser",
    "UsageError",
    "add_ci_kind_argument",
    "add_ci_prob_argument",
    "add_dataset_arguments",
    "add_overwrite_argument",
    "add_progress_argument",
    "add_sampler_arguments",
    "add_seed_argument",
    "add_table_arguments",
    "add_tau_argument",
    "check_names",
    "check_study_arguments",
    "closest",
    "command_parser",
    "default_data_dir",
    "existing_dir",
    "float_between",
    "int_at_least",
    "name_of",
    "resolve_data_dir_argument",
    "resolve_population",
    "seed_value",
    "study_from_args",
    "user_table",
]


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose errors raise :class:`UsageError` instead of exiting.

    The caller (:func:`safetywash.cli.app.main`) prints the one-line ``error:`` message and
    returns exit status 2, as argparse itself would. Options are never abbreviated, so an
    option name means only itself (``--capability`` is not taken for ``--capability-mode``).
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def command_parser(
    subparsers, name: str, doc: str, examples: Sequence[str]
) -> argparse.ArgumentParser:
    """Add subcommand ``name``: help and description from ``doc``, examples in the epilog.

    Parameters
    ----------
    subparsers
        The object returned by ``ArgumentParser.add_subparsers``.
    name : str
        Subcommand name.
    doc : str
        The subcommand module's docstring: a one-line summary, a blank line, the details.
    examples : sequence of str
        Command lines shown under "examples:" in ``--help``.
    """
    summary = doc.strip().splitlines()[0]
    return subparsers.add_parser(
        name,
        help=summary,
        description=doc.strip(),
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``, which every subcommand accepts (a no-op where nothing shows progress)."""
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="do not show progress bars or per-round progress lines",
    )


# --------------------------------------------------------------------------- options


def add_seed_argument(parser: argparse.ArgumentParser, *, default: int | None, help: str) -> None:
    """``--seed``: an integer in ``[0, MAX_SEED]``."""
    parser.add_argument("--seed", type=seed_value, default=default, help=f"{help}; 0 to {MAX_SEED}")


def add_overwrite_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: replace an existing non-empty output folder."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace {what} if it exists and is not empty (default: refuse)",
    )


def add_sampler_arguments(
    parser: argparse.ArgumentParser,
    *,
    draws: int | None,
    tune: int | None,
    chains: int | None,
    default_note: str = "",
) -> None:
    """``--draws``, ``--tune`` and ``--chains`` (draws and chains >= 1, tune >= 0)."""
    note = f" (default: {default_note})" if default_note else " (default: %(default)s)"
    for name, minimum, default, what in (
        ("--draws", 1, draws, "draws per chain"),
        ("--tune", 0, tune, "tuning steps per chain"),
        ("--chains", 1, chains, "chains"),
    ):
        parser.add_argument(
            name, type=int_at_least(minimum), default=default, metavar="N", help=what + note
        )


def add_tau_argument(parser: argparse.ArgumentParser, default: float) -> None:
    """``--tau``: the separability threshold on R (|rho| with one dimension), in (0, 1)."""
    parser.add_argument(
        "--tau",
        type=float_between(0.0, 1.0),
        default=default,
        help="separability threshold: P(R < tau), R = |rho| if K = 1 (default: %(default)s)",
    )


def add_ci_prob_argument(parser: argparse.ArgumentParser, default: float, what: str) -> None:
    """``--ci-prob``: an interval probability in (0, 1)."""
    parser.add_argument(
        "--ci-prob",
        type=float_between(0.0, 1.0),
        metavar="P",
        default=default,
        help=f"{what} probability (default: %(default)s)",
    )


def add_ci_kind_argument(parser: argparse.ArgumentParser) -> None:
    """``--ci-kind``: the kind of the credible intervals (:data:`CI_KINDS`)."""
    parser.add_argument(
        "--ci-kind",
        choices=CI_KINDS,
        default=CI_KIND,
        help="credible interval kind: hdi (highest density) or eti (equal-tailed) "
        "(default: %(default)s)",
    )


def add_dataset_arguments(
    parser: argparse.ArgumentParser, *, populations: bool = True, add_scores: bool = True
) -> None:
    """The study options: a registered ``--dataset`` or a user's ``--scores`` table (with
    its metadata and declarations), ``--population``, ``--data-dir`` and, with
    ``add_scores``, ``--add-scores`` to add a user's benchmarks to that study.

    Read the study they name with :func:`study_from_args`.
    """
    group = parser.add_argument_group("study (a registered dataset or your own table)")
    source = group.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset",
        default=None,
        choices=dataset_names(),
        help="registered dataset name (default: safetywashing)",
    )
    source.add_argument(
        "--scores",
        type=Path,
        metavar="CSV",
        help="your own score table: a CSV with one row per LLM and one column per benchmark "
        "(or llm,benchmark,value rows with --long)",
    )
    if populations:
        group.add_argument(
            "--population",
            default=None,
            metavar="NAME",
            help="LLM population: base, chat or all (default: chat for safetywashing, "
            "all for the other datasets, which have one population); with --scores, a value "
            "of the table's population column (default: every LLM)",
        )
    group.add_argument(
        "--data-dir",
        type=existing_dir,
        default=None,
        metavar="DIR",
        help=f"local data directory laid out as <dir>/<dataset>/<path>; default ${DATA_DIR_ENV}, "
        "else ../shared/data beside the project if present, else download to the cache",
    )
    if add_scores:
        group.add_argument(
            "--add-scores",
            type=Path,
            metavar="CSV",
            help="add this table's benchmarks to the study, joining rows to LLMs by name",
        )
        group.add_argument(
            "--strict-names",
            action="store_true",
            help="with --add-scores: a row whose LLM the study does not have is an error",
        )
        group.add_argument(
            "--new-llms",
            action="store_true",
            help="with --add-scores: add LLMs the study does not have (default: leave them out)",
        )
    add_table_arguments(parser)


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """How to read a user's table: layout, metadata, declarations, per-LLM columns, encoding
    (read them with :func:`user_table`)."""
    group = parser.add_argument_group("your table (--scores, --add-scores): declare every column")
    group.add_argument("--long", action="store_true", help="the table has llm,benchmark,value rows")
    group.add_argument(
        "--metadata",
        type=Path,
        metavar="META.csv",
        help="benchmark metadata CSV (key, role, area, direction, ...; data/README.md)",
    )
    group.add_argument(
        "--llm-column",
        default="llm",
        metavar="NAME",
        help="the LLM column of every table (default: llm)",
    )
    group.add_argument(
        "--llm-meta",
        nargs="+",
        default={},
        type=key_value("KEY=COLUMN"),
        action=UniqueKeys,
        metavar="KEY=COLUMN",
        help='per-LLM columns, e.g. family="Model Family" params="Model Size (B)" flop=FLOP '
        "(keys: display_name, population, family, params, flop)",
    )
    group.add_argument(
        "--capability", nargs="+", default=[], metavar="COL", help="capability benchmark columns"
    )
    group.add_argument(
        "--safety",
        nargs="+",
        default={},
        type=key_value("COL=AREA"),
        action=UniqueKeys,
        metavar="COL=AREA",
        help="safety benchmark columns with their area (a paper area or a new one)",
    )
    group.add_argument(
        "--lower-is-better",
        nargs="+",
        default=[],
        metavar="COL",
        help="declared columns on which lower is better (default: higher is better)",
    )
    group.add_argument(
        "--encoding", type=encoding_name, default="utf-8", help="text encoding (default: utf-8)"
    )


#: Options that describe a user's table: an error without --scores or --add-scores.
TABLE_OPTIONS = {
    dest: "--" + dest.replace("_", "-")
    for dest in ("long", "metadata", "llm_meta", "capability", "safety", "lower_is_better")
}


def user_table(args: argparse.Namespace, path: Path) -> UserTable:
    """The :class:`UserTable` the table options describe, for the file ``path``."""
    return UserTable(
        path=path,
        metadata=args.metadata,
        long=args.long,
        llm_column=args.llm_column,
        llm_meta=dict(args.llm_meta),
        declarations=Declarations(
            tuple(args.capability), dict(args.safety), tuple(args.lower_is_better)
        ),
        encoding=args.encoding,
    )


def check_study_arguments(args: argparse.Namespace) -> None:
    """The checks of the study options that need no file read (run before any work)."""
    if args.scores is None and getattr(args, "add_scores", None) is None:
        given = [flag for dest, flag in TABLE_OPTIONS.items() if getattr(args, dest)]
        given += ["--llm-column"] if args.llm_column != "llm" else []
        if given:
            raise UsageError(f"{given[0]} describes your table: it needs --scores or --add-scores")
    if getattr(args, "add_scores", None) is None:
        for flag in ("strict_names", "new_llms"):
            if getattr(args, flag, False):
                raise UsageError(f"--{flag.replace('_', '-')} needs --add-scores")
    if args.scores is None:
        resolve_population(args.dataset or "safetywashing", getattr(args, "population", None))
    elif args.data_dir is not None:
        raise UsageError("--data-dir locates registered datasets: it does not apply to --scores")


def study_from_args(args: argparse.Namespace, *, report=print) -> BenchmarkStudy:
    """The study the options of :func:`add_dataset_arguments` name, checked and read.

    ``report`` gets the LLM matching of ``--add-scores`` (which row matched which LLM, the
    unmatched names with close matches).
    """
    check_study_arguments(args)
    adding = getattr(args, "add_scores", None)
    population = getattr(args, "population", None)
    if args.scores is not None:
        table = user_table(args, args.scores)
        study = read_user_study(table, population, check_declared=adding is None)
    else:
        dataset = args.dataset or "safetywashing"
        population = resolve_population(dataset, population)
        study = load_dataset(dataset, population, data_dir=resolve_data_dir_argument(args.data_dir))
    if adding is None:
        return study
    both = args.scores is not None
    combined = add_benchmarks(
        study,
        user_table(args, adding),
        strict=args.strict_names,
        new_llms=args.new_llms,
        check_declared=not both,
    )
    if both:
        check_declared_somewhere(combined.study, args)
    report(combined.describe())
    return combined.study


def check_declared_somewhere(study: BenchmarkStudy, args: argparse.Namespace) -> None:
    """With --scores and --add-scores, every quick declaration names a column of one of them."""
    for key in [*args.capability, *dict(args.safety)]:
        if key not in study.benchmarks.index and key not in study.excluded:
            raise UsageError(
                f"declared column {key!r} is in neither {args.scores} nor {args.add_scores}"
                f"{closest(key, study.benchmarks.index)}"
            )


def resolve_population(dataset: str, population: str | None) -> str:
    """The ``--population`` value, or the dataset's default; one the dataset declares."""
    if population is None:
        return default_population(dataset)
    known = DATASET_POPULATIONS.get(dataset)
    if known is not None and population not in known:
        raise UsageError(
            f"--population: unknown population {population!r} for dataset {dataset}"
            f"{closest(population, known)} (choose from {', '.join(known)})"
        )
    return population


def resolve_data_dir_argument(value: Path | None) -> Path | None:
    """The ``--data-dir`` value, or :func:`default_data_dir`."""
    return value if value is not None else default_data_dir()
