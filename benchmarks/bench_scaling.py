"""Scaling curve: fit time, ESS/s, R-hat and memory as the number of LLMs doubles.

Usage
-----
    # 250 .. 8000 LLMs x 40 benchmarks, 50% missing, capability integrated out (the fast path)
    python benchmarks/bench_scaling.py --json scaling.json

    # the same sizes with capability sampled by NUTS, up to 2000 LLMs, beside the fast path
    python benchmarks/bench_scaling.py --capability-mode marginal sampled --max-sampled 2000

    # add the Open LLM Leaderboard v1 (1,756 LLMs x 6 benchmarks)
    python benchmarks/bench_scaling.py --datasets open-llm-leaderboard-v1

Each point is one fit in a fresh subprocess (``bench_fit.py``'s machinery). Besides its
columns the table gives the observed cells and the sampling and total seconds per 1,000
observed cells.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fit  # a sibling script, not a package

DEFAULT_SIZES = (250, 500, 1000, 2000, 4000, 8000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llms", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--benchmarks", type=int, default=40)
    parser.add_argument("--missing", type=float, default=0.5)
    parser.add_argument(
        "--capability-mode", nargs="+", choices=("marginal", "sampled"), default=["marginal"]
    )
    parser.add_argument(
        "--max-sampled",
        type=int,
        default=2000,
        help="largest LLM count fitted with capability sampled",
    )
    parser.add_argument("--datasets", nargs="*", default=[], help="registered datasets to add")
    parser.add_argument("--sampler", choices=bench_fit.SAMPLERS, default="nutpie")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per fit")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    points = []
    for mode in args.capability_mode:
        for n in args.llms:
            if mode == "sampled" and n > args.max_sampled:
                continue
            points.append(
                (bench_fit.parse_case(f"sim:{n}x{args.benchmarks}x{args.missing:g}"), mode)
            )
        points += [(bench_fit.parse_case(f"dataset:{d}"), mode) for d in args.datasets]

    rows = []
    for i, (case, mode) in enumerate(points, 1):
        child_args = bench_fit.build_parser().parse_args(
            [
                "--seed",
                str(args.seed),
                "--draws",
                str(args.draws),
                "--tune",
                str(args.tune),
                "--chains",
                str(args.chains),
                "--capability-mode",
                mode,
                "--timeout",
                str(args.timeout),
            ]
            + (["--data-dir", str(args.data_dir)] if args.data_dir else [])
        )
        print(
            f"[{i}/{len(points)}] {case.name}, capability {mode} ...", file=sys.stderr, flush=True
        )
        row = bench_fit.run_child(case, args.sampler, child_args)
        row["capability"] = mode
        if row["status"] == "ok":
            per_k = 1000.0 / row["n_cells"]
            row["sampling_s_per_1k_cells"] = row["sampling_s"] * per_k
            row["fit_s_per_1k_cells"] = row["fit_s"] * per_k
        else:
            print(f"  {row['status']}\n{row.get('log_tail', '')}", file=sys.stderr, flush=True)
        rows.append(row)

    header = (
        f"{'case':<26}{'capability':>11}{'cells':>9}{'fit s':>8}{'sample s':>9}"
        f"{'s/1k cells':>11}{'ESS/s':>8}{'min ESS':>8}{'R-hat':>7}{'div':>5}"
        f"{'peak MiB':>9}  verdict"
    )
    print(
        f"{args.sampler}, draws {args.draws}, tune {args.tune}, chains {args.chains}, "
        f"seed {args.seed}"
    )
    print(header)
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['case']:<26}{r['capability']:>11}  {r['status']}")
            continue
        print(
            f"{r['case']:<26}{r['capability']:>11}{r['n_cells']:>9}{r['fit_s']:>8.1f}"
            f"{r['sampling_s']:>9.1f}{r['fit_s_per_1k_cells']:>11.2f}"
            f"{r['ess_bulk_per_s']:>8.1f}{r['min_ess_bulk']:>8.0f}{r['max_rhat']:>7.3f}"
            f"{r['divergences']:>5d}{r['peak_mib']:>9.0f}  {bench_fit.short_verdict(r)}"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "script": "benchmarks/bench_scaling.py",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": {k: str(v) for k, v in vars(args).items()},
            "environment": bench_fit.environment(),
            "results": rows,
        }
        args.json.write_text(json.dumps(bench_fit._finite(payload), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
