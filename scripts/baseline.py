"""The Safetywashing paper's capabilities-correlation baseline (PCA + Spearman).

Usage
-----
    python scripts/baseline.py --dataset safetywashing --population chat \
        --json runs/baseline_chat.json --out runs/baseline_chat.csv
    python scripts/baseline.py --population base --data-dir ../shared/data

Prints a table grouped by safety area, writes a CSV (benchmark, display_name, area,
capabilities_correlation, oriented_correlation, flop_correlation, n_llms) and a JSON
{"population", "variance_explained", "correlations": {benchmark key: r}}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetywash.analysis.baseline import baseline_table, format_baseline, paper_baseline
from safetywash.cli.common import (
    add_dataset_arguments,
    resolve_data_dir_argument,
    resolve_population,
)
from safetywash.data.load import load_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser)
    parser.add_argument("--out", type=Path, help="CSV file for the table")
    parser.add_argument("--json", type=Path, help="JSON file for the correlations")
    args = parser.parse_args(argv)
    args.population = resolve_population(args.dataset, args.population)

    if args.dataset == "safetywashing" and args.population not in ("base", "chat"):
        parser.error("the paper's baseline is per population: --population base or chat")
    study = load_dataset(
        args.dataset, args.population, data_dir=resolve_data_dir_argument(args.data_dir)
    )
    result = paper_baseline(study)
    print(format_baseline(result))
    if study.excluded:
        print(f"Not analysed (catalogued as excluded): {', '.join(study.excluded)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        baseline_table(result).to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_json_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
