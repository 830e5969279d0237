"""Write the report of a fit: Markdown, self-contained HTML and figures.

Usage
-----
    python scripts/report.py runs/chat
    python scripts/report.py runs/chat --figures figures/ --tau 0.5 --ci-prob 0.94
    python scripts/report.py runs/chat --benchmarks wmdp bbq truthfulqa_mc1

Reads <fit>/posterior.nc (from scripts/fit.py) and writes <fit>/report.md,
<fit>/report.html (figures embedded) and figures named <study>_<what>.png/.svg into the
figures folder: rho forest by area, capability ranking, scores against capability, the
posterior predictive check of the benchmark correlation matrix and, for fits with area
factors, a loadings heatmap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from safetywash.analysis.separability import DEFAULT_CI_PROB, DEFAULT_TAU
from safetywash.inference.fitfile import load_fit
from safetywash.report.document import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fit", type=Path, help="fit folder holding posterior.nc")
    parser.add_argument("--figures", type=Path, default=Path("figures"), help="figures folder")
    parser.add_argument("--tau", type=float, default=DEFAULT_TAU, help="separability threshold")
    parser.add_argument("--ci-prob", type=float, default=DEFAULT_CI_PROB, help="HDI probability")
    parser.add_argument(
        "--benchmarks",
        nargs="+",
        metavar="KEY",
        help="benchmarks for the scores-vs-capability panels (default: safety benchmarks "
        "spanning high and low |rho|)",
    )
    args = parser.parse_args(argv)

    dt = load_fit(args.fit / "posterior.nc")
    known = [str(k) for k in dt["constant_data"]["benchmark"].values]
    unknown = [b for b in args.benchmarks or [] if b not in known]
    if unknown:
        parser.error(f"benchmark(s) {unknown} are not in this fit; choose from {known}")
    md, page, report = write_report(
        dt,
        args.fit,
        figures_dir=args.figures,
        tau=args.tau,
        ci_prob=args.ci_prob,
        benchmarks=args.benchmarks,
    )
    print(report.blocks[1].text)
    print(f"wrote {md} and {page}")
    for png, svg in report.figures.values():
        print(f"wrote {png} and {svg}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
