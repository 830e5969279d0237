"""``safetywash holdout`` from a checkout: ``python scripts/holdout.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["holdout", *sys.argv[1:]]))
