"""Model options shared by the commands that fit: ``--capability-dims``."""

from __future__ import annotations

import argparse

from safetywash.cli.values import int_at_least
from safetywash.model.config import MAX_CAPABILITY_DIMS, ModelConfig


def add_capability_dims_argument(parser: argparse.ArgumentParser) -> None:
    """``--capability-dims K``: capability dimensions of the model (1 to the maximum)."""
    parser.add_argument(
        "--capability-dims",
        type=int_at_least(1, MAX_CAPABILITY_DIMS),
        default=ModelConfig().capability_dims,
        metavar="K",
        help="capability dimensions: a general factor plus K - 1 further capability axes "
        "(math or code apart from knowledge, say); rho stays the correlation with the "
        "general factor, subspace R the correlation with all K "
        f"(1 to {MAX_CAPABILITY_DIMS}, default: %(default)s)",
    )
