"""Trust suite: is the default fit trusted on every shipped table, every seed and hard cases?

Usage
-----
    # everything: every case x seeds 0..7 at the package defaults (SamplerSettings())
    python benchmarks/bench_trust.py --json runs/bench_trust.json

    # a subset, quick settings, two fits at once through a local dask cluster
    python benchmarks/bench_trust.py --cases safetywashing-chat sim-thin-areas --seeds 0 \\
        --draws 200 --tune 200 --workers 2

Cases
-----
Designs and columns are described in ``benchmarks/README.md``. Real tables at the default
``ModelConfig``, from ``--data-dir`` else :func:`safetywash.data.load.default_data_dir`:
safetywashing-{base,chat,all}, helm-benchbench, epoch-benchmark-stitching,
open-llm-leaderboard-v1, and the README's examples
safetywashing-chat-calibration (``--factors calibration``) and own-study (its study of one's
own, ``data/examples/own_study.csv``, read as ``safetywash fit --scores`` reads it).
Simulated studies with known truth (``simulate``, seeded by the row's seed, which also
seeds the sampler), whose rows add the 90% coverage of the true ``rho`` and the mean
absolute error of its posterior median:
sim-indicator, sim-thin-areas, sim-missing-80, sim-saturating, sim-two-populations and
sim-2000-llms (left out by ``--skip-large``).

Every fit is what ``safetywash fit`` does at its defaults
(``safetywash.analysis.retry.fit_with_retry``): an untrusted first attempt is retried once
(the table marks it "retried"; ``--no-retry`` for first attempts only), and capability is
sampled or integrated out as ``ModelConfig(capability="auto")`` picks (column ``cap``).
Each fit runs in a fresh subprocess (``--one CASE SEED``), one after another, or ``--workers
N`` at once through ``safetywash.analysis.distributed.run_tasks`` (times then grow).
``--cold-cache`` gives every fit empty PyTensor/Numba caches: a seed's draws can depend on
whether the compiled model came from the cache. Exit status 1 unless every fit finished and
was trusted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fit  # a sibling script, not a package
from cold_cache import child_env
from safetywash.inference.diagnostics import MAX_RHAT, MIN_ESS  # no PyMC here
from safetywash.inference.settings import SamplerSettings

#: Real cases: name -> (dataset, population, ModelConfig keywords).
REAL_CASES = {
    "safetywashing-base": ("safetywashing", "base", {}),
    "safetywashing-chat": ("safetywashing", "chat", {}),
    "safetywashing-all": ("safetywashing", "all", {}),
    "safetywashing-chat-calibration": ("safetywashing", "chat", {"factors": ("calibration",)}),
    "helm-benchbench": ("helm-benchbench", "all", {}),
    "epoch-benchmark-stitching": ("epoch-benchmark-stitching", "all", {}),
    "open-llm-leaderboard-v1": ("open-llm-leaderboard-v1", "all", {}),
    # Two capability dimensions (the general factor and one further axis).
    "safetywashing-chat-dims2": ("safetywashing", "chat", {"capability_dims": 2}),
    "safetywashing-all-dims2": ("safetywashing", "all", {"capability_dims": 2}),
    "helm-benchbench-dims2": ("helm-benchbench", "all", {"capability_dims": 2}),
    "open-llm-leaderboard-v1-dims2": ("open-llm-leaderboard-v1", "all", {"capability_dims": 2}),
}
#: The README's study of one's own (13 LLMs, 3 capability quizzes, 1 safety benchmark), read
#: as ``safetywash fit`` reads it from these options.
OWN_STUDY = "own-study"
OWN_STUDY_OPTIONS = [
    "--scores",
    str(Path(__file__).resolve().parent.parent / "data" / "examples" / "own_study.csv"),
    "--llm-column",
    "Model",
    "--llm-meta",
    "family=Model Family",
    "params=Model Size (B)",
    "--capability",
    "quiz_a",
    "quiz_b",
    "quiz_c",
    "--safety",
    "harmful_refusal=misuse",
]
#: Simulated cases: name -> (keywords of simulate over the base design, change made after).
SIM_CASES = {
    "sim-indicator": (
        {"n_llms": 80, "n_items": {"cap00": 1172}, "residuals": {"cap00": 0.01}},
        None,
    ),
    "sim-thin-areas": ({"n_llms": 30, "safety": {"truthfulness": 1, "machine_ethics": 2}}, None),
    "sim-missing-80": ({"n_llms": 150, "missing": 0.8}, None),
    "sim-saturating": ({"n_llms": 120}, "saturate"),
    "sim-two-populations": ({"n_llms": 120, "populations": ("base", "chat")}, None),
    "sim-2000-llms": ({"n_llms": 2000, "missing": 0.5}, None),
}
LARGE_CASES = ("sim-2000-llms",)
CASES = (*REAL_CASES, OWN_STUDY, *SIM_CASES)
DEFAULT_SEEDS = tuple(range(8))
COVERAGE_PROB = 0.9
#: The base simulated design: 8 capability benchmarks and these safety areas.
FOUR_AREAS = {"alignment": 2, "truthfulness": 2, "machine_ethics": 2, "bias": 2}
#: Offset of the seed of the extra random steps of a stress case (kept apart from simulate's).
EXTRA_SEED = 10_000


# ------------------------------------------------------------------------- simulated cases


def simulate_case(name: str, seed: int):
    """The study and truth of a simulated case (designs in ``benchmarks/README.md``)."""
    from safetywash.model.simulate import simulate

    design, change = SIM_CASES[name]
    study, truth = simulate(**{"n_capability": 8, "safety": FOUR_AREAS, **design}, seed=seed)
    if change == "saturate":
        return saturated(study, truth, seed)
    return study, truth


def rebuilt(study, values: np.ndarray, catalog, suffix: str):
    """``study`` with new cell values (in ``study.scores`` order) and catalog."""
    from safetywash.data.study import BenchmarkStudy

    scores = study.scores.assign(value=values)
    return BenchmarkStudy.from_frames(
        scores, study.llms, catalog, name=f"{study.name}-{suffix}", source=study.name
    )


def saturated(study, truth, seed: int):
    """Squash every benchmark through a logistic curve into [0, 1] with a spread midpoint."""
    rng = np.random.default_rng(seed + EXTRA_SEED)
    catalog = study.benchmarks.copy()
    keys = catalog.index.to_numpy()
    midpoint = dict(zip(keys, rng.uniform(-2.0, 2.0, len(keys)), strict=True))
    raw = study.scores["value"].to_numpy(dtype=float)
    by_bench = study.scores.groupby("benchmark")["value"]
    z = (raw - by_bench.transform("mean").to_numpy()) / by_bench.transform("std").to_numpy()
    share = 1 / (1 + np.exp(-2.0 * (z - study.scores["benchmark"].map(midpoint).to_numpy())))
    chance = np.where(catalog["direction"] == "higher", 0.25, np.nan)
    floor = study.scores["benchmark"].map(dict(zip(keys, np.nan_to_num(chance), strict=True)))
    floor = floor.to_numpy()
    values = floor + (1 - floor) * share
    catalog = catalog.assign(scale="fraction", lower=0.0, upper=1.0, chance=chance)
    return rebuilt(study, values, catalog, "saturating"), truth


# ----------------------------------------------------------------------- one fit (child)


def build_case(name: str, seed: int, data_dir: Path | None):
    """``(study, truth or None, ModelConfig)`` of a case."""
    from safetywash.model.config import ModelConfig

    if name in REAL_CASES:
        from safetywash.data.load import default_data_dir, load_dataset

        dataset, population, options = REAL_CASES[name]
        root = data_dir if data_dir is not None else default_data_dir()
        return load_dataset(dataset, population, data_dir=root), None, ModelConfig(**options)
    if name == OWN_STUDY:
        from safetywash.cli.app import build_parser
        from safetywash.cli.common import study_from_args

        args = build_parser().parse_args(["fit", *OWN_STUDY_OPTIONS, "--out", "unused"])
        return study_from_args(args, report=lambda *_: None), None, ModelConfig()
    study, truth = simulate_case(name, seed)
    return study, truth, ModelConfig()


def rho_recovery(dt, truth) -> dict:
    """Coverage of the true ``rho`` by the central 90% interval, and the median's error."""
    from safetywash.analysis.separability import separability

    sep = separability(dt, ci_prob=COVERAGE_PROB, ci_kind="eti")
    keys = [k for k in truth["benchmark"].values if k in set(sep["benchmark"].values)]
    true = truth["rho"].sel(benchmark=keys).to_numpy()
    est = sep.sel(benchmark=keys)
    low, high = est["rho_hdi_low"].to_numpy(), est["rho_hdi_high"].to_numpy()
    median = est["rho_median"].to_numpy()
    covered = (low <= true) & (true <= high)
    return {
        "rho_coverage90": float(covered.mean()),
        "rho_mae": float(np.abs(median - true).mean()),
        "rho_detail": {
            str(k): {"true": t, "median": m, "low": lo, "high": hi, "covered": bool(c)}
            for k, t, m, lo, hi, c in zip(keys, true, median, low, high, covered, strict=True)
        },
    }


def axis_agreement(dt) -> dict:
    """Do the chains report the same further capability axes? Per axis, the lowest
    correlation of a chain's mean loadings with the mean over all chains (a reflected axis
    gives about -1, a swapped one about 0), and the mean loadings (for comparing seeds)."""
    loading = dt["posterior"]["axis_loading"]
    lowest, means = {}, {}
    for axis in loading["capability_axis"].values:
        per_chain = loading.sel(capability_axis=axis).mean("draw").values
        pooled = per_chain.mean(axis=0)
        lowest[str(axis)] = float(min(np.corrcoef(c, pooled)[0, 1] for c in per_chain))
        means[str(axis)] = [float(v) for v in pooled]
    return {"axis_chain_agreement": lowest, "axis_loading_mean": means}


def rho_medians(dt) -> dict:
    """Posterior median of every benchmark's ``rho`` (real cases: for comparing fits)."""
    rho = dt["posterior"]["rho"].median(("chain", "draw"))
    return {str(k): float(v) for k, v in zip(rho["benchmark"].values, rho.values, strict=True)}


def measure(name: str, seed: int, args: argparse.Namespace) -> dict:
    """Fit one case at one seed in this process; the figures as a dict."""
    t_proc = time.perf_counter()
    from safetywash.analysis.retry import fit_with_retry, retry_record
    from safetywash.inference.fitfile import diagnostics_of, fit_info

    study, truth, config = build_case(name, seed, args.data_dir)
    chosen = {"draws": args.draws, "tune": args.tune}
    settings = SamplerSettings(seed=seed, **{k: v for k, v in chosen.items() if v is not None})
    t0 = time.perf_counter()
    dt = fit_with_retry(study, config, settings, retry=not args.no_retry, progressbar=False)
    fit_s = time.perf_counter() - t0
    record = retry_record(dt)
    row = {
        "study": study.name,
        "n_llms": int(dt["constant_data"].sizes["llm"]),
        "n_benchmarks": int(dt["constant_data"].sizes["benchmark"]),
        "n_cells": int(dt["observed_data"].sizes["cell"]),
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": settings.chains,
        "fit_s": fit_s,
        "capability": fit_info(dt).capability_mode,
        "retried": record is not None,
        "first_attempt": None if record is None else record["first_attempt"],
        **diagnostics_of(dt).to_dict(),
    }
    if truth is not None:
        row.update(rho_recovery(dt, truth))
    else:
        row["rho_median"] = rho_medians(dt)
    if "axis_loading" in dt["posterior"].data_vars:
        row.update(axis_agreement(dt))
        row["axis_agreement_min"] = min(row["axis_chain_agreement"].values())
    row["in_process_s"] = time.perf_counter() - t_proc
    return row


# ---------------------------------------------------------------------- parent side


def child_command(name: str, seed: int, opts: dict, out: Path) -> list[str]:
    cmd = [sys.executable, opts["script"], "--one", name, str(seed), "--result-file", str(out)]
    for flag in ("draws", "tune", "data_dir"):
        if opts[flag] is not None:
            cmd += [f"--{flag.replace('_', '-')}", str(opts[flag])]
    return cmd + (["--no-retry"] if opts.get("no_retry") else [])


def run_child(name: str, seed: int, opts: dict) -> dict:
    """One fit in a fresh subprocess, stopped after ``opts["timeout"]`` seconds."""
    row: dict = {"case": name, "seed": seed}
    with tempfile.TemporaryDirectory(prefix="bench_trust_") as tmp:
        out, log_path = Path(tmp) / "result.json", Path(tmp) / "log.txt"
        env = child_env(Path(tmp), opts["cold_cache"])
        with open(log_path, "w") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                child_command(name, seed, opts, out),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=opts["timeout"])
                status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the session this function started
                proc.wait()
                status = f"timeout after {opts['timeout']:g} s"
            row["proc_s"] = time.perf_counter() - t0
        row["status"] = status if status != "ok" or out.exists() else "failed (no result)"
        if row["status"] == "ok":
            row.update(json.loads(out.read_text()))
        else:
            row["log_tail"] = "\n".join(log_path.read_text().strip().splitlines()[-15:])
            print(f"  {name} seed {seed}: {row['status']}\n{row['log_tail']}", file=sys.stderr)
    return row


def fit_task(name: str, seed: int, opts: dict):
    """:func:`run_child` as a task of ``run_tasks``: the row as JSON in a Dataset's attrs."""
    import xarray as xr

    return xr.Dataset(attrs={"row": json.dumps(finite(run_child(name, seed, opts)))})


def run_all(pairs: list[tuple[str, int]], opts: dict, workers: int) -> list[dict]:
    """Every (case, seed) fit: one after another, or ``workers`` at once through dask."""
    if workers <= 1:
        rows = []
        for i, (name, seed) in enumerate(pairs, 1):
            print(f"[{i}/{len(pairs)}] {name} seed {seed} ...", file=sys.stderr, flush=True)
            rows.append(run_child(name, seed, opts))
        return rows
    from safetywash.analysis.distributed import Task, run_tasks

    tasks = [
        Task(f"{name}_seed{seed}", fit_task, {"name": name, "seed": seed, "opts": opts})
        for name, seed in pairs
    ]
    with tempfile.TemporaryDirectory(prefix="bench_trust_tasks_") as tmp:
        say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
        done = run_tasks(tasks, tmp, n_workers=workers, progress=say)
        return [json.loads(done[t.key].attrs["row"]) for t in tasks]


def verdict(row: dict) -> str:
    """``trusted``, ``NOT (what fails)`` or why the fit did not finish."""
    if row.get("status") != "ok":
        return row.get("status", "?")
    if row["trustworthy"]:
        return "trusted"
    checks = (
        ("R-hat", not (row["max_rhat"] or math.inf) <= MAX_RHAT),
        ("bulk", not (row["min_ess_bulk"] or 0) >= MIN_ESS),
        ("tail", not (row["min_ess_tail"] or 0) >= MIN_ESS),
        ("div", row["divergences"] > 0),
    )
    return f"NOT ({', '.join(label for label, failed in checks if failed)})"


def worst_variable(row: dict) -> str:
    """The variable behind the first failing check, else the one with the largest R-hat."""
    if row.get("status") != "ok":
        return "-"
    rhat_ok = (row["max_rhat"] or math.inf) <= MAX_RHAT
    if rhat_ok and not (row["min_ess_bulk"] or 0) >= MIN_ESS:
        return row["worst_ess_bulk"]
    if rhat_ok and not (row["min_ess_tail"] or 0) >= MIN_ESS:
        return row["worst_ess_tail"]
    return row["worst_rhat"]


COLUMNS = (
    ("R-hat", "max_rhat", "{:.3f}"),
    ("bulk", "min_ess_bulk", "{:.0f}"),
    ("tail", "min_ess_tail", "{:.0f}"),
    ("div", "divergences", "{:d}"),
    ("fit s", "fit_s", "{:.1f}"),
    ("cov90", "rho_coverage90", "{:.2f}"),
    ("|err|", "rho_mae", "{:.3f}"),
    ("axes", "axis_agreement_min", "{:.2f}"),
)


def format_table(rows: list[dict]) -> str:
    """The rows as aligned text (text columns left, numbers right)."""
    header = ["case", "seed", "cap", "verdict", *(h for h, _, _ in COLUMNS), "worst"]
    body = []
    for row in rows:
        numbers = []
        for _, key, fmt in COLUMNS:
            value = row.get(key)
            numbers.append("-" if value is None else fmt.format(value))
        mode = str(row.get("capability", "-"))[:4]
        shown = verdict(row) + (" (retried)" if row.get("retried") else "")
        body.append([row["case"], str(row["seed"]), mode, shown, *numbers, worst_variable(row)])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    left = {0, 2, 3, len(header) - 1}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


def seed_agreement(rows: list[dict]) -> list[str]:
    """Per case with capability axes: the lowest correlation of a seed's mean axis loadings
    with the first seed's (a seed with a reflected or swapped axis shows about -1 or 0)."""
    lines = []
    for case in dict.fromkeys(r["case"] for r in rows):
        means = [
            r["axis_loading_mean"] for r in rows if r["case"] == case and "axis_loading_mean" in r
        ]
        if len(means) < 2:
            continue
        lowest = min(
            float(np.corrcoef(m[axis], means[0][axis])[0, 1]) for m in means[1:] for axis in m
        )
        lines.append(
            f"{case}: axes agree across {len(means)} seeds, lowest correlation {lowest:.3f}"
        )
    return lines


def finite(value):
    """NaN and infinities as null and numpy scalars as Python numbers, so JSON is standard."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


# ---------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__.splitlines()
    parser = argparse.ArgumentParser(
        description=doc[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(doc[2:]),
    )
    parser.add_argument(
        "--cases", "--case", nargs="+", choices=CASES, default=list(CASES), metavar="CASE"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--skip-large", action="store_true", help=f"leave out {LARGE_CASES}")
    parser.add_argument("--draws", type=int, default=None, help="default: SamplerSettings()")
    parser.add_argument("--tune", type=int, default=None, help="default: SamplerSettings()")
    parser.add_argument("--workers", type=int, default=1, help="fits at once (dask if > 1)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write JSON here")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per fit")
    parser.add_argument(
        "--cold-cache", action="store_true", help="empty PyTensor and Numba caches for every fit"
    )
    parser.add_argument(
        "--no-retry",
        action="store_true",
        help="first attempts only (by default an untrusted fit is retried once, as `fit` does)",
    )
    # Internal: run one fit in this process and write its figures as JSON.
    parser.add_argument("--one", nargs=2, metavar=("CASE", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir}: no such directory")
    if args.one is not None:
        row = measure(args.one[0], int(args.one[1]), args)
        args.result_file.write_text(json.dumps(finite(row), indent=1))
        return 0
    cases = [c for c in dict.fromkeys(args.cases) if not (args.skip_large and c in LARGE_CASES)]
    pairs = [(name, seed) for name in cases for seed in dict.fromkeys(args.seeds)]
    opts = {k: getattr(args, k) for k in ("draws", "tune", "timeout", "cold_cache", "no_retry")}
    opts["data_dir"] = str(args.data_dir) if args.data_dir is not None else None
    opts["script"] = str(Path(__file__).resolve())
    t0 = time.perf_counter()
    rows = run_all(pairs, opts, args.workers)
    wall = time.perf_counter() - t0
    n_trusted = sum(r.get("status") == "ok" and r["trustworthy"] for r in rows)
    default = SamplerSettings()
    print(
        f"draws {args.draws or default.draws}, tune {args.tune or default.tune}, chains "
        f"{default.chains}, target_accept {default.target_accept}, {default.sampler}; "
        f"{args.workers} worker(s), {os.cpu_count()} CPUs, {wall:.0f} s in all"
    )
    print(format_table(rows))
    print(f"{n_trusted} of {len(rows)} fits trusted")
    for line in seed_agreement(rows):
        print(line)
    if args.json is not None:
        payload = {
            "script": "benchmarks/bench_trust.py",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": {**opts, "cases": cases, "seeds": args.seeds, "workers": args.workers},
            "wall_s": wall,
            "environment": bench_fit.environment(),
            "results": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(finite(payload), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0 if n_trusted == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
