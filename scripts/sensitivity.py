"""``safetywash sensitivity`` from a checkout: ``python scripts/sensitivity.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["sensitivity", *sys.argv[1:]]))
