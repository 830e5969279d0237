"""Scoring a new benchmark without refitting, checked against full refits (leave one out).

For each chosen Safetywashing chat safety benchmark: fit the study without it (and without
its parts, which the aggregate level would otherwise bring back), score it back with
:func:`safetywash.analysis.newbenchmark.score_benchmarks` (the cut posterior: its intercept,
loading and residual given each posterior draw of capability), and compare with the fit
that included it. The issue's targets: rho medians within 0.05, interval widths within 25%.

A second score of each benchmark, onto the fit that included it (under another key), holds
capability at draws that already saw the benchmark: it separates the scorer's own error
(column ``self``: its width ratio, which should be 1) from the cut's real effect (a
benchmark that loads strongly on capability sharpens capability in a full fit, and so its
own interval; the cut posterior leaves that feedback out).

Usage
-----
    nice -n 5 .venv/bin/python benchmarks/bench_score_benchmark.py
    nice -n 5 .venv/bin/python benchmarks/bench_score_benchmark.py --keys bbq wmdp \\
        --cache runs/bench_score_benchmark --json runs/bench_score_benchmark.json

Fits are saved under ``--cache`` (one ``.nc`` per fit, keyed by the left-out benchmark and
the sampler settings) and reused on a second run; they run one after another, in this
process, with the package's default model and sampler settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from safetywash.analysis.intervals import CI_KIND, CI_PROB
from safetywash.analysis.newbenchmark import score_benchmarks
from safetywash.analysis.separability import DEFAULT_TAU, separability
from safetywash.data.load import default_data_dir, load_dataset
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import diagnostics_of, load_fit, save_fit
from safetywash.inference.settings import SamplerSettings

#: Safety benchmarks left out one at a time: one to three per area, |rho| from 0.2 to 0.95,
#: one scored on 20 LLMs.
DEFAULT_KEYS = (
    "truthfulqa_mc1",
    "bbq",
    "wmdp",
    "HarmBench-GCG-T-all",
    "rmsce_mmlu",
    "LMSYS_Chatbot_Arena",
    "MT_Bench",
    "sycophancy",
    "cyberseceval2_mitre",
)
MEDIAN_TOLERANCE = 0.05
WIDTH_TOLERANCE = 0.25


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", nargs="+", default=list(DEFAULT_KEYS), metavar="KEY")
    parser.add_argument("--cache", type=Path, default=Path("runs/bench_score_benchmark"))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--draws", type=int, default=SamplerSettings.draws)
    parser.add_argument("--tune", type=int, default=SamplerSettings.tune)
    parser.add_argument("--chains", type=int, default=SamplerSettings.chains)
    parser.add_argument("--seed", type=int, default=0, help="sampler and scoring seed")
    parser.add_argument("--fits-only", action="store_true", help="fit (or reuse) and stop")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    return parser.parse_args(argv)


def cached_fit(study, name: str, settings: SamplerSettings, cache: Path):
    """The fit of ``study`` saved as ``cache/<name>-<settings>.nc``, fitted if absent."""
    from safetywash.inference.sampling import fit  # imports PyMC: only when fitting

    tag = f"d{settings.draws}-t{settings.tune}-c{settings.chains}-s{settings.seed}"
    path = cache / f"{name}-{tag}.nc"
    if path.is_file():
        return load_fit(path, study=study), 0.0
    start = time.perf_counter()
    dt = fit(study, settings=settings, progressbar=False)
    seconds = time.perf_counter() - start
    cache.mkdir(parents=True, exist_ok=True)
    save_fit(dt, path)
    print(f"fitted {name} in {seconds:.0f} s -> {path}", flush=True)
    return dt, seconds


def without(study, key: str):
    """The study without ``key`` and its parts (the aggregate level keeps parts of an absent
    aggregate)."""
    parents = study.benchmarks["parent"]
    drop = {key, *parents.index[parents == key]}
    return study.subset(benchmarks=[b for b in study.benchmarks.index if b not in drop])


def renamed(study, key: str) -> BenchmarkStudy:
    """``key`` alone, under another key (so it can be scored onto a fit that has it)."""
    one = study.subset(benchmarks=[key])
    catalog = one.benchmarks.rename(index={key: f"{key} (again)"}).rename_axis("key")
    scores = one.scores.assign(benchmark=f"{key} (again)")
    return BenchmarkStudy.from_frames(scores, one.llms, catalog.reset_index())


def width(ds) -> float:
    return float(ds.rho_hdi_high - ds.rho_hdi_low)


def compare(full, loo, study, key: str, seed: int) -> dict:
    """One row: the fit that included ``key`` against ``key`` scored back onto ``loo``."""
    ref = separability(full, tau=DEFAULT_TAU, ci_prob=CI_PROB, ci_kind=CI_KIND).sel(benchmark=key)
    new = study.subset(benchmarks=[key])
    start = time.perf_counter()
    got = score_benchmarks(loo, new, tau=DEFAULT_TAU, ci_prob=CI_PROB, ci_kind=CI_KIND, seed=seed)
    seconds = time.perf_counter() - start
    got = got.sel(benchmark=key)
    again = score_benchmarks(full, renamed(study, key), seed=seed).isel(benchmark=0)
    ref_width, got_width = width(ref), width(got)
    row = {
        "benchmark": key,
        "area": str(study.benchmarks.loc[key, "area"]),
        "n_llms": int(got.n_llms),
        "refit_median": float(ref.rho_median),
        "refit_interval": [float(ref.rho_hdi_low), float(ref.rho_hdi_high)],
        "refit_p_separable": float(ref.p_separable),
        "scored_median": float(got.rho_median),
        "scored_interval": [float(got.rho_hdi_low), float(got.rho_hdi_high)],
        "scored_p_separable": float(got.p_separable),
        "median_difference": float(got.rho_median - ref.rho_median),
        "width_ratio": got_width / ref_width,
        "self_median_difference": float(again.rho_median - ref.rho_median),
        "self_width_ratio": width(again) / ref_width,
        "loo_fit_problems": diagnostics_of(loo).problems,
        "score_seconds": seconds,
    }
    row["ok"] = bool(
        abs(row["median_difference"]) <= MEDIAN_TOLERANCE
        and abs(row["width_ratio"] - 1) <= WIDTH_TOLERANCE
    )
    return row


def format_rows(rows: list[dict]) -> str:
    head = (
        f"{'benchmark':<22}{'area':<23}{'n':>3}{'refit rho [94% HDI]':>25}"
        f"{'scored rho [94% HDI]':>25}{'diff':>7}{'width':>7}{'self':>6}{'P(sep)':>11}"
        f"{'s':>6}  ok"
    )
    lines = [head]
    for r in rows:
        lo, hi = r["refit_interval"]
        slo, shi = r["scored_interval"]
        lines.append(
            f"{r['benchmark'][:21]:<22}{r['area'][:22]:<23}{r['n_llms']:>3}"
            f"{r['refit_median']:>+8.2f} [{lo:+.2f}, {hi:+.2f}]"
            f"{r['scored_median']:>+8.2f} [{slo:+.2f}, {shi:+.2f}]"
            f"{r['median_difference']:>+7.3f}{r['width_ratio']:>7.2f}{r['self_width_ratio']:>6.2f}"
            f"  {r['refit_p_separable']:.2f}/{r['scored_p_separable']:.2f}"
            f"{r['score_seconds']:>6.2f}  {'yes' if r['ok'] else 'NO'}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    root = args.data_dir if args.data_dir is not None else default_data_dir()
    study = load_dataset("safetywashing", population="chat", data_dir=root)
    settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed)
    full, _ = cached_fit(study, "full", settings, args.cache)
    fits = {
        key: cached_fit(without(study, key), f"without-{key}", settings, args.cache)[0]
        for key in args.keys
    }
    if args.fits_only:
        return 0
    rows = [compare(full, fits[key], study, key, args.seed) for key in args.keys]
    print(format_rows(rows))
    problems = diagnostics_of(full).problems + [p for r in rows for p in r["loo_fit_problems"]]
    print("fits:", "all trusted" if not problems else f"problems: {problems}")
    print(
        f"\ntargets: |median difference| <= {MEDIAN_TOLERANCE}, width ratio within "
        f"1 +/- {WIDTH_TOLERANCE}; {sum(r['ok'] for r in rows)} of {len(rows)} meet both"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "seed": args.seed}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
