"""Planning a new benchmark's evaluation (``safetywash.analysis.plan``, ``safetywash plan``).

The plan's expected widths and decisive rates are checked against a direct simulation
written here from the public pieces: simulated scores in a study of their own, scored by
:func:`safetywash.analysis.newbenchmark.score_benchmarks` (which standardises them by the
model's transform and summarises them by the fit's interval convention).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from safetywash.analysis.newbenchmark import score_benchmarks
from safetywash.analysis.plan import DECISIVE, chosen_llms, format_plan, plan_evaluation
from safetywash.cli import main
from safetywash.data.study import BenchmarkStudy
from safetywash.inference.fitfile import save_fit
from shared_fits import shared_fit

RHO = 0.6
NS = (5, 12)
SIMULATIONS = 60


@pytest.fixture(scope="module")
def plan_fit(tmp_path_factory):
    return shared_fit(tmp_path_factory)


def _direct(dt, llm_sets, rng) -> tuple[np.ndarray, np.ndarray]:
    """Width of rho's 94% HDI and whether the verdict is decisive, per simulation, for a
    benchmark with true rho ``RHO`` run on the LLMs ``llm_sets(rng)`` gives."""
    post = dt["posterior"]["capability"].stack(sample=("chain", "draw")).transpose("sample", "llm")
    llms = [str(k) for k in post["llm"].values]
    widths, decisive = [], []
    catalog = pd.DataFrame(
        {"key": ["new"], "role": ["safety"], "area": ["truthfulness"], "direction": ["higher"]}
    )
    for _ in range(SIMULATIONS):
        truth = post.values[rng.integers(post.shape[0])]
        y = RHO * truth + np.sqrt(1 - RHO**2) * rng.standard_normal(len(llms))
        chosen = llm_sets(rng)
        rows = pd.DataFrame(
            {"llm": chosen, "benchmark": "new", "value": [y[llms.index(c)] for c in chosen]}
        )
        new = BenchmarkStudy.from_frames(rows, None, catalog)
        got = score_benchmarks(dt, new, seed=int(rng.integers(1 << 30))).sel(benchmark="new")
        widths.append(float(got.rho_hdi_high - got.rho_hdi_low))
        p = float(got.p_separable)
        decisive.append(p < DECISIVE[0] or p > DECISIVE[1])
    return np.array(widths), np.array(decisive)


def test_plan_agrees_with_direct_simulation(plan_fit):
    """Expected width and P(decisive) per size and design, within Monte Carlo error."""
    _, _, dt = plan_fit
    plan = plan_evaluation(
        dt, ns=NS, prior=[RHO], n_simulations=SIMULATIONS, scoring_draws=10**6, seed=11
    )
    capability = dt["posterior"]["capability"].mean(("chain", "draw")).to_series()
    llms = list(capability.index)
    rng = np.random.default_rng(12)
    for n in NS:
        picked = chosen_llms(capability, n)
        designs = {
            "chosen": lambda _r, picked=picked: picked,
            "random": lambda r, n=n: list(r.choice(llms, n, replace=False)),
        }
        for design, sets in designs.items():
            widths, decisive = _direct(dt, sets, rng)
            got = plan.sel(n=n, design=design)
            se = np.hypot(float(got.width_se), widths.std() / np.sqrt(SIMULATIONS))
            assert abs(float(got.expected_width) - widths.mean()) < 4 * se, (n, design)
            p = (float(got.p_decisive) + decisive.mean()) / 2
            tol = 4 * np.sqrt(2 * max(p * (1 - p), 0.02) / SIMULATIONS)
            assert abs(float(got.p_decisive) - decisive.mean()) < tol, (n, design)
    # more LLMs, narrower intervals; spread over capability beats random at the smallest size
    widths = plan["expected_width"]
    assert (widths.sel(n=NS[1]) < widths.sel(n=NS[0])).all()
    small = plan.sel(n=NS[0])
    assert float(small.expected_width.sel(design="chosen")) < float(
        small.expected_width.sel(design="random")
    )


def test_chosen_llms_spread_over_capability():
    capability = pd.Series(np.arange(10.0)[::-1], index=[f"m{i}" for i in range(10)])
    picked = chosen_llms(capability, 4)
    assert picked == ["m9", "m6", "m3", "m0"]  # positions 0, 3, 6, 9 of the ranking
    assert len(set(chosen_llms(capability, 10))) == 10


def test_plan_keeps_to_the_candidates(plan_fit):
    _, _, dt = plan_fit
    llms = [str(k) for k in dt["posterior"]["llm"].values]
    candidates = llms[::3]
    plan = plan_evaluation(dt, ns=(4, 6), candidates=candidates, n_simulations=10, seed=1)
    chosen = {str(v) for v in plan["chosen"].values.ravel() if str(v)}
    assert chosen <= set(candidates)
    assert "Uniform(-1, 1)" in format_plan(plan)
    with pytest.raises(ValueError, match="cannot evaluate on 20 LLMs"):
        plan_evaluation(dt, ns=(20,), candidates=candidates, n_simulations=10)


def test_plan_is_seeded(plan_fit):
    _, _, dt = plan_fit
    one = plan_evaluation(dt, ns=(4,), n_simulations=10, scoring_draws=100, seed=5)
    two = plan_evaluation(dt, ns=(4,), n_simulations=10, scoring_draws=100, seed=5)
    np.testing.assert_array_equal(one["width"].values, two["width"].values)


def test_plan_command(plan_fit, tmp_path, capsys):
    study, _, dt = plan_fit
    run = tmp_path / "fit.nc"
    save_fit(dt, run)
    names = [f"org/{n}" for n in list(study.llms.index)[:9]] + ["not-an-llm"]
    candidates = tmp_path / "mine.csv"
    candidates.write_text("model\n" + "\n".join(names) + "\n")
    out, figure = tmp_path / "plan.json", tmp_path / "plan.png"
    argv = ["plan", str(run), "--n", "4", "8", "--candidates", str(candidates)]
    argv += ["--llm-column", "model", "--simulations", "10", "--prior", "fitted"]
    assert main([*argv, "--json", str(out), "--figure", str(figure), "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert "9 of 10 are LLMs of the fit" in text and "not-an-llm (line 11)" in text
    assert "pooled posterior draws" in text
    payload = json.loads(out.read_text())
    assert [(r["n_llms"], r["design"]) for r in payload["rows"]] == [
        (4, "chosen"), (4, "random"), (8, "chosen"), (8, "random")
    ]  # fmt: skip
    assert set(payload["chosen"]["8"]) <= set(study.llms.index[:9])
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert main([*argv[:4], "12", *argv[5:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--n 12 needs at least" in err[0]
