"""Simulation-based calibration of the latent-factor model's capability correlations (rho).

Usage
-----
    python scripts/sbc.py --rounds 20 --llms 26 --capability 10 --safety-per-area 3 \\
        --areas alignment bias calibration weaponization --draws 500 --tune 500 --out runs/sbc
    python scripts/sbc.py --rounds 100 --missing 0.3 --mechanism era --out runs/sbc_era
    python scripts/sbc.py --rounds 20 --factors bias --safety-per-area 4 --out runs/sbc_bias
    # on a dask LocalCluster of 2 worker processes; rerunning resumes unfinished rounds
    python scripts/sbc.py --rounds 100 --workers 2 --out runs/sbc100
    python scripts/sbc.py --rounds 100 --scheduler tcp://HOST:8786 --out runs/sbc100

Each round simulates a study (seed = --seed + round), fits it and ranks the true rho of
every benchmark among 99 thinned posterior draws. Prints one line per round and the
summary (coverage of the central 50% and 90% intervals, chi-square uniformity p-value of
the ranks, mean absolute error of the posterior median, untrusted fits). With --out,
writes <out>/sbc.nc (the per-round, per-benchmark dataset) and <out>/summary.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from safetywash.analysis.sbc import RANK_DRAWS, run_sbc, summarize_sbc
from safetywash.data.catalog import SAFETY_AREAS
from safetywash.model.build import ModelConfig
from safetywash.model.simulate import MISSING_MECHANISMS


def _print_round(r: int, n_rounds: int, info: dict) -> None:
    if "message" in info:  # from the distributed runner, as rounds finish
        print(info["message"], flush=True)
        return
    flag = "ok" if info["trustworthy"] else "UNTRUSTED: " + "; ".join(info["problems"])
    print(
        f"round {r + 1:>3}/{n_rounds} seed {info['seed']:>5}  {info['seconds']:5.1f} s  "
        f"cov50 {info['coverage50']:.2f} cov90 {info['coverage90']:.2f} "
        f"mae {info['mae']:.3f}  rhat {info['max_rhat']:.3f} ess {info['min_ess']:.0f} "
        f"div {info['divergences']}  {flag}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="simulated studies")
    parser.add_argument("--llms", type=int, default=26, help="LLMs per study")
    parser.add_argument("--capability", type=int, default=10, help="capability benchmarks")
    parser.add_argument(
        "--safety-per-area", type=int, default=3, help="safety benchmarks in each area"
    )
    parser.add_argument(
        "--areas",
        nargs="+",
        default=["alignment", "bias", "calibration", "weaponization"],
        choices=SAFETY_AREAS,
        metavar="AREA",
        help="safety areas (default: alignment bias calibration weaponization)",
    )
    parser.add_argument("--missing", type=float, default=0.0, help="share of missing cells")
    parser.add_argument("--mechanism", choices=MISSING_MECHANISMS, default="random")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="seed of round 0")
    parser.add_argument(
        "--factors",
        nargs="*",
        default=[],
        metavar="AREA",
        help="areas simulated and fitted with a factor of their own",
    )
    parser.add_argument("--rank-draws", type=int, default=RANK_DRAWS)
    parser.add_argument("--bins", type=int, default=10, help="rank histogram bins")
    parser.add_argument("--out", type=Path, help="folder for sbc.nc and summary.json")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run rounds on a dask LocalCluster of this many processes (0: in this process)",
    )
    parser.add_argument("--scheduler", help="address of a running dask scheduler instead")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="per-round results when distributed (default OUT/rounds); a rerun skips "
        "finished rounds",
    )
    args = parser.parse_args(argv)

    unknown = [f for f in args.factors if f not in args.areas]
    if unknown:
        parser.error(f"--factors {unknown} must be among --areas")
    safety = {area: args.safety_per_area for area in args.areas}
    config = ModelConfig(factors=tuple(args.factors))
    print(
        f"SBC: {args.rounds} rounds, {args.llms} LLMs x ({args.capability} capability + "
        f"{args.safety_per_area} x {len(args.areas)} safety), missing {args.missing} "
        f"({args.mechanism}), draws {args.draws}, tune {args.tune}, seed {args.seed}",
        flush=True,
    )
    t0 = time.perf_counter()
    ds = run_sbc(
        args.rounds,
        n_llms=args.llms,
        n_capability=args.capability,
        safety=safety,
        missing=args.missing,
        mechanism=args.mechanism,
        draws=args.draws,
        tune=args.tune,
        seed=args.seed,
        config=config,
        chains=args.chains,
        rank_draws=args.rank_draws,
        progress=_print_round,
        workers=args.workers,
        scheduler=args.scheduler,
        work_dir=args.work_dir or (args.out / "rounds" if args.out else None),
    )
    summary = summarize_sbc(ds, bins=args.bins)
    summary["wall_seconds"] = time.perf_counter() - t0
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        ds.to_netcdf(args.out / "sbc.nc", engine="h5netcdf")
        (args.out / "summary.json").write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out / 'sbc.nc'} and {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
