"""Fit the hierarchical latent-factor model to a benchmark study.

Writes OUT/posterior.nc (an ArviZ DataTree: posterior, sample_stats, observed_data,
constant_data, log_likelihood; checksummed and compressed), OUT/separability.csv and
OUT/VERDICT (TRUSTED or NOT TRUSTED and why), prints the diagnostics and a table grouped by
safety area. OUT is built beside its final place and moved there when complete; an
existing non-empty OUT is refused before anything runs unless --overwrite is given. An
untrusted fit (R-hat > 1.01, ESS < 400 or divergences) is still written, for inspection,
and the command exits with status 2 unless --allow-untrusted is given.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import xarray as xr

from safetywash.analysis.baseline import store_paper_baseline
from safetywash.analysis.capability_dims import select_capability_dims
from safetywash.analysis.dims_choice import describe_dims_choice, dims_choice
from safetywash.analysis.intervals import CI_PROB
from safetywash.analysis.retry import fit_with_retry, retry_record
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.analysis.troubles import fit_troubles, suggested_flags
from safetywash.cli.common import (
    add_ci_kind_argument,
    add_ci_prob_argument,
    add_dataset_arguments,
    add_overwrite_argument,
    add_sampler_arguments,
    add_seed_argument,
    add_tau_argument,
    check_study_arguments,
    command_parser,
    float_between,
    study_from_args,
)
from safetywash.cli.modeloptions import AUTO, add_capability_dims_argument, dims_of
from safetywash.cli.paths import output_dir, prepare_output_folder
from safetywash.cli.values import UsageError, closest, name_of
from safetywash.data.catalog import SAFETY_AREAS
from safetywash.inference.fitfile import diagnostics_of
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import PARAMETERISATIONS, TRANSFORMS, ModelConfig
from safetywash.report.fit_summary import VERDICT_FILE, write_fit_outputs
from safetywash.report.runfolder import place_folder, staged_folder

UNTRUSTED_EXIT = 2
#: What a folder must hold for --overwrite to replace it (a run folder of 'fit').
RUN_MARKERS = ("posterior.nc", VERDICT_FILE)

EXAMPLES = (
    "safetywash fit --dataset safetywashing --population chat --out runs/chat",
    "safetywash fit --population all --out runs/all --draws 2000 --seed 3",
    "safetywash fit --population chat --factors bias calibration --out runs/chat_bias",
    "safetywash fit --dataset open-llm-leaderboard-v1 --capability-mode marginal --out runs/ollm",
    "safetywash fit --scores my_scores.csv --metadata my_meta.csv --llm-column Model --out runs/my",
    "safetywash fit --scores my_scores.csv --capability mmlu gsm8k --safety refusal=misuse "
    "--lower-is-better refusal --out runs/my",
    "safetywash fit --population chat --add-scores new.csv --metadata new_meta.csv --out runs/new",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash fit``."""
    parser = command_parser(subparsers, "fit", __doc__, EXAMPLES)
    add_dataset_arguments(parser)
    parser.add_argument(
        "--out", type=output_dir, required=True, metavar="DIR", help="output folder"
    )
    add_overwrite_argument(parser, "the --out folder (a run folder)")
    add_seed_argument(parser, default=0, help="sampler seed (default: %(default)s)")
    add_sampler_arguments(
        parser,
        draws=SamplerSettings.draws,
        tune=SamplerSettings.tune,
        chains=SamplerSettings.chains,
    )
    parser.add_argument(
        "--target-accept",
        type=float_between(0.0, 1.0),
        default=SamplerSettings.target_accept,
        metavar="P",
        help="NUTS target acceptance rate, in (0, 1) (default: %(default)s)",
    )
    parser.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie")
    parser.add_argument(
        "--factors",
        nargs="*",
        default=[],
        metavar="AREA",
        help=f"safety areas that get a factor of their own, of {', '.join(SAFETY_AREAS)} "
        "or a new area of your table (default: capability only)",
    )
    parser.add_argument(
        "--transform",
        choices=TRANSFORMS,
        default=ModelConfig().transform,
        help="score transform: 'auto' gives the logistic treatment to proportion scores "
        "crowding a bound and standardises the rest (default: %(default)s)",
    )
    parser.add_argument("--level", choices=("aggregate", "parts"), default="aggregate")
    parser.add_argument(
        "--capability-mode",
        choices=("auto", "sampled", "marginal"),
        default="auto",
        help="sample each LLM's capability, or integrate it out analytically (models "
        "without area factors); auto (default): integrated out from 100 LLMs when they "
        "outnumber benchmarks at least twice",
    )
    parser.add_argument(
        "--residuals",
        choices=PARAMETERISATIONS,
        default="auto",
        help="sample the benchmarks' log residual SDs centred on their pooled mean or "
        "non-centred; auto (default): each whitened by its own least-squares estimate",
    )
    add_capability_dims_argument(parser)
    add_tau_argument(parser, DEFAULT_TAU)
    add_ci_prob_argument(parser, CI_PROB, "credible interval")
    add_ci_kind_argument(parser)
    parser.add_argument("--posterior-predictive", action="store_true")
    parser.add_argument(
        "--allow-untrusted", action="store_true", help="exit 0 even when the diagnostics fail"
    )
    parser.add_argument(
        "--no-retry",
        action="store_true",
        help="do not retry an untrusted fit once with --tune 2000 --target-accept 0.99 "
        "(and capability integrated out when a benchmark is an almost perfect capability "
        "measure, the residual SDs non-centred when, centred, their spread mixed "
        "slowly, twice the draws when capability is integrated out); the retry happens "
        "only at the default --tune and --target-accept",
    )
    return parser


def check_factor_areas(factors, study) -> None:
    """Every ``--factors`` area is a safety area of the study."""
    areas = sorted(set(study.benchmarks.loc[study.benchmarks["role"] == "safety", "area"]))
    for area in factors:
        if area not in areas:
            raise UsageError(
                f"--factors: {area!r} is not a safety area of {study.name}{closest(area, areas)} "
                f"(its areas: {', '.join(areas)})"
            )


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash fit``; 0, or 2 for an untrusted fit."""
    check_study_arguments(args)
    if args.scores is None:  # a registered dataset: the paper's areas, checked before loading
        for area in args.factors:
            try:
                name_of(SAFETY_AREAS, "safety area")(area)
            except argparse.ArgumentTypeError as err:
                raise UsageError(f"argument --factors: {err}") from None
    prepare_output_folder(args.out, overwrite=args.overwrite, markers=RUN_MARKERS)
    config = ModelConfig(
        transform=args.transform,
        factors=tuple(args.factors),
        level=args.level,
        capability=args.capability_mode,
        residuals=args.residuals,
        capability_dims=dims_of(args),
    )
    settings = SamplerSettings(
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        target_accept=args.target_accept,
        sampler=args.sampler,
        seed=args.seed,
    )
    study = study_from_args(args)
    check_factor_areas(args.factors, study)
    print(f"Fitting {study!r}\n  config {config.to_json()}", flush=True)
    fitter = select_capability_dims if args.capability_dims == AUTO else fit_with_retry
    dt = fitter(
        study,
        config,
        settings,
        retry=not args.no_retry,
        announce=lambda line: print(line, flush=True),
        posterior_predictive=args.posterior_predictive,
        progressbar=not args.no_progress,
    )
    dt = store_paper_baseline(dt, study)
    notes = trouble_notes(dt, getattr(args, "argv", None))
    with staged_folder(args.out) as stage:
        posterior, table, text = write_fit_outputs(
            dt, stage, tau=args.tau, ci_prob=args.ci_prob, ci_kind=args.ci_kind, notes=notes
        )
        out = place_folder(stage, args.out, overwrite=args.overwrite)
    print(text)
    names = ", ".join(p.name for p in (posterior, table, Path(VERDICT_FILE)))
    print(f"wrote {out}: {names}")
    diagnostics = diagnostics_of(dt)
    if not diagnostics.trustworthy:
        print(diagnostics.verdict(), file=sys.stderr)
        for line in notes:
            print(line, file=sys.stderr)
        print(f"{out} holds this untrusted fit for inspection (see {out / VERDICT_FILE})")
        if not args.allow_untrusted:
            return UNTRUSTED_EXIT
    return 0


def trouble_notes(dt: xr.DataTree, argv: list[str] | None) -> list[str]:
    """What VERDICT and the terminal say beyond the figures: a retry, causes, a command."""
    choice = dims_choice(dt)
    notes = [] if choice is None else [describe_dims_choice(choice, choice["chosen"])]
    record = retry_record(dt)
    if record is not None:
        first, tried = record["first_attempt"], record["retry_flags"]
        notes.append(
            f"Retried once with {' '.join(f'{k} {v}' for k, v in tried.items())} after a "
            "first attempt with "
            f"max R-hat {first['max_rhat']:.3f}, min bulk ESS {first['min_ess_bulk']:.0f}, "
            f"{first['divergences']} divergences."
        )
    troubles = fit_troubles(dt)
    if not troubles:
        return notes
    notes.append("Likely causes:")
    notes.extend(f"  {t.line()}" for t in troubles)
    flags = suggested_flags(troubles)
    if record is not None:
        flags = {k: v for k, v in flags.items() if tried.get(k) != v}
        flags = flags or {"--tune": "4000", "--draws": "2000", "--target-accept": "0.99"}
    if flags and argv is not None:
        notes.append(f"Try: {suggested_command(argv, flags)}")
    return notes


def suggested_command(argv: list[str], flags: dict[str, str]) -> str:
    """``safetywash <argv>`` with ``flags`` set (replacing their values) and ``--overwrite``."""
    words = list(argv)
    for flag, value in {**flags, "--overwrite": ""}.items():
        if flag in words:
            at = words.index(flag)
            if value:
                words[at + 1] = value
        else:
            words += [flag, value] if value else [flag]
    return "safetywash " + " ".join(shlex.quote(w) for w in words)
