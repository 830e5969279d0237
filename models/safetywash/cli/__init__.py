"""The ``safetywash`` console command (subcommands in this package, one module each).

Importing this package stays light: :func:`main` imports the subcommands when called.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``safetywash`` command; see :func:`safetywash.cli.app.main`."""
    from safetywash.cli.app import main as app_main

    return app_main(argv)
