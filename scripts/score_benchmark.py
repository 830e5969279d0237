"""``safetywash score-benchmark`` from a checkout: ``python scripts/score_benchmark.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["score-benchmark", *sys.argv[1:]]))
