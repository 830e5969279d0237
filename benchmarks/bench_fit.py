"""Time the model fit with nutpie and with PyMC's own NUTS, case by case, side by side.

Usage
-----
    # the three standard cases, each with both samplers (1000 draws, 1000 tuning, 4 chains)
    python benchmarks/bench_fit.py --json bench_fit.json

    # a subset, other sampler settings
    python benchmarks/bench_fit.py --cases safetywashing-chat sim-300x40 --samplers nutpie \\
        --draws 500 --tune 500 --chains 4 --seed 1

    # quick custom simulated sizes: sim:LLMSxBENCHMARKS[xMISSING] (missing share, default 0.4)
    python benchmarks/bench_fit.py --cases sim:40x10x0.2 --draws 200 --tune 200
    python benchmarks/bench_fit.py --sizes 500x20x0.3 1000x30x0.5 --samplers nutpie

    # a truly cold compile: every fit gets a fresh, empty PyTensor/Numba compile directory
    python benchmarks/bench_fit.py --cases sim-300x40 --cold-cache

Cases
-----
``safetywashing-chat``
    The real Safetywashing chat study (``load_dataset("safetywashing", "chat")`` from
    ``--data-dir``, else :func:`safetywash.data.load.default_data_dir`), default ``ModelConfig``.
``sim-300x40``
    ``simulate``: 300 LLMs, 40 benchmarks (16 capability + 24 safety over 6 areas), 40% of
    the cells missing at random.
``sim-2000x30``
    ``simulate``: 2000 LLMs, 30 benchmarks (12 capability + 18 safety over 6 areas), 50%
    missing at random.
``sim:NxB[xM]``
    ``simulate``: N LLMs, B benchmarks (40% capability, the rest spread over up to 6 safety
    areas), share M missing (``--mechanism``: at random, or by LLM era).
``dataset:NAME``
    A registered dataset, all populations (e.g. ``dataset:open-llm-leaderboard-v1``).

``--capability-mode marginal`` fits every case with capability integrated out analytically
(``ModelConfig(capability="marginal")``) instead of sampled.

Every (case, sampler) pair runs in a fresh subprocess (this script with ``--one CASE
SAMPLER``), one after another, so compile time includes every in-process JIT (the on-disk
PyTensor/Numba cache is shared unless ``--cold-cache``) and memory is measured per fit.

Columns
-------
proc s       wall time of the whole subprocess (imports, data, fit)
fit s        wall time of ``safetywash.inference.sampling.fit``
             (prepare, build, compile, sample, post)
compile s    model compilation as recorded by ``fit`` (for PyMC: everything in ``pm.sample``
             before the draws, i.e. compile + init)
sample s     sampling (tuning + draws, all chains)
ESS/s        min bulk ESS over checked variables / sampling seconds
min ESS      min bulk ESS; max R-hat; div = divergent transitions after tuning
par          chains run at once (nutpie: min(chains, CPUs) threads; PyMC: the
             ``cores=min(chains, CPUs)`` processes that ``safetywash.inference.sampling`` asks for)
peak MiB     max resident set of the fitting process (``ru_maxrss``); when PyMC runs chains
             in worker processes they are not included, see ``tree MiB``
tree MiB     peak of the summed RSS of the subprocess and all its descendants, polled every
             0.1 s (Linux only; shared pages count once per process, so an upper bound)
verdict      OK when R-hat <= 1.01, bulk and tail ESS >= 400 and no divergences
             (:mod:`safetywash.inference.diagnostics`), else what fails

The exit status is 1 when a fit failed or timed out (an untrusted fit is not a failure).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cold_cache import child_env  # a sibling module of this script

SAMPLERS = ("nutpie", "pymc")
#: Share of simulated benchmarks that measure capability; the rest are safety benchmarks.
CAPABILITY_SHARE = 0.4
#: Safety areas the simulated safety benchmarks are spread over (at most).
SIM_AREAS = 6
DEFAULT_MISSING = 0.4
POLL_SECONDS = 0.1
SIM_PATTERN = re.compile(r"^(?:sim:)?(\d+)x(\d+)(?:x([0-9.]+))?$")


@dataclass(frozen=True)
class Case:
    """One study to fit: the real chat study or a simulated one."""

    name: str
    n_llms: int = 0
    n_benchmarks: int = 0
    missing: float = 0.0

    @property
    def simulated(self) -> bool:
        return self.name != "safetywashing-chat" and not self.name.startswith("dataset:")


STANDARD_CASES = {
    "safetywashing-chat": Case("safetywashing-chat"),
    "sim-300x40": Case("sim-300x40", 300, 40, 0.4),
    "sim-2000x30": Case("sim-2000x30", 2000, 30, 0.5),
}


def parse_case(text: str) -> Case:
    """A standard case name, or ``sim:NxB[xM]`` (N LLMs, B benchmarks, share M missing)."""
    if text in STANDARD_CASES:
        return STANDARD_CASES[text]
    if text.startswith("dataset:"):
        return Case(text)
    match = SIM_PATTERN.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"unknown case {text!r}: use one of {sorted(STANDARD_CASES)} or sim:NxB[xM], "
            "e.g. sim:500x20x0.3"
        )
    n_llms, n_bench = int(match[1]), int(match[2])
    missing = float(match[3]) if match[3] is not None else DEFAULT_MISSING
    if n_llms < 4 or n_bench < 2 or not 0.0 <= missing < 1.0:
        raise argparse.ArgumentTypeError(
            f"bad size {text!r}: need at least 4 LLMs, 2 benchmarks and 0 <= missing < 1"
        )
    return Case(f"sim:{n_llms}x{n_bench}x{missing:g}", n_llms, n_bench, missing)


def benchmark_split(n_benchmarks: int) -> tuple[int, dict[str, int]]:
    """Capability count and safety benchmarks per area for a simulated study."""
    from safetywash.data.catalog import SAFETY_AREAS

    n_cap = min(max(1, round(CAPABILITY_SHARE * n_benchmarks)), n_benchmarks - 1)
    n_safe = n_benchmarks - n_cap
    areas = SAFETY_AREAS[: min(SIM_AREAS, n_safe)]
    safety = {a: n_safe // len(areas) + (i < n_safe % len(areas)) for i, a in enumerate(areas)}
    return n_cap, safety


# --------------------------------------------------------------------------- child side


def load_case(case: Case, args: argparse.Namespace):
    """The study of a case (simulated with ``--seed`` or read from the data directory)."""
    if case.simulated:
        from safetywash.model.simulate import simulate

        n_cap, safety = benchmark_split(case.n_benchmarks)
        study, _ = simulate(
            case.n_llms,
            n_cap,
            safety,
            missing=case.missing,
            mechanism=args.mechanism,
            seed=args.seed,
        )
        if study.n_benchmarks != case.n_benchmarks:  # guard against silent defaults
            raise RuntimeError(
                f"simulated {study.n_benchmarks} benchmarks, expected {case.n_benchmarks}"
            )
        return study
    from safetywash.data.load import default_data_dir, load_dataset

    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    if case.name.startswith("dataset:"):
        return load_dataset(case.name.removeprefix("dataset:"), "all", data_dir=data_dir)
    return load_dataset("safetywashing", "chat", data_dir=data_dir)


def run_one(case: Case, sampler: str, args: argparse.Namespace) -> dict:
    """Fit one case with one sampler in this process; the measurements as a dict."""
    t_proc = time.perf_counter()
    from safetywash.inference.sampling import fit
    from safetywash.inference.settings import SamplerSettings
    from safetywash.model.config import ModelConfig

    study = load_case(case, args)
    settings = SamplerSettings(
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        target_accept=args.target_accept,
        sampler=sampler,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    dt = fit(study, ModelConfig(capability=args.capability_mode), settings, progressbar=False)
    fit_s = time.perf_counter() - t0
    timings = json.loads(dt.attrs["timings"])
    diag = json.loads(dt.attrs["diagnostics"])
    sampling = float(timings.get("sampling", float("nan")))
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "study": study.name,
        # As fitted (the chat study's parts are left out at the default aggregate level).
        "n_llms": int(dt["constant_data"].sizes["llm"]),
        "n_benchmarks": int(dt["constant_data"].sizes["benchmark"]),
        "n_cells": int(dt["observed_data"].sizes["cell"]),
        "fit_s": fit_s,
        "compile_s": float(timings.get("compile", float("nan"))),
        "sampling_s": sampling,
        "postprocess_s": float(timings.get("postprocess", float("nan"))),
        "build_s": fit_s - sum(float(v) for v in timings.values()),
        "in_process_s": time.perf_counter() - t_proc,
        "min_ess_bulk": diag["min_ess_bulk"],
        "worst_ess_bulk": diag["worst_ess_bulk"],
        "min_ess_tail": diag["min_ess_tail"],
        "ess_bulk_per_s": diag["min_ess_bulk"] / sampling if sampling > 0 else float("nan"),
        "max_rhat": diag["max_rhat"],
        "worst_rhat": diag["worst_rhat"],
        "divergences": int(diag["divergences"]),
        "n_draws": int(diag["n_draws"]),
        "trustworthy": bool(diag["trustworthy"]),
        "capability": args.capability_mode,
        "verdict": diag["verdict"],
        # ru_maxrss is in KiB on Linux (bytes on macOS).
        "parallel_chains": parallel_chains(sampler, args.chains),
        "peak_mib": _kib_to_mib(self_kib),
        "children_peak_mib": _kib_to_mib(children_kib),
    }


def parallel_chains(sampler: str, chains: int) -> int:
    """How many chains run at once: ``min(chains, CPUs)`` for both samplers.

    nutpie runs chains in that many threads; ``safetywash.inference.sampling`` passes
    ``cores=min(chains, CPUs)`` to PyMC, which runs that many worker processes.
    """
    del sampler  # the same rule for both
    count = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    return min(chains, count)


def _kib_to_mib(value: int) -> float:
    return value / (1024**2 if sys.platform == "darwin" else 1024)


# -------------------------------------------------------------------------- parent side


def _children(pid: int) -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss_bytes(pid: int) -> int | None:
    """Summed resident set of a process and its descendants (None without /proc)."""
    if not os.path.isdir("/proc"):
        return None
    tree = _children(pid)
    todo, total, page = [pid], 0, os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        todo += tree.get(p, [])
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def child_command(case: Case, sampler: str, args: argparse.Namespace, out: Path) -> list[str]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        case.name,
        sampler,
        "--result-file",
        str(out),
        "--seed",
        str(args.seed),
        "--draws",
        str(args.draws),
        "--tune",
        str(args.tune),
        "--chains",
        str(args.chains),
        "--target-accept",
        str(args.target_accept),
        "--mechanism",
        args.mechanism,
        "--capability-mode",
        args.capability_mode,
    ]
    if args.data_dir is not None:
        cmd += ["--data-dir", str(args.data_dir)]
    return cmd


def run_child(case: Case, sampler: str, args: argparse.Namespace) -> dict:
    """Run one fit in a fresh subprocess, polling the memory of its process tree."""
    row = {"case": case.name, "sampler": sampler}
    with tempfile.TemporaryDirectory(prefix="bench_fit_") as tmp:
        tmp_path = Path(tmp)
        out = tmp_path / "result.json"
        env = child_env(tmp_path, args.cold_cache)
        log_path = tmp_path / "log.txt"
        with open(log_path, "w") as log:
            sink = None if args.verbose else log
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                child_command(case, sampler, args, out),
                stdout=sink,
                stderr=subprocess.STDOUT if sink else None,
                env=env,
                start_new_session=True,
            )
            peak, status = 0, None
            while True:
                try:
                    proc.wait(timeout=POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    rss = tree_rss_bytes(proc.pid)
                    if rss is not None:
                        peak = max(peak, rss)
                    if args.timeout and time.perf_counter() - t0 > args.timeout:
                        os.killpg(proc.pid, 9)  # the session this script started
                        proc.wait()
                        status = f"timeout after {args.timeout:g} s"
                        break
            row["proc_s"] = time.perf_counter() - t0
        row["tree_peak_mib"] = peak / 2**20 if peak else float("nan")
        if status is None and proc.returncode != 0:
            status = f"failed (exit {proc.returncode})"
        if status is None and out.exists():
            row.update(json.loads(out.read_text()))
            row["status"] = "ok"
        else:
            row["status"] = status or "failed (no result)"
            tail = log_path.read_text().strip().splitlines()[-15:] if not args.verbose else []
            row["log_tail"] = "\n".join(tail)
    return row


COLUMNS = (
    # header, key, format
    ("case", "case", "{}"),
    ("sampler", "sampler", "{}"),
    ("par", "parallel_chains", "{:d}"),
    ("proc s", "proc_s", "{:.1f}"),
    ("fit s", "fit_s", "{:.1f}"),
    ("compile s", "compile_s", "{:.1f}"),
    ("sample s", "sampling_s", "{:.1f}"),
    ("ESS/s", "ess_bulk_per_s", "{:.1f}"),
    ("min ESS", "min_ess_bulk", "{:.0f}"),
    ("max R-hat", "max_rhat", "{:.3f}"),
    ("div", "divergences", "{:d}"),
    ("peak MiB", "peak_mib", "{:.0f}"),
    ("tree MiB", "tree_peak_mib", "{:.0f}"),
)


def short_verdict(row: dict) -> str:
    """OK, DO NOT TRUST (with what fails) or the failure status."""
    if row.get("status") != "ok":
        return row.get("status", "?")
    if row["trustworthy"]:
        return "OK"
    problems = []
    if not row["max_rhat"] <= 1.01:
        problems.append("R-hat")
    if not row["min_ess_bulk"] >= 400:
        problems.append("bulk ESS")
    if not row["min_ess_tail"] >= 400:
        problems.append("tail ESS")
    if row["divergences"] > 0:
        problems.append("divergences")
    return f"DO NOT TRUST ({', '.join(problems)})"


def format_table(rows: list[dict]) -> str:
    """The rows as aligned text (text columns left, numbers right)."""
    header = [h for h, _, _ in COLUMNS] + ["verdict"]
    body = []
    for row in rows:
        cells = []
        for _, key, fmt in COLUMNS:
            value = row.get(key)
            try:
                cells.append("-" if value is None else fmt.format(value))
            except (TypeError, ValueError):
                cells.append(str(value))
        body.append([*cells, short_verdict(row)])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    left = {0, 1, len(header) - 1}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body)])


def environment() -> dict:
    """Versions and machine, recorded with the results."""
    from importlib.metadata import PackageNotFoundError, version

    out = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    for package in ("safetywash", "pymc", "pytensor", "nutpie", "numba", "numpy", "arviz"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def _finite(value):
    """NaN and infinities as null, so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# --------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument(
        "--cases",
        "--case",
        nargs="+",
        type=parse_case,
        default=None,
        metavar="CASE",
        help=f"cases to fit: {', '.join(STANDARD_CASES)} or sim:NxB[xM] "
        "(default: the three standard cases, unless --sizes is given)",
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=[],
        metavar="NxB[xM]",
        help="extra simulated cases: N LLMs x B benchmarks x share M missing "
        f"(default {DEFAULT_MISSING}), e.g. 500x20x0.3",
    )
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    parser.add_argument("--seed", type=int, default=0, help="simulation and sampler seed")
    parser.add_argument(
        "--capability-mode",
        choices=("sampled", "marginal"),
        default="sampled",
        help="sample every LLM's capability, or integrate it out (ModelConfig.capability)",
    )
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--target-accept", type=float, default=0.95)
    parser.add_argument(
        "--mechanism",
        choices=("random", "era"),
        default="random",
        help="how simulated cells go missing (default: at random)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="local data directory for safetywashing-chat (default: "
        "safetywash.data.load.default_data_dir())",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write JSON here")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds allowed per fit (default: none)"
    )
    parser.add_argument(
        "--cold-cache",
        action="store_true",
        help="give every fit a fresh, empty PyTensor/Numba compile directory",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the subprocesses' output instead of hiding it"
    )
    # Internal: run one fit in this process and write its measurements as JSON.
    parser.add_argument("--one", nargs=2, metavar=("CASE", "SAMPLER"), help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.one is not None:
        case_name, sampler = args.one
        if sampler not in SAMPLERS:
            parser.error(f"sampler must be one of {SAMPLERS}")
        result = run_one(parse_case(case_name), sampler, args)
        text = json.dumps(result, indent=1)
        if args.result_file is not None:
            args.result_file.write_text(text)
        else:
            print(text)
        return 0

    try:
        extra = [parse_case(f"sim:{s.removeprefix('sim:')}") for s in args.sizes]
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    cases = args.cases if args.cases is not None else ([] if extra else STANDARD_CASES.values())
    cases = list(dict.fromkeys([*cases, *extra]))  # keep order, drop repeats

    pairs = [(case, sampler) for case in cases for sampler in args.samplers]
    rows = []
    for i, (case, sampler) in enumerate(pairs, 1):
        print(f"[{i}/{len(pairs)}] {case.name} with {sampler} ...", file=sys.stderr, flush=True)
        row = run_child(case, sampler, args)
        if row["status"] != "ok":
            print(f"  {row['status']}\n{row.get('log_tail', '')}", file=sys.stderr, flush=True)
        rows.append(row)

    print(
        f"draws {args.draws}, tune {args.tune}, chains {args.chains}, target_accept "
        f"{args.target_accept}, seed {args.seed}, {os.cpu_count()} CPUs"
        f"{', cold compile cache' if args.cold_cache else ''}"
    )
    print(format_table(rows))
    if args.json is not None:
        settings = {
            k: getattr(args, k)
            for k in ("seed", "draws", "tune", "chains", "target_accept", "mechanism")
        }
        settings["cold_cache"] = args.cold_cache
        settings["data_dir"] = str(args.data_dir) if args.data_dir else None
        payload = {
            "script": "benchmarks/bench_fit.py",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": settings,
            "cases": [asdict(c) for c in cases],
            "environment": environment(),
            "results": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_finite(payload), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
