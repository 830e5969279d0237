"""A user's own score table through the commands: --scores (wide or long), --metadata,
--llm-column, --llm-meta, quick declarations, --encoding, populations, new areas.

The sampler of ``fit`` is replaced by a recorder of the study it would fit, which is checked
against the file's cells; one small real fit runs through ``holdout``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from safetywash.cli import main

META = (
    "key,display_name,role,area,direction,scale,lower,upper,chance,parent,note\n"
    "cap1,Cap one,capability,capability,higher,fraction,0,1,,,\n"
    "cap2,Cap two,capability,capability,higher,fraction,0,1,,,\n"
    "harm,Harm rate,safety,misuse,lower,fraction,0,1,,,a new area\n"
)


def _table(n: int = 8, seed: int = 0) -> pd.DataFrame:
    """A wide table of n LLMs: two capability columns, one new-area safety column, metadata."""
    rng = np.random.default_rng(seed)
    skill = rng.normal(size=n)
    return pd.DataFrame(
        {
            "Model": [f"org/llm-{i}" for i in range(n)],
            "Model Family": [f"fam{i % 3}" for i in range(n)],
            "Model Size (B)": [float(7 * (i + 1)) for i in range(n)],
            "cap1": np.round(0.5 + 0.1 * skill + 0.02 * rng.normal(size=n), 4),
            "cap2": np.round(0.4 + 0.1 * skill + 0.02 * rng.normal(size=n), 4),
            "harm": np.round(0.3 - 0.05 * skill + 0.05 * rng.normal(size=n), 4),
        }
    )


class Recorded(Exception):
    """Raised by the stand-in sampler once it has recorded the study."""


@pytest.fixture
def fitted(monkeypatch):
    """The studies 'safetywash fit' would have sampled (the sampler never runs)."""
    studies = []

    def record(study, *args, **kwargs):
        studies.append(study)
        raise Recorded

    monkeypatch.setattr("safetywash.analysis.retry.fit", record)
    return studies


def _fit(argv, tmp_path) -> None:
    with pytest.raises(Recorded):
        main(["fit", "--out", str(tmp_path / "run"), *argv])


def _error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_wide_file_with_metadata_and_llm_meta(tmp_path, fitted):
    table = _table()
    table.to_csv(tmp_path / "scores.csv", index=False)
    (tmp_path / "meta.csv").write_text(META)
    argv = ["--scores", str(tmp_path / "scores.csv"), "--metadata", str(tmp_path / "meta.csv")]
    argv += ["--llm-column", "Model", "--llm-meta", "family=Model Family"]
    argv += ["params=Model Size (B)"]
    _fit(argv, tmp_path)
    (study,) = fitted
    wide = study.to_wide()
    expected = table.set_index("Model")[["cap1", "cap2", "harm"]]
    np.testing.assert_allclose(wide.loc[expected.index, expected.columns], expected)
    assert dict(study.benchmarks["area"]) == {
        "cap1": "capability",
        "cap2": "capability",
        "harm": "misuse",
    }
    assert study.benchmarks.loc["harm", "direction"] == "lower"
    assert list(study.llms.loc[expected.index, "family"]) == list(table["Model Family"])
    assert list(study.llms.loc[expected.index, "params"]) == list(table["Model Size (B)"])


def test_long_file_gives_the_same_study(tmp_path, fitted):
    table = _table()
    table.drop(columns=["Model Family", "Model Size (B)"]).to_csv(tmp_path / "w.csv", index=False)
    long = table.melt(id_vars="Model", value_vars=["cap1", "cap2", "harm"], var_name="benchmark")
    long = long.sample(frac=1.0, random_state=3)  # row order must not matter
    long.to_csv(tmp_path / "l.csv", index=False)
    (tmp_path / "meta.csv").write_text(META)
    common = ["--metadata", str(tmp_path / "meta.csv"), "--llm-column", "Model"]
    _fit(["--scores", str(tmp_path / "w.csv"), *common], tmp_path)
    _fit(["--scores", str(tmp_path / "l.csv"), "--long", *common], tmp_path)
    wide, from_long = fitted
    pd.testing.assert_frame_equal(
        wide.to_wide().sort_index(), from_long.to_wide().sort_index(), check_names=False
    )


def test_quick_declarations_without_metadata(tmp_path, fitted):
    _table().to_csv(tmp_path / "scores.csv", index=False)
    argv = ["--scores", str(tmp_path / "scores.csv"), "--llm-column", "Model"]
    argv += ["--llm-meta", "family=Model Family", "params=Model Size (B)"]
    argv += ["--capability", "cap1", "cap2", "--safety", "harm=misuse", "--lower-is-better", "harm"]
    _fit(argv, tmp_path)
    (study,) = fitted
    bench = study.benchmarks
    assert dict(bench["role"]) == {"cap1": "capability", "cap2": "capability", "harm": "safety"}
    assert dict(bench["direction"]) == {"cap1": "higher", "cap2": "higher", "harm": "lower"}
    assert bench.loc["harm", "area"] == "misuse"


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        # Model Size (B) neither declared nor mapped: refused, listed with the other one.
        (
            ["--llm-meta", "family=Model Family", "--capability", "cap1", "cap2"],
            ["line 1, column 'Model Size (B)'", "['Model Size (B)', 'harm']"],
        ),
        (
            ["--llm-meta", "family=Model Family", "params=Model Size (B)", "--capability", "cap1"],
            ["column 'cap2'", "['cap2', 'harm']"],
        ),
        (
            ["--capability", "cap1", "cap2", "capp3", "--safety", "harm=misuse"],
            ["declared column 'capp3' is not in the file"],
        ),
        (
            [
                *("--llm-meta", "family=Model Family", "params=Model Size (B)"),
                *("--capability", "cap1", "cap2", "--safety", "harm=truthfullness"),
            ],
            ["column 'harm'", "nearly the paper's area 'truthfulness'"],
        ),
        (
            ["--llm-meta", "famly=Model Family", "--capability", "cap1"],
            ["unknown LLM column 'famly'", "'family'"],
        ),
        (["--llm-meta", "family"], ["expected KEY=COLUMN"]),
        (
            ["--llm-meta", "family=Model Family", "family=Model Size (B)"],
            ["argument --llm-meta: 'family' is given twice"],
        ),
        (
            [
                *("--llm-meta", "family=Model Family", "params=Model Size (B)"),
                *("--capability", "cap1", "cap2", "--safety", "harm=misuse", "cap1=bias"),
            ],
            ["column 'cap1'", "declared twice"],
        ),
        (
            ["--capability", "cap1", "cap2", "--safety", "harm=misuse", "harm=bias"],
            ["argument --safety: 'harm' is given twice (misuse, bias)"],
        ),
        (
            [
                *("--llm-meta", "family=Model Family", "params=Model Size (B)"),
                *("--capability", "cap1", "cap2", "--safety", "harm=misuse"),
                *("--lower-is-better", "cap3"),
            ],
            ["column 'cap3'", "declared lower-is-better but not as a capability or safety"],
        ),
        (["--encoding", "utf-9"], ["unknown text encoding 'utf-9'"]),
    ],
)
def test_bad_declarations_are_one_error_line(tmp_path, fitted, capsys, extra, needles):
    _table().to_csv(tmp_path / "scores.csv", index=False)
    argv = ["fit", "--out", str(tmp_path / "run"), "--scores", str(tmp_path / "scores.csv")]
    assert main([*argv, "--llm-column", "Model", *extra]) == 2
    line = _error(capsys)
    for needle in needles:
        assert needle in line, line
    assert fitted == [] and not (tmp_path / "run").exists()


def test_metadata_and_quick_declaration_of_one_column(tmp_path, fitted, capsys):
    _table().to_csv(tmp_path / "scores.csv", index=False)
    (tmp_path / "meta.csv").write_text(META)
    argv = ["fit", "--out", str(tmp_path / "run"), "--scores", str(tmp_path / "scores.csv")]
    argv += ["--llm-column", "Model", "--metadata", str(tmp_path / "meta.csv")]
    argv += ["--llm-meta", "family=Model Family", "params=Model Size (B)"]
    assert main([*argv, "--safety", "harm=misuse"]) == 2
    line = _error(capsys)
    assert "column 'harm'" in line and "described in" in line and "declare" in line
    assert fitted == []


def test_baseline_of_a_user_table(tmp_path):
    """The paper's baseline on a user's table: Spearman of each column with the first
    principal component of its capability columns (two here: their standardised sum)."""
    table = _table(12, seed=2)
    table.to_csv(tmp_path / "scores.csv", index=False)
    argv = ["baseline", "--scores", str(tmp_path / "scores.csv"), "--llm-column", "Model"]
    argv += ["--llm-meta", "family=Model Family", "params=Model Size (B)"]
    argv += ["--capability", "cap1", "cap2", "--safety", "harm=misuse", "--lower-is-better", "harm"]
    assert main([*argv, "--json", str(tmp_path / "b.json")]) == 0
    got = json.loads((tmp_path / "b.json").read_text())["correlations"]
    z = (table[["cap1", "cap2"]] - table[["cap1", "cap2"]].mean()) / table[["cap1", "cap2"]].std(
        ddof=0
    )
    score = z.sum(axis=1)
    expected = table["harm"].rank().corr(score.rank())
    assert got["harm"] == pytest.approx(expected, abs=1e-12)
    assert set(got) == {"cap1", "cap2", "harm"}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--dataset", "safetywashing", "--scores", "x.csv"], "not allowed with argument"),
        (["--capability", "a"], "--capability describes your table: it needs --scores"),
        (["--metadata", "m.csv"], "--metadata describes your table"),
        (["--strict-names"], "--strict-names needs --add-scores"),
        (["--new-llms"], "--new-llms needs --add-scores"),
        (["--scores", "x.csv", "--data-dir", "."], "--data-dir locates registered datasets"),
    ],
)
def test_table_options_need_a_table(tmp_path, fitted, capsys, argv, needle):
    for command in (["fit", "--out", str(tmp_path / "run")], ["baseline"], ["holdout"]):
        assert main([*command, *argv]) == 2
        assert needle in _error(capsys)
    assert fitted == []


def test_population_of_a_user_table(tmp_path, fitted, capsys):
    table = _table(10)
    table["population"] = ["base", "chat"] * 5
    table.to_csv(tmp_path / "scores.csv", index=False)
    argv = ["--scores", str(tmp_path / "scores.csv"), "--llm-column", "Model"]
    argv += ["--llm-meta", "family=Model Family", "params=Model Size (B)"]
    argv += ["--capability", "cap1", "cap2", "--safety", "harm=misuse"]
    _fit([*argv, "--population", "chat"], tmp_path)
    assert list(fitted[0].llms.index) == [f"org/llm-{i}" for i in range(1, 10, 2)]
    assert set(fitted[0].llms["population"]) == {"chat"}
    # Without a population column, naming one is an error, not an empty selection.
    table.drop(columns="population").to_csv(tmp_path / "scores.csv", index=False)
    assert main(["fit", "--out", str(tmp_path / "r2"), *argv, "--population", "chat"]) == 2
    assert "has no population column" in _error(capsys)


def test_latin1_table_with_encoding(tmp_path, fitted, capsys):
    table = _table()
    table.loc[0, "Model"] = "modèle-0"
    path = tmp_path / "scores.csv"
    path.write_bytes(table.to_csv(index=False).encode("latin-1"))
    argv = ["--scores", str(path), "--llm-column", "Model"]
    argv += ["--llm-meta", "family=Model Family", "params=Model Size (B)"]
    argv += ["--capability", "cap1", "cap2", "--safety", "harm=misuse"]
    assert main(["fit", "--out", str(tmp_path / "r"), *argv]) == 2
    assert "not valid UTF-8" in _error(capsys)
    _fit([*argv, "--encoding", "latin-1"], tmp_path)
    assert "modèle-0" in fitted[0].llms.index


def test_factors_of_a_new_area(tmp_path, fitted, capsys):
    _table().to_csv(tmp_path / "scores.csv", index=False)
    argv = ["--scores", str(tmp_path / "scores.csv"), "--llm-column", "Model"]
    argv += ["--llm-meta", "family=Model Family", "params=Model Size (B)"]
    argv += ["--capability", "cap1", "cap2", "--safety", "harm=misuse"]
    assert main(["fit", "--out", str(tmp_path / "r"), *argv, "--factors", "bias"]) == 2
    assert "--factors: 'bias' is not a safety area of scores (its areas: misuse)" in _error(capsys)
    _fit([*argv, "--factors", "misuse"], tmp_path)
    assert len(fitted) == 1


def test_holdout_on_a_user_table(tmp_path, capsys):
    """A real (small) fit: holdout takes --scores like every command that takes --dataset."""
    table = _table(16, seed=4)
    table.to_csv(tmp_path / "scores.csv", index=False)
    argv = ["holdout", "--scores", str(tmp_path / "scores.csv"), "--llm-column", "Model"]
    argv += ["--llm-meta", "family=Model Family", "params=Model Size (B)"]
    argv += ["--capability", "cap1", "cap2", "--safety", "harm=misuse", "--lower-is-better", "harm"]
    argv += ["--fraction", "0.1", "--draws", "60", "--tune", "60", "--chains", "1", "--no-progress"]
    assert main([*argv, "--json", str(tmp_path / "h.json")]) == 0
    result = json.loads((tmp_path / "h.json").read_text())
    cells = 16 * 3
    assert result["n_cells"] + result["model"]["n_train_cells"] == cells
    assert result["dataset"] == str(tmp_path / "scores.csv")
    assert np.isfinite(result["model"]["rmse"]) and np.isfinite(result["pca"]["rmse"])
    assert "Held-out prediction on BenchmarkStudy('scores'" in capsys.readouterr().out
