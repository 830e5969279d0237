"""Matching a user's LLM names to the LLMs of a study.

A score file for a new benchmark names its LLMs however its author's harness did:
``meta-llama/Llama-2-7b-chat-hf`` where the study says ``Llama-2-7b-chat-hf``, other case,
or the display name. :func:`match_llms` tries, in order and stopping at the first rule that
finds anything,

1. the exact id;
2. the id without a Hugging Face organisation prefix (the part after the last ``/``, on
   either side);
3. the same, case-insensitively;
4. the display name, case-insensitively;

and refuses a name that one rule matches to several LLMs, or two names that reach the same
LLM. Unmatched names are kept with their close matches, so the caller can list them (or
refuse them with ``strict``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from safetywash.data.errors import StudyValidationError
from safetywash.data.names import nearest_names

#: The matching rules, in the order they are tried.
RULES = ("exact id", "id without organisation", "id ignoring case", "display name")


@dataclass(frozen=True)
class LlmMatch:
    """One name of the user's file and the study LLM it matched.

    Attributes
    ----------
    name : str
        The name as the file spells it.
    line : int or None
        Its line in the file.
    llm : str or None
        The study LLM's id, None when unmatched.
    rule : str
        The rule that matched (one of :data:`RULES`), or ``"unmatched"``.
    close : tuple of str
        For an unmatched name, the study's LLM ids most like it.
    """

    name: str
    line: int | None
    llm: str | None
    rule: str
    close: tuple[str, ...] = ()


def short_id(name: str) -> str:
    """``name`` without a Hugging Face organisation prefix (``org/model`` -> ``model``)."""
    return str(name).strip().rsplit("/", 1)[-1]


def _rule_keys(llms: pd.DataFrame) -> list[dict[str, set[str]]]:
    """Per rule, the key each study LLM is found under (key -> LLM ids)."""
    tables: list[dict[str, set[str]]] = [{} for _ in RULES]
    display = llms["display_name"] if "display_name" in llms else pd.Series(llms.index, llms.index)
    for llm, shown in zip(llms.index.astype(str), display.astype(str), strict=True):
        keys = (llm, short_id(llm), short_id(llm).lower(), str(shown).strip().lower())
        for table, key in zip(tables, keys, strict=True):
            table.setdefault(key, set()).add(llm)
    return tables


def _query_keys(name: str) -> tuple[str, ...]:
    return (name, short_id(name), short_id(name).lower(), name.strip().lower())


def match_llms(
    names: Sequence[str],
    llms: pd.DataFrame,
    *,
    source: str | None = None,
    lines: Sequence[int] | None = None,
    strict: bool = False,
) -> list[LlmMatch]:
    """Match every name of a user's file to at most one LLM of a study.

    Parameters
    ----------
    names : sequence of str
        The LLM names of the file, in file order.
    llms : pandas.DataFrame
        The study's LLM table (:attr:`BenchmarkStudy.llms`: index = LLM id, column
        ``display_name``).
    source : str, optional
        The file, for error messages.
    lines : sequence of int, optional
        The line of every name in the file.
    strict : bool
        Refuse any unmatched name instead of returning it unmatched.

    Returns
    -------
    list of LlmMatch
        One per name, in order.

    Raises
    ------
    StudyValidationError
        A name matches several LLMs under one rule, two names match the same LLM, or (with
        ``strict``) a name matches none; located by file and line.
    """
    lines = list(lines) if lines is not None else [None] * len(names)
    tables = _rule_keys(llms)
    matches, taken = [], {}
    for name, line in zip(names, lines, strict=True):
        match = _match_one(str(name), line, tables, llms.index.astype(str), source)
        if match.llm is not None:
            if match.llm in taken:
                first = taken[match.llm]
                raise StudyValidationError(
                    f"matches the study's LLM {match.llm!r} ({match.rule}), as does "
                    f"{first.name!r} (line {first.line}); keep one row per LLM",
                    source=source,
                    line=line,
                    llm=match.name,
                )
            taken[match.llm] = match
        elif strict:
            near = f"; close matches: {list(match.close)}" if match.close else ""
            raise StudyValidationError(
                f"matches no LLM of the study{near} (without --strict-names unmatched rows "
                "are listed and left out)",
                source=source,
                line=line,
                llm=match.name,
            )
        matches.append(match)
    return matches


def _match_one(name, line, tables, known, source) -> LlmMatch:
    for rule, table, key in zip(RULES, tables, _query_keys(name), strict=True):
        found = sorted(table.get(key, ()))
        if len(found) == 1:
            return LlmMatch(name, line, found[0], rule)
        if len(found) > 1:
            raise StudyValidationError(
                f"matches {len(found)} LLMs of the study by {rule}: {found}; "
                "use the full id of one of them",
                source=source,
                line=line,
                llm=name,
            )
    close = nearest_names(short_id(name), known, n=3, cutoff=0.6, ignore_case=True)
    return LlmMatch(name, line, None, "unmatched", tuple(close))


def describe_matches(matches: Sequence[LlmMatch]) -> list[str]:
    """Printable lines: which name matched which LLM (and how), then the unmatched ones."""
    out = []
    for m in matches:
        if m.llm is None:
            continue
        how = "" if m.rule == "exact id" else f"  ({m.rule})"
        out.append(f"  {m.name} -> {m.llm}{how}")
    for m in matches:
        if m.llm is None:
            near = f"; close matches: {', '.join(m.close)}" if m.close else ""
            where = f" (line {m.line})" if m.line is not None else ""
            out.append(f"  {m.name}{where}: no LLM of the study{near}")
    return out
