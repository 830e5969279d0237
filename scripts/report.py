"""``safetywash report`` from a checkout: ``python scripts/report.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["report", *sys.argv[1:]]))
