"""Simulation-based calibration of the latent-factor model's capability correlations (rho).

Each round draws parameters from the model's priors and scores from its likelihood (seed =
--seed + round; the LLMs, benchmarks and observed cells are drawn once, with --seed, and
kept in every round), fits them (the model is compiled once per structure and refitted)
and ranks the true rho of every benchmark among 99 thinned posterior draws. Prints one line
per round (unless --no-progress) and the summary: coverage of the central 50% and 90%
intervals, chi-square uniformity p-value of the ranks and mean absolute error of the
posterior median, overall and for capability and safety benchmarks; untrusted fits;
compiled models; wall time (--json FILE: the summary as JSON there). With --out,
writes OUT/sbc.nc (the per-round, per-benchmark dataset, checksummed) and
OUT/summary.json; OUT is built beside its final place and moved there when complete, and
an existing non-empty OUT is refused before any round runs unless --overwrite is given.
With --workers or --scheduler, rounds run on a dask cluster and keep their results in
--work-dir (default .OUT.rounds beside OUT, moved to OUT/rounds at the end); rerunning an
interrupted command resumes unfinished rounds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from safetywash.analysis.calibration import summarize_sbc
from safetywash.analysis.sbc import DATA_SCALES, RANK_DRAWS, run_sbc
from safetywash.cli.common import (
    MAX_SEED,
    UsageError,
    add_overwrite_argument,
    add_sampler_arguments,
    add_seed_argument,
    command_parser,
    float_between,
    int_at_least,
    name_of,
)
from safetywash.cli.paths import output_dir, output_file, prepare_output_folder, write_json
from safetywash.data.catalog import SAFETY_AREAS
from safetywash.inference.netcdf import write_netcdf
from safetywash.model.config import ModelConfig
from safetywash.model.simulate import MISSING_MECHANISMS
from safetywash.report.runfolder import place_folder, staged_folder

#: What a folder must hold for --overwrite to replace it (an output folder of 'sbc').
SBC_MARKERS = ("sbc.nc", "summary.json")

EXAMPLES = (
    "safetywash sbc --rounds 20 --llms 26 --capability-benchmarks 10 --safety-per-area 3 "
    "--areas alignment bias calibration weaponization --draws 500 --tune 500 --out runs/sbc",
    "safetywash sbc --rounds 100 --missing 0.62 --out runs/sbc_sparse",
    "safetywash sbc --rounds 100 --missing 0.3 --mechanism era --out runs/sbc_era",
    "safetywash sbc --rounds 20 --factors bias --safety-per-area 4 --out runs/sbc_bias",
    "safetywash sbc --rounds 100 --workers 2 --out runs/sbc100",
    "safetywash sbc --rounds 100 --scheduler tcp://HOST:8786 --out runs/sbc100",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash sbc``."""
    parser = command_parser(subparsers, "sbc", __doc__, EXAMPLES)
    count = int_at_least(1)
    parser.add_argument("--rounds", type=count, default=20, help="simulated studies")
    parser.add_argument("--llms", type=int_at_least(2), default=26, help="LLMs per study")
    parser.add_argument(
        "--capability-benchmarks", type=count, default=10, metavar="N", help="capability benchmarks"
    )
    parser.add_argument(
        "--safety-per-area",
        type=int_at_least(0),
        default=3,
        metavar="N",
        help="safety benchmarks in each area",
    )
    parser.add_argument(
        "--areas",
        nargs="+",
        default=["alignment", "bias", "calibration", "weaponization"],
        type=name_of(SAFETY_AREAS, "safety area"),
        metavar="AREA",
        help=f"safety areas, of {', '.join(SAFETY_AREAS)} "
        "(default: alignment bias calibration weaponization)",
    )
    parser.add_argument(
        "--missing",
        type=float_between(0.0, 1.0, low_inclusive=True),
        default=0.0,
        help="share of missing cells, in [0, 1)",
    )
    parser.add_argument("--mechanism", choices=MISSING_MECHANISMS, default="random")
    add_sampler_arguments(parser, draws=500, tune=500, chains=4)
    add_seed_argument(parser, default=0, help="seed of round 0 (default: %(default)s)")
    parser.add_argument(
        "--factors",
        nargs="*",
        default=[],
        type=name_of(SAFETY_AREAS, "safety area"),
        metavar="AREA",
        help="areas simulated and fitted with a factor of their own",
    )
    parser.add_argument(
        "--data-scale",
        choices=DATA_SCALES,
        default="model",
        help="fit the simulated scores on the model scale their prior draws live on "
        "(default), or standardised per benchmark first as a real study is (approximate)",
    )
    parser.add_argument(
        "--no-retry",
        action="store_true",
        help="keep every round's first attempt (by default a round fitted at fit's default "
        "tuning, --tune 1000, is retried once when untrusted, as 'safetywash fit' does)",
    )
    parser.add_argument("--rank-draws", type=count, default=RANK_DRAWS)
    parser.add_argument("--bins", type=count, default=10, help="rank histogram bins")
    parser.add_argument(
        "--out", type=output_dir, metavar="DIR", help="folder for sbc.nc and summary.json"
    )
    add_overwrite_argument(parser, "the --out folder")
    parser.add_argument(
        "--json", type=output_file, metavar="FILE", help="write the summary as JSON here"
    )
    parser.add_argument(
        "--workers",
        type=int_at_least(0),
        default=0,
        help="run rounds on a dask LocalCluster of this many processes (0: in this process)",
    )
    parser.add_argument("--scheduler", help="address of a running dask scheduler instead")
    parser.add_argument(
        "--work-dir",
        type=output_dir,
        metavar="DIR",
        help="per-round results when distributed (default .OUT.rounds beside OUT, moved to "
        "OUT/rounds when done); a rerun skips finished rounds",
    )
    return parser


def print_round(r: int, n_rounds: int, info: dict) -> None:
    """One line per finished round (the progress callback of :func:`run_sbc`)."""
    if "message" in info:  # from the distributed runner, as rounds finish
        print(info["message"], flush=True)
        return
    flag = "ok" if info["trustworthy"] else "UNTRUSTED: " + "; ".join(info["problems"])
    flag += " (retried)" if info.get("retried") else ""
    compiled = " compiled" if info.get("compiled") else ""
    print(
        f"round {r + 1:>3}/{n_rounds} seed {info['seed']:>5}  {info['seconds']:5.1f} s{compiled}  "
        f"cov50 {info['coverage50']:.2f} cov90 {info['coverage90']:.2f} "
        f"mae {info['mae']:.3f}  rhat {info['max_rhat']:.3f} ess {info['min_ess']:.0f} "
        f"div {info['divergences']}  {flag}",
        flush=True,
    )


def summary_text(summary: dict) -> str:
    """The summary as a few readable lines: calibration overall and by role, trust, time."""
    lines = [
        f"SBC of rho: {summary['n_rounds']} rounds x {summary['n_benchmarks']} benchmarks, "
        f"ranks among {summary['rank_draws']} draws, {summary['bins']} bins",
        f"{'':<12}{'coverage50':>11}{'coverage90':>11}{'rank p':>9}{'mean rank':>10}{'mae':>8}",
    ]
    rows = {"all": summary, **summary.get("by_role", {})}
    for name, f in rows.items():
        lines.append(
            f"{name:<12}{f['coverage50']:>11.3f}{f['coverage90']:>11.3f}"
            f"{f['uniformity_p']:>9.3f}{f['mean_rank']:>10.3f}{f['mae_median']:>8.3f}"
        )
    lines.append(
        f"untrusted fits: {summary['n_untrusted']} of {summary['n_rounds']} (max R-hat "
        f"{summary['max_rhat']:.3f}, min ESS {summary['min_ess']:.0f}, divergences "
        f"{summary['divergences']}); flipped chains: {summary['n_flipped']}"
    )
    if "n_retried" in summary:
        lines.append(f"retried fits: {summary['n_retried']} of {summary['n_rounds']}")
    if "n_compiles" in summary:
        lines.append(
            f"compiled models: {summary['n_compiles']} for {summary['n_structures']} structure(s)"
        )
    lines.append(f"wall time: {summary['wall_seconds']:.1f} s")
    return "\n".join(lines)


def check_arguments(args: argparse.Namespace) -> Path | None:
    """Checks that need several arguments, before any round runs; the work folder."""
    unknown = [f for f in args.factors if f not in args.areas]
    if unknown:
        raise UsageError(f"--factors {unknown} must be among --areas")
    if args.seed + args.rounds - 1 > MAX_SEED:
        raise UsageError(
            f"--seed {args.seed} + --rounds {args.rounds} - 1 exceeds the largest seed "
            f"{MAX_SEED} (round r uses seed + r)"
        )
    if args.out is not None:
        prepare_output_folder(args.out, overwrite=args.overwrite, markers=SBC_MARKERS)
    distributed = args.workers > 0 or args.scheduler is not None
    if args.work_dir is not None or args.out is None or not distributed:
        return args.work_dir
    return args.out.parent / f".{args.out.name}.rounds"


def save_outputs(ds, text: str, out: Path, work_dir: Path | None, *, overwrite: bool) -> None:
    """Write OUT/sbc.nc, OUT/summary.json (and OUT/rounds from the default work folder)."""
    with staged_folder(out) as stage:
        write_netcdf(ds, stage / "sbc.nc")
        (stage / "summary.json").write_text(text + "\n", encoding="utf-8")
        if work_dir is not None and work_dir.name == f".{out.name}.rounds" and work_dir.is_dir():
            work_dir.rename(stage / "rounds")
        place_folder(stage, out, overwrite=overwrite)
    print(f"wrote {out / 'sbc.nc'} and {out / 'summary.json'}")


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash sbc``."""
    work_dir = check_arguments(args)
    safety = {area: args.safety_per_area for area in args.areas}
    config = ModelConfig(factors=tuple(args.factors))
    print(
        f"SBC: {args.rounds} rounds, {args.llms} LLMs x ({args.capability_benchmarks} "
        f"capability + {args.safety_per_area} x {len(args.areas)} safety), missing "
        f"{args.missing} ({args.mechanism}), draws {args.draws}, tune {args.tune}, "
        f"seed {args.seed}, scores on the {args.data_scale} scale",
        flush=True,
    )
    t0 = time.perf_counter()
    ds = run_sbc(
        args.rounds,
        n_llms=args.llms,
        n_capability=args.capability_benchmarks,
        safety=safety,
        missing=args.missing,
        mechanism=args.mechanism,
        draws=args.draws,
        tune=args.tune,
        seed=args.seed,
        config=config,
        chains=args.chains,
        rank_draws=args.rank_draws,
        data_scale=args.data_scale,
        retry=not args.no_retry,
        progress=None if args.no_progress else print_round,
        workers=args.workers,
        scheduler=args.scheduler,
        work_dir=work_dir,
    )
    summary = summarize_sbc(ds, bins=args.bins)
    summary["wall_seconds"] = time.perf_counter() - t0
    print(summary_text(summary), flush=True)
    if args.json is not None:
        write_json(args.json, summary)
    if args.out is not None:
        save_outputs(
            ds, json.dumps(summary, indent=2), args.out, work_dir, overwrite=args.overwrite
        )
    return 0
