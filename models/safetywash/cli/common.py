"""Shared command-line plumbing: the parser class, argument checks and common options.

Every check here runs while the arguments are parsed, so a bad value is reported before any
data is loaded or any sampler starts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from safetywash.analysis.intervals import CI_KIND, CI_KINDS
from safetywash.data.load import default_data_dir
from safetywash.data.registry import DATA_DIR_ENV, dataset_names

__all__ = [
    "CommandParser",
    "UsageError",
    "add_ci_kind_argument",
    "add_ci_prob_argument",
    "add_dataset_arguments",
    "add_progress_argument",
    "add_sampler_arguments",
    "add_seed_argument",
    "add_tau_argument",
    "command_parser",
    "default_data_dir",
    "fit_path",
    "float_between",
    "input_file",
    "int_at_least",
    "output_dir",
    "output_file",
    "resolve_data_dir_argument",
    "resolve_population",
    "run_dir",
    "write_json",
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


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


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


def output_dir(text: str) -> Path:
    """An argparse ``type``: a folder to write into (created if missing, not a file)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is an existing file, not a folder")
    return path


def output_file(text: str) -> Path:
    """An argparse ``type``: a file to write (overwritten if present, not a folder)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder, not a file")
    return path


def input_file(text: str) -> Path:
    """An argparse ``type``: an existing file to read."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {path}")
    return path


def run_dir(text: str) -> Path:
    """An argparse ``type``: a run folder holding ``posterior.nc``."""
    path = Path(text)
    if not (path / "posterior.nc").is_file():
        raise argparse.ArgumentTypeError(
            f"no fit in {path}: expected {path / 'posterior.nc'} (written by 'safetywash fit')"
        )
    return path


def fit_path(text: str) -> Path:
    """An argparse ``type``: a run folder holding ``posterior.nc``, or a ``.nc`` fit file."""
    path = Path(text)
    return path if path.is_file() else run_dir(text)


# --------------------------------------------------------------------------- options


def add_seed_argument(parser: argparse.ArgumentParser, *, default: int | None, help: str) -> None:
    """``--seed``: a non-negative integer."""
    parser.add_argument("--seed", type=int_at_least(0), default=default, help=help)


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
        type=Path,
        default=None,
        metavar="DIR",
        help=f"local data directory laid out as <dir>/<dataset>/<path>; default ${DATA_DIR_ENV}, "
        "else ../shared/data beside the project if present, else download to the cache",
    )


def resolve_population(dataset: str, population: str | None) -> str:
    """The ``--population`` value, or the dataset's default."""
    if population is not None:
        return population
    return "chat" if dataset == "safetywashing" else "all"


def resolve_data_dir_argument(value: Path | None) -> Path | None:
    """The ``--data-dir`` value, or :func:`default_data_dir`."""
    return value if value is not None else default_data_dir()


def write_json(path: Path, payload, *, ensure_ascii: bool = True) -> None:
    """Write ``payload`` as indented JSON (UTF-8, trailing newline) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, ensure_ascii=ensure_ascii) + "\n"
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
