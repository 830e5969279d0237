"""Adding a user's benchmark to a reference study: joined by LLM name (organisation prefix,
case, display name), ambiguous names refused, unmatched ones listed or refused (strict) or
added (new LLMs); from the library and through ``fit --add-scores``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safetywash.cli import main
from safetywash.data.combine import add_benchmarks
from safetywash.data.declare import Declarations
from safetywash.data.errors import StudyValidationError
from safetywash.data.readers import read_wide_csv
from safetywash.data.usertable import UserTable

#: Reference LLMs: ids with and without organisation, display names, two Gemmas.
REFERENCE = pd.DataFrame(
    {
        "llm": [
            "Llama-2-7b-chat-hf",
            "mistralai/Mistral-7B-Instruct-v0.2",
            "gemma-7b",
            "google/Gemma-7b",
            "Yi-6B-Chat",
            "falcon-7b-instruct",
        ],
        "display_name": [
            "Llama 2 7B Chat",
            "Mistral 7B Instruct",
            "Gemma 7B",
            "Gemma 7B it",
            "Yi 6B Chat",
            "Falcon 7B Instruct",
        ],
        "population": ["chat"] * 6,
        "c1": [0.1, 0.5, 0.3, 0.35, 0.6, 0.2],
        "c2": [0.2, 0.6, 0.25, 0.3, 0.7, 0.1],
        "s1": [3.0, 1.0, 2.0, 2.5, 0.5, 4.0],
    }
)
DECLARED = Declarations(("c1", "c2"), {"s1": "bias"}, ("s1",))


@pytest.fixture
def reference(tmp_path):
    path = tmp_path / "reference.csv"
    REFERENCE.to_csv(path, index=False)
    return read_wide_csv(
        path, capability=["c1", "c2"], safety={"s1": "bias"}, lower_is_better=["s1"]
    )


def _new_table(tmp_path, rows: list[tuple[str, float]], name="new.csv") -> UserTable:
    path = tmp_path / name
    pd.DataFrame(rows, columns=["Model", "refusal"]).to_csv(path, index=False)
    return UserTable(
        path, llm_column="Model", declarations=Declarations(safety={"refusal": "misuse"})
    )


NEW_ROWS = [
    ("meta-llama/Llama-2-7b-chat-hf", 0.9),  # organisation prefix on the user's side
    ("MISTRAL-7B-INSTRUCT-V0.2", 0.4),  # prefix on the study's side, other case
    ("Yi 6B Chat", 0.2),  # display name
    ("falcon-7b-instruct", 0.7),  # exact
    ("Falcon-9b-instruct", 0.1),  # not in the study
]


def test_rows_join_by_prefix_case_and_display_name(tmp_path, reference):
    combined = add_benchmarks(reference, _new_table(tmp_path, NEW_ROWS))
    study = combined.study
    got = study.to_wide()["refusal"].dropna()
    assert got.to_dict() == {
        "Llama-2-7b-chat-hf": 0.9,
        "mistralai/Mistral-7B-Instruct-v0.2": 0.4,
        "Yi-6B-Chat": 0.2,
        "falcon-7b-instruct": 0.7,
    }
    # The reference is untouched: same LLMs, same cells, same catalog rows.
    assert list(study.llms.index) == list(reference.llms.index)
    pd.testing.assert_frame_equal(study.to_wide()[reference.benchmarks.index], reference.to_wide())
    assert (study.benchmarks.loc["refusal", ["role", "area"]] == ["safety", "misuse"]).all()
    rules = [(m.name, m.rule) for m in combined.matches]
    assert rules == [
        ("meta-llama/Llama-2-7b-chat-hf", "id without organisation"),
        ("MISTRAL-7B-INSTRUCT-V0.2", "id ignoring case"),
        ("Yi 6B Chat", "display name"),
        ("falcon-7b-instruct", "exact id"),
        ("Falcon-9b-instruct", "unmatched"),
    ]
    text = combined.describe()
    assert "4 of 5 LLM names matched" in text
    assert (
        "Falcon-9b-instruct (line 6): no LLM of the study; close matches: falcon-7b-instruct"
        in text
    )
    assert "left out (not in the reference study): 1 row(s)" in text


def test_ambiguous_name_is_refused(tmp_path, reference):
    table = _new_table(tmp_path, [*NEW_ROWS[:4], ("GEMMA-7B", 0.5)])
    with pytest.raises(StudyValidationError) as info:
        add_benchmarks(reference, table)
    assert (info.value.line, info.value.llm) == (6, "GEMMA-7B")
    assert "matches 2 LLMs of the study by id ignoring case" in str(info.value)


def test_two_rows_for_one_llm_are_refused(tmp_path, reference):
    table = _new_table(tmp_path, [*NEW_ROWS[:4], ("Llama-2-7b-chat-hf", 0.5)])
    with pytest.raises(StudyValidationError, match="as does 'meta-llama/Llama-2-7b-chat-hf'"):
        add_benchmarks(reference, table)


def test_strict_names_refuses_unmatched(tmp_path, reference):
    table = _new_table(tmp_path, NEW_ROWS)
    with pytest.raises(StudyValidationError) as info:
        add_benchmarks(reference, table, strict=True)
    assert (info.value.line, info.value.llm) == (6, "Falcon-9b-instruct")
    assert "close matches: ['falcon-7b-instruct']" in str(info.value)
    add_benchmarks(reference, _new_table(tmp_path, NEW_ROWS[:4], "ok.csv"), strict=True)


def test_new_llms_only_when_asked(tmp_path, reference):
    combined = add_benchmarks(reference, _new_table(tmp_path, NEW_ROWS), new_llms=True)
    study = combined.study
    assert combined.new_llms == ("Falcon-9b-instruct",)
    assert list(study.llms.index) == [*reference.llms.index, "Falcon-9b-instruct"]
    assert study.llms.loc["Falcon-9b-instruct", "population"] == "chat"  # the reference's one
    assert study.to_wide().loc["Falcon-9b-instruct"].dropna().to_dict() == {"refusal": 0.1}


def test_benchmark_already_in_the_reference(tmp_path, reference):
    path = tmp_path / "again.csv"
    pd.DataFrame(
        {"Model": ["Yi-6B-Chat", "gemma-7b", "falcon-7b-instruct"], "s1": [1, 2, 3]}
    ).to_csv(path, index=False)
    table = UserTable(path, llm_column="Model", declarations=Declarations(safety={"s1": "bias"}))
    with pytest.raises(StudyValidationError, match="'s1' is already in the reference study"):
        add_benchmarks(reference, table)


def test_too_few_matched_llms(tmp_path, reference):
    table = _new_table(tmp_path, [("Llama-2-7b-chat-hf", 0.2), ("nobody", 0.3), ("nobody2", 0.1)])
    with pytest.raises(StudyValidationError, match="only 1 observed LLM") as info:
        add_benchmarks(reference, table)
    assert info.value.column == "refusal"
    # The same rows are enough once the unmatched LLMs are added as new ones.
    assert add_benchmarks(reference, table, new_llms=True).study.n_llms == 8


# --------------------------------------------------------------------------- the command


class Recorded(Exception):
    """Raised by the stand-in sampler once it has recorded the study."""


@pytest.fixture
def fitted(monkeypatch):
    studies = []

    def record(study, *args, **kwargs):
        studies.append(study)
        raise Recorded

    monkeypatch.setattr("safetywash.analysis.retry.fit", record)
    return studies


def test_fit_add_scores_to_the_chat_study(tmp_path, fitted, capsys, real_study, shared_data_dir):
    chat = real_study("chat")
    ids = list(chat.llms.index[:6])
    names = [f"some-org/{ids[0]}", ids[1].upper(), chat.llms.loc[ids[2], "display_name"]]
    names += [*ids[3:], "my-own-llm"]
    values = np.linspace(0.1, 0.8, len(names))
    pd.DataFrame({"llm": names, "refusal": values}).to_csv(tmp_path / "new.csv", index=False)
    (tmp_path / "meta.csv").write_text(
        "key,role,area,direction,lower,upper\nrefusal,safety,misuse,lower,0,1\n"
    )
    argv = ["fit", "--out", str(tmp_path / "run"), "--dataset", "safetywashing"]
    argv += ["--population", "chat", "--data-dir", str(shared_data_dir)]
    argv += ["--add-scores", str(tmp_path / "new.csv"), "--metadata", str(tmp_path / "meta.csv")]
    with pytest.raises(Recorded):
        main(argv)
    (study,) = fitted
    assert study.n_llms == chat.n_llms and study.n_benchmarks == chat.n_benchmarks + 1
    assert study.to_wide()["refusal"].dropna().to_dict() == dict(zip(ids, values[:6], strict=True))
    out = capsys.readouterr().out
    assert "6 of 7 LLM names matched" in out
    assert f"  some-org/{ids[0]} -> {ids[0]}  (id without organisation)" in out
    assert "my-own-llm (line 8): no LLM of the study" in out
    # --strict-names: the unmatched row is an error before anything is fitted.
    assert main([*argv, "--strict-names"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "line 8" in err and "my-own-llm" in err
    assert len(fitted) == 1


def test_fit_add_scores_to_a_users_table(tmp_path, fitted, capsys):
    REFERENCE.to_csv(tmp_path / "reference.csv", index=False)
    pd.DataFrame(NEW_ROWS, columns=["llm", "refusal"]).to_csv(tmp_path / "new.csv", index=False)
    argv = ["fit", "--out", str(tmp_path / "run"), "--scores", str(tmp_path / "reference.csv")]
    argv += ["--add-scores", str(tmp_path / "new.csv"), "--capability", "c1", "c2"]
    argv += ["--safety", "s1=bias", "refusal=misuse", "--lower-is-better", "s1"]
    with pytest.raises(Recorded):
        main([*argv, "--new-llms"])
    (study,) = fitted
    assert study.n_llms == 7 and set(study.benchmarks.index) == {"c1", "c2", "s1", "refusal"}
    assert study.benchmarks.loc["s1", "direction"] == "lower"
    assert "added as new LLMs: Falcon-9b-instruct" in capsys.readouterr().out
    # A declaration naming a column of neither file is refused.
    assert main([*argv, "--capability", "c1", "c2", "c3"]) == 2
    assert "'c3' is in neither" in capsys.readouterr().err
