"""Held-out prediction: mask a share of observed cells, fit, score against iterative PCA.

Masks a seeded random --fraction of the observed cells (every benchmark keeps at least 3
training cells with 2 distinct values, every LLM at least 1), fits the model to the rest as
`fit` does (an untrusted first attempt retried once; with --capability-dims auto, K chosen
on the training cells alone) and scores its posterior predictive on the masked cells on the
model's standardised scale (RMSE of the predictive mean, mean log predictive density, 90%
interval coverage), beside iterative-PCA imputation (rank 1-3 chosen on an inner split).
Prints a table; --json writes {"dataset", "fraction", "n_cells", "model": {...},
"pca": {...}}.
"""

from __future__ import annotations

import argparse
import sys

from safetywash.analysis.capability_dims import select_capability_dims
from safetywash.analysis.holdout import run_holdout
from safetywash.analysis.retry import fit_with_retry
from safetywash.cli.common import (
    add_dataset_arguments,
    add_sampler_arguments,
    add_seed_argument,
    check_study_arguments,
    command_parser,
    float_between,
    study_from_args,
)
from safetywash.cli.modeloptions import AUTO, add_capability_dims_argument, dims_of
from safetywash.cli.paths import output_file, write_json
from safetywash.inference.settings import SamplerSettings
from safetywash.model.config import ModelConfig

EXAMPLES = (
    "safetywash holdout --dataset safetywashing --fraction 0.1 --seed 0",
    "safetywash holdout --dataset helm-benchbench --fraction 0.1 --seed 1 --json out.json",
    "safetywash holdout --dataset safetywashing --draws 300 --tune 300 --no-progress",
    "safetywash holdout --scores my_scores.csv --metadata my_meta.csv --fraction 0.1",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``safetywash holdout``."""
    parser = command_parser(subparsers, "holdout", __doc__, EXAMPLES)
    add_dataset_arguments(parser, populations=False)
    parser.add_argument(
        "--population",
        default="all",
        metavar="NAME",
        help="LLM population (default all); with --scores, a value of its population column",
    )
    parser.add_argument(
        "--fraction",
        type=float_between(0.0, 1.0),
        default=0.1,
        help="share of cells held out, in (0, 1) (default: %(default)s)",
    )
    add_seed_argument(
        parser, default=0, help="seed of the mask and the sampler (default: %(default)s)"
    )
    add_sampler_arguments(
        parser,
        draws=SamplerSettings.draws,
        tune=SamplerSettings.tune,
        chains=SamplerSettings.chains,
    )
    add_capability_dims_argument(parser)
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write the result here")
    return parser


def format_table(result: dict) -> str:
    """The result as a small plain-text table."""
    model, pca = result["model"], result["pca"]
    lines = [
        f"{result['dataset']}: {result['n_cells']} held-out cells "
        f"(fraction {result['fraction']}, seed {model['mask_seed']}; "
        f"{model['n_train_cells']} training cells)",
        "",
        f"{'method':<28}{'RMSE':>8}{'MLPD':>9}{'cov90':>8}",
        f"{'latent-factor model (K=' + str(model['capability_dims']) + ')':<28}"
        f"{model['rmse']:>8.3f}{model['mlpd']:>9.3f}"
        f"{model['coverage90']:>8.3f}",
        f"{'iterative PCA (rank ' + str(pca['rank']) + ')':<28}{pca['rmse']:>8.3f}{'':>9}{'':>8}",
        f"{'benchmark mean':<28}{pca['column_mean_rmse']:>8.3f}{'':>9}{'':>8}",
        "",
        "Standardised scale (training benchmark mean 0, SD 1). "
        "PCA inner-split RMSE by rank: "
        + ", ".join(f"{k}: {v:.3f}" for k, v in pca["inner_rmse_by_rank"].items()),
        f"Fit: {model['fit_seconds']} s; {model['verdict']}",
    ]
    return "\n".join(lines)


def study_label(args: argparse.Namespace) -> str:
    """What the options name, for titles: the dataset, or the score file(s)."""
    if args.scores is None:
        label = args.dataset or "safetywashing"
    else:
        label = str(args.scores)
    adding = getattr(args, "add_scores", None)
    return label if adding is None else f"{label} + {adding}"


def run(args: argparse.Namespace) -> int:
    """Run ``safetywash holdout``."""
    check_study_arguments(args)
    settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed)
    study = study_from_args(args)
    print(f"Held-out prediction on {study!r}", flush=True)
    result = run_holdout(
        study,
        args.fraction,
        args.seed,
        config=ModelConfig(capability_dims=dims_of(args)),
        fitter=select_capability_dims if args.capability_dims == AUTO else fit_with_retry,
        settings=settings,
        dataset=study_label(args),
        progressbar=not args.no_progress,
    )
    print(format_table(result))
    if args.json is not None:
        write_json(args.json, result)
    if not result["model"]["trustworthy"]:
        print("warning: the training fit did not pass the diagnostics", file=sys.stderr)
    return 0
