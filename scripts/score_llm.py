"""``safetywash score-llm`` from a checkout: ``python scripts/score_llm.py --help``."""

import sys

from safetywash.cli import main

raise SystemExit(main(["score-llm", *sys.argv[1:]]))
