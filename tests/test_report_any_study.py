"""The report of any study: one or two safety benchmarks, area names beyond the paper's, the
study's own capability benchmarks named in the captions; and through the command on a fit of
a user's table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from fit_trees import simulated_fit_tree
from safetywash.analysis.baseline import (
    PAPER_CAPABILITY_BENCHMARKS,
    describe_capability_basis,
    store_paper_baseline,
)
from safetywash.cli import main
from safetywash.data.catalog import SAFETY_AREAS
from safetywash.inference.fitfile import study_from_fit
from safetywash.report.document import build_report
from safetywash.report.style import AREA_COLORS, NEW_AREA_COLORS, area_color, area_label

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _renamed(areas: dict[str, str], capability: dict[str, str]):
    """``rename(study)`` for simulated_fit_tree: new area names and capability display names."""

    def rename(study):
        bench = study.benchmarks.copy()
        bench["area"] = bench["area"].replace(areas)
        bench["display_name"] = [capability.get(k, n) for k, n in bench["display_name"].items()]
        return dataclasses.replace(study, benchmarks=bench)

    return rename


@pytest.mark.parametrize(
    "safety", [{"bias": 1}, {"bias": 1, "calibration": 1}, {"bias": 2}], ids=["1", "1+1", "2"]
)
def test_report_with_few_safety_benchmarks_in_new_areas(safety, tmp_path):
    new = {"bias": "misuse", "calibration": "honesty_x"}
    tree = simulated_fit_tree(safety=safety, seed=6, rename=_renamed(new, {}))
    stored = store_paper_baseline(tree, study_from_fit(tree))
    report = build_report(stored, report_dir=tmp_path, max_draws=40)
    for png, svg in report.figures.values():
        assert png.read_bytes()[:8] == PNG_MAGIC and svg.stat().st_size > 0
    for area in safety:
        assert f"{area_label(new[area])}" in report.markdown
    assert f"{sum(safety.values())} safety benchmarks:" in report.markdown


def test_new_areas_get_fixed_distinct_colours():
    paper = set(AREA_COLORS.values())
    assert not paper & set(NEW_AREA_COLORS)  # never mistaken for a paper area
    assert len(set(NEW_AREA_COLORS)) == len(NEW_AREA_COLORS)
    names = ["misuse", "honesty", "privacy", "deception", "jailbreaks"]
    colours = [area_color(a) for a in names]
    assert all(c in NEW_AREA_COLORS for c in colours)
    assert len(set(colours)) > 1  # not one grey for every new area
    assert colours == [area_color(a) for a in names]  # the same on every call
    assert [area_color(a) for a in SAFETY_AREAS] == [AREA_COLORS[a] for a in SAFETY_AREAS]


def test_caption_names_the_study_capability_benchmarks(tmp_path):
    shown = {"capability_00": "Quiz A", "capability_01": "Quiz B"}
    tree = simulated_fit_tree(seed=4, rename=_renamed({}, shown))
    study = study_from_fit(tree)
    stored = store_paper_baseline(tree, study)
    report = build_report(stored, report_dir=tmp_path, max_draws=40)
    caps = list(study.benchmarks.index[study.benchmarks["role"] == "capability"])
    names = [shown.get(k, k) for k in caps]
    assert f"this study's {len(caps)} capability benchmarks ({', '.join(names)};" in report.markdown
    assert "missing" not in report.markdown
    assert not any(k in report.markdown for k in PAPER_CAPABILITY_BENCHMARKS)


def test_capability_basis_in_words():
    paper = PAPER_CAPABILITY_BENCHMARKS
    assert describe_capability_basis(paper) == "the paper's 12 capability benchmarks"
    mixed = describe_capability_basis(("mmlu", "gsm8k", "my_quiz"), {"mmlu": "MMLU"})
    assert mixed.startswith("this study's 3 capability benchmarks (MMLU, gsm8k, my_quiz; 2 of")
    many = describe_capability_basis(tuple(f"c{i}" for i in range(15)))
    assert "c11 and 3 more;" in many and "c12" not in many


def test_report_command_on_a_fit_of_a_users_table(tmp_path, capsys):
    rng = np.random.default_rng(5)
    skill = rng.normal(size=14)
    table = pd.DataFrame(
        {
            "llm": [f"llm-{i}" for i in range(14)],
            "quiz": 0.5 + 0.1 * skill + 0.03 * rng.normal(size=14),
            "exam": 0.4 + 0.1 * skill + 0.03 * rng.normal(size=14),
            "refusal": 0.5 + 0.1 * rng.normal(size=14),
        }
    )
    table.to_csv(tmp_path / "scores.csv", index=False)
    run = tmp_path / "run"
    argv = ["fit", "--scores", str(tmp_path / "scores.csv"), "--capability", "quiz", "exam"]
    argv += ["--safety", "refusal=misuse", "--out", str(run), "--draws", "50", "--tune", "50"]
    argv += ["--chains", "1", "--no-progress", "--allow-untrusted"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    markdown = (run / "report.md").read_text(encoding="utf-8")
    assert "this study's 2 capability benchmarks (quiz, exam; the paper's own 12" in markdown
    assert "## Misuse" in markdown or "### Misuse" in markdown
    assert len(list((run / "figures").glob("*.png"))) == 4
