"""Prior sensitivity of a fit: refit with narrower and wider hyperpriors, compare verdicts.

Usage
-----
    python scripts/sensitivity.py runs/chat [--scales 0.5 2] [--out runs/chat/prior_sensitivity.csv]
    python scripts/sensitivity.py runs/chat --scales 0.5 2 --draws 500 --tune 500 --seed 1 \
        --save-fits runs/chat_sensitivity

Refits the fit's study (rebuilt from the fit) with ModelConfig(prior_scale=S) for each S,
one fit after another, with the fit's own config and sampler settings unless --draws,
--tune, --chains or --seed are given (--refit-reference also refits at the fit's own scale,
so that every fit compared comes from the same code and settings). Prints per benchmark
rho's median and P(separable) at every scale and flags benchmarks whose verdict
(P(separable) > 0.5, or the sign of rho's HDI) depends on the prior; writes the table as CSV.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetywash.analysis.fits import open_fit
from safetywash.analysis.sensitivity import (
    DEFAULT_SCALES,
    fit_sampler_settings,
    format_sensitivity,
    prior_sensitivity,
    refit_prior_scales,
    sensitivity_table,
)
from safetywash.analysis.separability import DEFAULT_CI_PROB, DEFAULT_TAU
from safetywash.inference.fitfile import save_fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder (with posterior.nc) or .nc fit")
    parser.add_argument(
        "--scales", type=float, nargs="+", default=list(DEFAULT_SCALES), help="prior scales"
    )
    parser.add_argument("--out", type=Path, help="CSV (default RUN/prior_sensitivity.csv)")
    parser.add_argument("--save-fits", type=Path, metavar="DIR", help="save refits here")
    parser.add_argument("--draws", type=int, help="draws per chain (default: the fit's)")
    parser.add_argument("--tune", type=int, help="tuning steps (default: the fit's)")
    parser.add_argument("--chains", type=int, help="chains (default: the fit's)")
    parser.add_argument("--seed", type=int, help="sampler seed (default: the fit's)")
    parser.add_argument("--tau", type=float, default=DEFAULT_TAU, help="separability threshold")
    parser.add_argument("--ci-prob", type=float, default=DEFAULT_CI_PROB, help="HDI mass")
    parser.add_argument(
        "--refit-reference",
        action="store_true",
        help="also refit at the fit's own prior scale (same code and settings for every fit)",
    )
    parser.add_argument("--all", action="store_true", help="print capability benchmarks too")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    try:
        dt = open_fit(args.run)
        settings = fit_sampler_settings(
            dt, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Refitting with prior_scale {args.scales} ({settings})", flush=True)
    refits = refit_prior_scales(
        dt,
        args.scales,
        settings=settings,
        refit_reference=args.refit_reference,
        progressbar=not args.no_progress,
    )
    if args.save_fits:
        for scale, refit in refits.items():
            path = save_fit(refit, args.save_fits / f"prior_scale_{scale:g}" / "posterior.nc")
            print(f"wrote {path}")
    result = prior_sensitivity(dt, refits, tau=args.tau, ci_prob=args.ci_prob)
    print(format_sensitivity(result, only_safety=not args.all))
    out = args.out or (args.run if args.run.is_dir() else args.run.parent) / (
        "prior_sensitivity.csv"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    sensitivity_table(result).to_csv(out, index=False)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
