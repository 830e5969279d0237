"""``safetywash baseline`` from a checkout: ``python scripts/baseline.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["baseline", *sys.argv[1:]]))
