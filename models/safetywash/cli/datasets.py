"""List the registered datasets and where they are available, or download one into the cache.

'safetywash datasets' (or 'datasets list') shows every registered dataset, whether the
local data directory holds it (--data-dir, else $SAFETYWASH_DATA_DIR, else ../shared/data
beside the project) and whether the download cache does, each file checked against its
registered sha256. 'safetywash datasets download NAME [NAME ...]' fetches the pinned files
into the cache (--cache-dir, else $SAFETYWASH_CACHE_DIR, else ~/.cache/safetywash) and
verifies them; with $SAFETYWASH_DATA_DIR set, the files are verified there instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safetywash.cli.common import (
    UsageError,
    command_parser,
    existing_dir,
    float_between,
    resolve_data_dir_argument,
)
from safetywash.cli.paths import output_dir, output_file, write_json
from safetywash.data.registry import (
    DatasetSpec,
    dataset_names,
    dataset_spec,
    default_cache_dir,
    fetch_dataset,
    sha256_file,
)

EXAMPLES = (
    "safetywash datasets",
    "safetywash datasets list --data-dir ../shared/data --json datasets.json",
    "safetywash datasets download safetywashing helm-benchbench",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash datasets``."""
    parser = command_parser(subparsers, "datasets", __doc__, EXAMPLES)
    parser.add_argument(
        "action", nargs="?", choices=("list", "download"), default="list", help="what to do"
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="datasets to download")
    parser.add_argument(
        "--data-dir", type=existing_dir, metavar="DIR", help="local data directory to check (list)"
    )
    parser.add_argument(
        "--cache-dir",
        type=output_dir,
        metavar="DIR",
        help="download cache (default: $SAFETYWASH_CACHE_DIR, else ~/.cache/safetywash)",
    )
    parser.add_argument("--base-url", help="download from this mirror instead (download)")
    parser.add_argument(
        "--timeout",
        type=float_between(0.0),
        default=30.0,
        help="socket timeout per file, seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--json", type=output_file, metavar="FILE", help="write the listing as JSON here (list)"
    )
    return parser


def file_status(spec: DatasetSpec, root: Path | None) -> dict:
    """How many of a dataset's files sit under ``root/<name>`` with the registered sha256."""
    n_files = len(spec.files)
    if root is None:
        return {"path": None, "present": 0, "verified": 0, "n_files": n_files, "status": "-"}
    base = root / spec.name
    present = [p for p in spec.files if (base / p).is_file()]
    verified = sum(sha256_file(base / p) == spec.files[p] for p in present)
    if verified == n_files:
        status = "ok"
    elif not present:
        status = "missing"
    else:
        status = f"incomplete ({verified}/{n_files} verified)"
    return {
        "path": str(base),
        "present": len(present),
        "verified": int(verified),
        "n_files": n_files,
        "status": status,
    }


def listing(data_dir: Path | None, cache_dir: Path) -> list[dict]:
    """Every registered dataset with its local and cached status."""
    rows = []
    for name in dataset_names():
        spec = dataset_spec(name)
        rows.append(
            {
                "name": name,
                "description": spec.description,
                "local": file_status(spec, data_dir),
                "cache": file_status(spec, cache_dir),
            }
        )
    return rows


def format_listing(rows: list[dict], data_dir: Path | None, cache_dir: Path) -> str:
    """The listing as a plain-text table."""
    width = max(len(row["name"]) for row in rows) + 2
    lines = [
        f"local data directory: {data_dir if data_dir is not None else '(none)'}",
        f"download cache:       {cache_dir}",
        "",
        f"{'dataset':<{width}}{'local':<28}{'cache':<28}",
    ]
    for row in rows:
        lines.append(f"{row['name']:<{width}}{row['local']['status']:<28}{row['cache']['status']}")
        lines.append(f"{'':<{width}}{row['description']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash datasets``."""
    unknown = [n for n in args.names if n not in dataset_names()]
    if unknown:
        raise UsageError(f"unknown dataset(s) {unknown}; registered: {dataset_names()}")
    cache_dir = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    if args.action == "download":
        if not args.names:
            raise UsageError(f"download needs at least one NAME; registered: {dataset_names()}")
        for name in args.names:
            root = fetch_dataset(
                name, cache_dir=cache_dir, base_url=args.base_url, timeout=args.timeout
            )
            print(f"{name}: {len(dataset_spec(name).files)} files verified in {root}")
        return 0
    if args.names:
        raise UsageError("'datasets list' takes no NAME; did you mean 'datasets download'?")
    data_dir = resolve_data_dir_argument(args.data_dir)
    rows = listing(data_dir, cache_dir)
    print(format_listing(rows, data_dir, cache_dir))
    if args.json:
        payload = {
            "data_dir": None if data_dir is None else str(data_dir),
            "cache_dir": str(cache_dir),
            "datasets": rows,
        }
        write_json(args.json, payload, ensure_ascii=False)
    return 0
