"""Model options shared by the commands that fit: ``--capability-dims``."""

from __future__ import annotations

import argparse

from safetywash.cli.values import int_at_least
from safetywash.model.config import MAX_CAPABILITY_DIMS, ModelConfig

#: The ``--capability-dims`` value that chooses K by predictive density.
AUTO = "auto"


def capability_dims_value(text: str) -> int | str:
    """``auto`` or an integer from 1 to the maximum."""
    if text == AUTO:
        return AUTO
    try:
        return int_at_least(1, MAX_CAPABILITY_DIMS)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be 'auto' or an integer from 1 to {MAX_CAPABILITY_DIMS}, not {text!r}"
        ) from None


def add_capability_dims_argument(parser: argparse.ArgumentParser) -> None:
    """``--capability-dims K|auto``: capability dimensions of the model."""
    parser.add_argument(
        "--capability-dims",
        type=capability_dims_value,
        default=ModelConfig().capability_dims,
        metavar="K",
        help="capability dimensions: a general factor plus K - 1 further capability axes "
        "(math or code apart from knowledge, say); rho stays the correlation with the "
        "general factor, subspace R the correlation with all K "
        f"(1 to {MAX_CAPABILITY_DIMS}; 'auto' fits every K the study supports and keeps "
        "the smallest within one standard error of the best expected log predictive "
        "density among the converged fits: PSIS-LOO, or 5-fold cross-validation where "
        "Pareto k are high; "
        "default: %(default)s)",
    )


def dims_of(args: argparse.Namespace) -> int:
    """The K to put in a ModelConfig (1 under ``auto``, where the choice replaces it)."""
    return 1 if args.capability_dims == AUTO else args.capability_dims
