"""Fit the hierarchical latent-factor model to a benchmark study.

Usage
-----
    python scripts/fit.py --dataset safetywashing --population chat --out runs/chat
    python scripts/fit.py --population all --out runs/all --draws 2000 --seed 3
    python scripts/fit.py --population chat --factors bias calibration --out runs/chat_bias

Writes <out>/posterior.nc (an ArviZ DataTree: posterior, sample_stats, observed_data,
constant_data, log_likelihood) and <out>/separability.csv, prints the diagnostics and a
table grouped by safety area. Exits with status 2 when the fit is not to be trusted
(R-hat > 1.01, ESS < 400 or divergences), unless --allow-untrusted is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.cli.common import (
    add_dataset_arguments,
    resolve_data_dir_argument,
    resolve_population,
)
from safetywash.data.load import load_dataset
from safetywash.inference.sampling import SamplerSettings, diagnostics_of, fit
from safetywash.model.build import ModelConfig
from safetywash.report.fit_summary import write_fit_outputs

UNTRUSTED_EXIT = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=SamplerSettings.draws)
    parser.add_argument("--tune", type=int, default=SamplerSettings.tune)
    parser.add_argument("--chains", type=int, default=SamplerSettings.chains)
    parser.add_argument("--target-accept", type=float, default=SamplerSettings.target_accept)
    parser.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie")
    parser.add_argument(
        "--factors",
        nargs="*",
        default=[],
        metavar="AREA",
        help="safety areas that get a factor of their own (default: capability only)",
    )
    parser.add_argument("--transform", choices=("standardize", "logit"), default="standardize")
    parser.add_argument("--level", choices=("aggregate", "parts"), default="aggregate")
    parser.add_argument(
        "--capability",
        choices=("sampled", "marginal"),
        default="sampled",
        help="sample each LLM's capability, or integrate it out analytically (fast for "
        "thousands of LLMs; one-factor models only)",
    )
    parser.add_argument("--tau", type=float, default=DEFAULT_TAU, help="separability threshold")
    parser.add_argument("--posterior-predictive", action="store_true")
    parser.add_argument(
        "--allow-untrusted", action="store_true", help="exit 0 even when the diagnostics fail"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    args.population = resolve_population(args.dataset, args.population)

    study = load_dataset(
        args.dataset, args.population, data_dir=resolve_data_dir_argument(args.data_dir)
    )
    config = ModelConfig(
        transform=args.transform,
        factors=tuple(args.factors),
        level=args.level,
        capability=args.capability,
    )
    settings = SamplerSettings(
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        target_accept=args.target_accept,
        sampler=args.sampler,
        seed=args.seed,
    )
    print(f"Fitting {study!r}\n  config {config.to_json()}", flush=True)
    dt = fit(
        study,
        config,
        settings,
        posterior_predictive=args.posterior_predictive,
        progressbar=not args.no_progress,
    )
    posterior, table, text = write_fit_outputs(dt, args.out, tau=args.tau)
    print(text)
    print(f"wrote {posterior} and {table}")
    diagnostics = diagnostics_of(dt)
    if not diagnostics.trustworthy:
        print(diagnostics.verdict(), file=sys.stderr)
        if not args.allow_untrusted:
            return UNTRUSTED_EXIT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
