"""Score a new LLM against a fitted study without refitting.

Usage
-----
    python scripts/score_llm.py runs/chat --scores new_llm.csv [--json OUT.json]
        [--population chat] [--ci-prob 0.9] [--seed 0] [--name "My LLM"]

new_llm.csv has a header ``benchmark,value`` and one row per benchmark the LLM was scored
on, in the study's stored units. Holding every benchmark parameter at each posterior draw,
the new LLM's capability has a closed-form Gaussian posterior per draw; the script prints
the posterior of its capability (and its place among the fitted LLMs) and predicted scores
with intervals on the benchmarks it lacks, back in stored units.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetywash.analysis.fits import open_fit
from safetywash.analysis.newllm import (
    DEFAULT_PREDICTION_PROB,
    format_new_llm,
    new_llm_json,
    score_new_llm,
)
from safetywash.analysis.newscores import read_new_scores, validate_new_scores
from safetywash.data.errors import StudyValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder (with posterior.nc) or .nc fit")
    parser.add_argument("--scores", type=Path, required=True, help="CSV: benchmark,value")
    parser.add_argument("--population", help="the LLM's population (default: the fit's only)")
    parser.add_argument(
        "--ci-prob", type=float, default=DEFAULT_PREDICTION_PROB, help="interval probability"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the posterior draws")
    parser.add_argument("--name", default="the new LLM", help="name used in the report")
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)

    try:
        dt = open_fit(args.run)
        scores = validate_new_scores(read_new_scores(args.scores), dt, source=str(args.scores))
        result = score_new_llm(
            dt, scores, population=args.population, ci_prob=args.ci_prob, seed=args.seed
        )
    except (StudyValidationError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_new_llm(result, name=args.name))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"name": args.name, **new_llm_json(result)}
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
