"""Shared command-line plumbing: the parser class, argument checks and common options.

Every value check here runs while the arguments are parsed, and the checks that need two
arguments together (a population of a dataset, an output folder and ``--overwrite``) run
first thing in a command's ``run``: a bad value is reported before any data is loaded or
any sampler starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from safetywash.analysis.intervals import CI_KIND, CI_KINDS
from safetywash.data.load import DATASET_POPULATIONS, default_data_dir, default_population
from safetywash.data.names import nearest_names
from safetywash.data.registry import DATA_DIR_ENV, dataset_names

#: Largest seed accepted: every seed derived from it (``seed + 1``, ``seed + 2``, one per
#: SBC round) must fit the sampler (nutpie takes an unsigned 64-bit integer) and the fit's
#: integer attrs; ``2**32 - 1`` is numpy's legacy limit, safe everywhere.
MAX_SEED = 2**32 - 1

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
    "add_tau_argument",
    "check_names",
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
]


class UsageError(Exception):
    """A command-line argument the user has to change."""


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


# --------------------------------------------------------------------------- value checks


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer no smaller than ``minimum`` (nor above ``maximum``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


def seed_value(text: str) -> int:
    """An argparse ``type``: a seed, an integer in ``[0, MAX_SEED]``."""
    return int_at_least(0, MAX_SEED)(text)


def closest(value: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known names, ignoring case (empty when
    none is close)."""
    near = nearest_names(value, known, ignore_case=True)
    return f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""


def name_of(known: Sequence[str], what: str) -> Callable[[str], str]:
    """An argparse ``type``: one of ``known``, else an error with the close matches."""

    def parse(text: str) -> str:
        if text not in known:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {text!r}{closest(text, known)} (choose from {', '.join(known)})"
            )
        return text

    return parse


def check_names(
    values: Iterable[str], known: Iterable[str], what: str, option: str, where: str = "in this fit"
) -> None:
    """Raise :class:`UsageError` for the first of ``values`` not in ``known``."""
    known = [str(k) for k in known]
    listed = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    for value in values:
        if value not in known:
            raise UsageError(
                f"{option}: {what} {value!r} is not {where}{closest(value, known)} "
                f"({len(known)} known: {listed})"
            )


def existing_dir(text: str) -> Path:
    """An argparse ``type``: an existing folder."""
    path = Path(text).expanduser()
    if not path.is_dir():
        what = "a file, not a folder" if path.exists() else "no such folder"
        raise argparse.ArgumentTypeError(f"{path}: {what}")
    return path


def float_between(
    low: float, high: float | None = None, *, low_inclusive: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a number above ``low`` (or equal, if inclusive), below ``high``."""
    if high is None:
        span = f"at least {low:g}" if low_inclusive else f"above {low:g}"
    else:
        span = f"in {'[' if low_inclusive else '('}{low:g}, {high:g})"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = value >= low if low_inclusive else value > low
        if not (above and (high is None or value < high)):
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value

    return parse


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
    """``--tau``: the separability threshold on |rho|, in (0, 1)."""
    parser.add_argument(
        "--tau",
        type=float_between(0.0, 1.0),
        default=default,
        help="separability threshold: P(|rho| < tau) (default: %(default)s)",
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


def add_dataset_arguments(parser: argparse.ArgumentParser, *, populations: bool = True) -> None:
    """``--dataset``, ``--population`` and ``--data-dir`` options."""
    parser.add_argument(
        "--dataset", default="safetywashing", choices=dataset_names(), help="dataset name"
    )
    if populations:
        parser.add_argument(
            "--population",
            default=None,
            metavar="NAME",
            help="LLM population: base, chat or all (default: chat for safetywashing, "
            "all for the other datasets, which have one population)",
        )
    parser.add_argument(
        "--data-dir",
        type=existing_dir,
        default=None,
        metavar="DIR",
        help=f"local data directory laid out as <dir>/<dataset>/<path>; default ${DATA_DIR_ENV}, "
        "else ../shared/data beside the project if present, else download to the cache",
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
