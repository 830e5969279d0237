"""``safetywash fit`` from a checkout: ``python scripts/fit.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["fit", *sys.argv[1:]]))
