"""``safetywash compare`` from a checkout: ``python scripts/compare.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["compare", *sys.argv[1:]]))
