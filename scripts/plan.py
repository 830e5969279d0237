"""``safetywash plan`` from a checkout: ``python scripts/plan.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["plan", *sys.argv[1:]]))
