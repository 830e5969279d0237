"""Prior sensitivity of a fit: refit with narrower and wider hyperpriors, compare verdicts.

Refits the fit's study (rebuilt from the fit) with ModelConfig(prior_scale=S) for each S,
one fit after another, with the fit's own config and sampler settings unless --draws,
--tune, --chains or --seed are given (--refit-reference also refits at the fit's own scale,
so that every fit compared comes from the same code and settings). Prints per benchmark
rho's median and P(separable) at every scale and flags benchmarks whose verdict depends on
the prior: P(separable) > 0.5 at some scales only, or the sign the posterior favours flips
(P(rho > 0) >= 0.6 at one scale, <= 0.4 at another). Writes the table as CSV, with rho's
interval and P(rho > 0) at every scale. --save-fits DIR writes every refit as
DIR/prior_scale_S/posterior.nc with its VERDICT; DIR is built beside its final place and
moved there when complete, and an existing non-empty DIR is refused before any refit
unless --overwrite is given.
"""

from __future__ import annotations

import argparse

from safetywash.analysis.fits import open_fit
from safetywash.analysis.intervals import CI_KIND, CI_PROB
from safetywash.analysis.sensitivity import (
    DEFAULT_SCALES,
    format_sensitivity,
    prior_sensitivity,
    refit_prior_scales,
    sensitivity_table,
)
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.cli.common import (
    add_ci_prob_argument,
    add_overwrite_argument,
    add_sampler_arguments,
    add_seed_argument,
    add_tau_argument,
    command_parser,
    float_between,
)
from safetywash.cli.paths import (
    add_run_argument,
    output_dir,
    output_file,
    prepare_output_folder,
    writable_run,
    write_csv,
)
from safetywash.inference.fitfile import fit_sampler_settings, save_fit
from safetywash.report.fit_summary import write_verdict
from safetywash.report.runfolder import place_folder, staged_folder

#: What a folder must hold for --overwrite to replace it (refits saved by this command).
SAVED_FITS_MARKERS = ("prior_scale_*",)

EXAMPLES = (
    "safetywash sensitivity runs/chat",
    "safetywash sensitivity runs/chat --scales 0.5 2 --csv runs/chat/prior_sensitivity.csv",
    "safetywash sensitivity runs/chat --scales 0.5 2 --draws 500 --tune 500 --seed 1 "
    "--save-fits runs/chat_sensitivity",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash sensitivity``."""
    parser = command_parser(subparsers, "sensitivity", __doc__, EXAMPLES)
    add_run_argument(parser)
    parser.add_argument(
        "--scales",
        type=float_between(0.0),
        nargs="+",
        default=list(DEFAULT_SCALES),
        metavar="S",
        help="prior scales (default: %(default)s)",
    )
    parser.add_argument(
        "--csv", type=output_file, metavar="FILE", help="CSV (default RUN/prior_sensitivity.csv)"
    )
    parser.add_argument("--save-fits", type=output_dir, metavar="DIR", help="save refits here")
    add_overwrite_argument(parser, "the --save-fits folder")
    add_sampler_arguments(parser, draws=None, tune=None, chains=None, default_note="the fit's")
    add_seed_argument(parser, default=None, help="sampler seed (default: the fit's)")
    add_tau_argument(parser, DEFAULT_TAU)
    add_ci_prob_argument(parser, CI_PROB, CI_KIND.upper())
    parser.add_argument(
        "--refit-reference",
        action="store_true",
        help="also refit at the fit's own prior scale (same code and settings for every fit)",
    )
    parser.add_argument(
        "--include-capability", action="store_true", help="print capability benchmarks too"
    )
    return parser


def save_refits(refits: dict, folder, *, overwrite: bool) -> None:
    """Write every refit (posterior.nc and VERDICT) into ``folder``, built whole."""
    with staged_folder(folder) as stage:
        for scale, refit in refits.items():
            save_fit(refit, stage / f"prior_scale_{scale:g}" / "posterior.nc")
            write_verdict(refit, stage / f"prior_scale_{scale:g}")
        place_folder(stage, folder, overwrite=overwrite)
    for scale in refits:
        print(f"wrote {folder / f'prior_scale_{scale:g}' / 'posterior.nc'}")


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash sensitivity``."""
    out = args.csv or writable_run(args.run) / "prior_sensitivity.csv"
    if args.save_fits:
        prepare_output_folder(
            args.save_fits,
            overwrite=args.overwrite,
            markers=SAVED_FITS_MARKERS,
            option="--save-fits",
        )
    dt = open_fit(args.run)
    settings = fit_sampler_settings(
        dt, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed
    )
    print(f"Refitting with prior_scale {args.scales} ({settings})", flush=True)
    refits = refit_prior_scales(
        dt,
        args.scales,
        settings=settings,
        refit_reference=args.refit_reference,
        progressbar=not args.no_progress,
    )
    if args.save_fits:
        save_refits(refits, args.save_fits, overwrite=args.overwrite)
    result = prior_sensitivity(dt, refits, tau=args.tau, ci_prob=args.ci_prob)
    print(format_sensitivity(result, only_safety=not args.include_capability))
    write_csv(out, sensitivity_table(result))
    print(f"wrote {out}")
    return 0
