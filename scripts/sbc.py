"""``safetywash sbc`` from a checkout: ``python scripts/sbc.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["sbc", *sys.argv[1:]]))
