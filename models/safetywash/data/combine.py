"""Adding a user's benchmarks to a reference study, joined by LLM name.

A new benchmark scored on some LLMs is asked the question of the study it is added to: its
LLM names are matched to the study's (:func:`safetywash.data.llmnames.match_llms`: exact id,
id without organisation, case, display name), its scores are put on the matched LLMs, and
LLMs the study does not have are left out (listed) unless they are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from safetywash.data.errors import StudyValidationError
from safetywash.data.llmnames import LlmMatch, describe_matches, match_llms
from safetywash.data.study import BenchmarkStudy
from safetywash.data.usertable import UserTable, llm_rows, read_user_table


@dataclass(frozen=True)
class CombinedStudy:
    """A reference study with a user's benchmarks added.

    Attributes
    ----------
    study : BenchmarkStudy
        The reference study's LLMs and benchmarks plus the new benchmarks.
    reference : str
        The reference study's name.
    matches : tuple of LlmMatch
        One per LLM of the user's file, in file order.
    added : tuple of str
        The new benchmarks' keys.
    new_llms : tuple of str
        LLMs of the user's file that the reference did not have and that were added.
    """

    study: BenchmarkStudy
    reference: str
    matches: tuple[LlmMatch, ...]
    added: tuple[str, ...]
    new_llms: tuple[str, ...] = ()

    def describe(self) -> str:
        """Printable lines: which row matched which LLM, the unmatched ones, what was added."""
        matched = sum(m.llm is not None for m in self.matches)
        head = (
            f"Added {', '.join(self.added)} to {self.reference}: {matched} of "
            f"{len(self.matches)} LLM names matched"
        )
        lines = [head, *describe_matches(self.matches)]
        unmatched = [m.name for m in self.matches if m.llm is None]
        if self.new_llms:
            lines.append(f"  added as new LLMs: {', '.join(self.new_llms)}")
        elif unmatched:
            lines.append(f"  left out (not in the reference study): {len(unmatched)} row(s)")
        return "\n".join(lines)


def add_benchmarks(
    reference: BenchmarkStudy,
    table: UserTable,
    *,
    strict: bool = False,
    new_llms: bool = False,
    check_declared: bool = True,
) -> CombinedStudy:
    """The reference study with the benchmarks of a user's file added, joined by LLM name.

    Parameters
    ----------
    reference : BenchmarkStudy
        The study to add to (a registered dataset's population, or a user's own table).
    table : UserTable
        The user's file of new benchmarks and how to read it.
    strict : bool
        Refuse a row whose LLM the reference does not have (else it is listed and left out).
    new_llms : bool
        Add the LLMs the reference does not have, as new LLMs, instead of leaving them out.
        They take the file's population column if it has one, else the reference's
        population when it has only one.
    check_declared : bool
        Refuse quick declarations naming columns the file does not have.

    Returns
    -------
    CombinedStudy

    Raises
    ------
    StudyValidationError
        A name matching several LLMs, two rows matching one LLM, an unmatched row with
        ``strict``, a benchmark the reference already has, or a new benchmark left with too
        few LLMs; located by file, line and column where the file allows.
    """
    source = str(table.path)
    names, lines = llm_rows(table)
    matches = match_llms(names, reference.llms, source=source, lines=lines, strict=strict)
    new = read_user_table(table, min_llms=1, check_declared=check_declared)
    clash = [k for k in new.benchmarks.index if k in reference.benchmarks.index]
    if clash:
        raise StudyValidationError(
            f"benchmark {clash[0]!r} is already in the reference study {reference.name}; "
            "give the new benchmark another name",
            source=source,
            line=None if table.long else 1,
            column=clash[0],
        )
    rename = {m.name: m.llm for m in matches if m.llm is not None}
    extra = [m.name for m in matches if m.llm is None] if new_llms else []
    scores = new.scores[new.scores["llm"].isin([*rename, *extra])]
    scores = scores.assign(llm=scores["llm"].map(lambda n: rename.get(n, n)))
    for key in new.benchmarks.index:
        if not (scores["benchmark"] == key).any():
            raise StudyValidationError(
                f"new benchmark {key!r} has no score on an LLM of the reference study "
                f"{reference.name} (no LLM name matched)",
                source=source,
                column=key,
            )
    llms = pd.concat([reference.llms, _new_llm_table(new, extra, reference, source)])
    catalog = pd.concat([reference.benchmarks, new.benchmarks]).rename_axis("key")
    study = BenchmarkStudy.from_frames(
        pd.concat([reference.scores, scores], ignore_index=True),
        llms,
        catalog,
        name=f"{reference.name}+{new.name}",
        source=source,
        excluded=(*reference.excluded, *new.excluded),
    )
    added = tuple(new.benchmarks.index)
    return CombinedStudy(study, reference.name, tuple(matches), added, tuple(extra))


def _new_llm_table(
    new: BenchmarkStudy, extra: list[str], reference: BenchmarkStudy, source: str
) -> pd.DataFrame:
    """The LLM rows of added LLMs, each with a population of the reference."""
    table = new.llms.loc[extra].copy()
    if table.empty:
        return table
    populations = sorted(set(reference.llms["population"]))
    if set(table["population"]) <= set(populations):
        return table
    if len(populations) == 1:
        table["population"] = populations[0]
        return table
    raise StudyValidationError(
        f"new LLM {extra[0]!r} needs a population: the reference study has {populations}; "
        "give the file a population column",
        source=source,
        llm=extra[0],
    )
