"""Matching a user's LLM names to a study's LLMs: rule order, ambiguity, duplicates, strict."""

import pandas as pd
import pytest

from safetywash.data.errors import StudyValidationError
from safetywash.data.llmnames import describe_matches, match_llms, short_id

LLMS = pd.DataFrame(
    {"display_name": ["Llama 2 7B Chat", "Mistral 7B Instruct", "Gemma 7B", "Gemma 7B it"]},
    index=pd.Index(
        ["Llama-2-7b-chat-hf", "mistralai/Mistral-7B-Instruct-v0.2", "gemma-7b", "google/Gemma-7b"],
        name="llm",
    ),
)


def test_rules_in_order():
    names = [
        "Llama-2-7b-chat-hf",  # exact
        "meta-llama/Llama-2-7b-chat-hf",  # prefix dropped on the query side
        "Mistral-7B-Instruct-v0.2",  # prefix dropped on the study side
        "gemma 7b it",  # display name, any case
    ]
    # the first two reach the same LLM: checked separately below
    matches = match_llms(names[1:], LLMS, source="new.csv", lines=[3, 4, 5])
    assert [(m.llm, m.rule) for m in matches] == [
        ("Llama-2-7b-chat-hf", "id without organisation"),
        ("mistralai/Mistral-7B-Instruct-v0.2", "id without organisation"),
        ("google/Gemma-7b", "display name"),
    ]
    assert match_llms(names[:1], LLMS)[0].rule == "exact id"


def test_case_insensitive_after_exact_rules():
    (m,) = match_llms(["LLAMA-2-7B-CHAT-HF"], LLMS)
    assert (m.llm, m.rule) == ("Llama-2-7b-chat-hf", "id ignoring case")
    # an exact id wins over a case-insensitive one that would be ambiguous
    (m,) = match_llms(["gemma-7b"], LLMS)
    assert (m.llm, m.rule) == ("gemma-7b", "exact id")


def test_ambiguous_is_refused_with_location():
    with pytest.raises(StudyValidationError) as caught:
        match_llms(["x", "GEMMA-7B"], LLMS, source="new.csv", lines=[2, 3])
    text = str(caught.value)
    assert text.startswith("new.csv, line 3, LLM 'GEMMA-7B': matches 2 LLMs")
    assert "'gemma-7b'" in text and "'google/Gemma-7b'" in text


def test_two_rows_for_one_llm_are_refused():
    with pytest.raises(
        StudyValidationError, match=r"line 5.*as does 'Llama-2-7b-chat-hf' \(line 2\)"
    ):
        match_llms(
            ["Llama-2-7b-chat-hf", "meta-llama/Llama-2-7b-chat-hf"],
            LLMS,
            source="new.csv",
            lines=[2, 5],
        )


def test_unmatched_listed_with_close_matches_or_refused_when_strict():
    matches = match_llms(["Llama-2-7b-chat", "gpt-4"], LLMS, source="f.csv", lines=[2, 3])
    assert [m.llm for m in matches] == [None, None]
    assert matches[0].close[0] == "Llama-2-7b-chat-hf"
    assert matches[1].close == ()
    text = "\n".join(describe_matches(matches))
    assert (
        "Llama-2-7b-chat (line 2): no LLM of the study; close matches: Llama-2-7b-chat-hf" in text
    )
    with pytest.raises(StudyValidationError, match=r"f.csv, line 2, LLM 'Llama-2-7b-chat'.*close"):
        match_llms(["Llama-2-7b-chat"], LLMS, source="f.csv", lines=[2], strict=True)


def test_short_id():
    assert short_id("meta-llama/Llama-2-7b-chat-hf") == "Llama-2-7b-chat-hf"
    assert short_id("gemma-7b") == "gemma-7b"
