"""``safetywash adjusted`` from a checkout: ``python scripts/adjusted_scores.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["adjusted", *sys.argv[1:]]))
