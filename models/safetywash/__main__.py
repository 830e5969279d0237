"""``python -m safetywash``: the ``safetywash`` console command."""

from safetywash.cli import main

raise SystemExit(main())
