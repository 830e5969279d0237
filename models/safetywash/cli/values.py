"""Command-line value checks: argparse ``type`` functions and name checks.

Each raises :class:`argparse.ArgumentTypeError` (reported by the parser) or
:class:`UsageError` (reported by :func:`safetywash.cli.app.main`): one ``error:`` line,
exit status 2.
"""

from __future__ import annotations

import argparse
import codecs
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from safetywash.data.names import nearest_names

#: Largest seed accepted: every seed derived from it (``seed + 1``, ``seed + 2``, one per
#: SBC round) must fit the sampler (nutpie takes an unsigned 64-bit integer) and the fit's
#: integer attrs; ``2**32 - 1`` is numpy's legacy limit, safe everywhere.
MAX_SEED = 2**32 - 1


class UsageError(Exception):
    """A command-line argument the user has to change."""


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


def key_value(form: str) -> Callable[[str], tuple[str, str]]:
    """An argparse ``type``: ``KEY=VALUE`` with both parts non-empty."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"expected {form}, got {text!r}")
        return key.strip(), value.strip()

    return parse


class UniqueKeys(argparse.Action):
    """Stores ``KEY=VALUE`` arguments (``nargs="+"``, ``type=key_value(...)``) as a dict and
    refuses a key given twice (a dict would keep the last value silently)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        pairs = dict(getattr(namespace, self.dest) or {})
        for key, value in values:
            if key in pairs:
                raise argparse.ArgumentError(
                    self, f"{key!r} is given twice ({pairs[key]}, {value}): give it once"
                )
            pairs[key] = value
        setattr(namespace, self.dest, pairs)


def encoding_name(text: str) -> str:
    """An argparse ``type``: a text encoding Python knows (``utf-8``, ``latin-1``, ...)."""
    try:
        codecs.lookup(text)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown text encoding {text!r}") from None
    return text
