"""Declaring the columns of a user's score table: a metadata CSV, quick declarations, or both.

Every score column of a user's table must be declared: as a row of a benchmark metadata CSV
(the catalog format of ``data/README.md``), or quickly as a capability benchmark or a safety
benchmark of a named area (higher is better unless declared lower-is-better). Per-LLM columns
(family, parameter count, training FLOP, ...) are mapped to the study's LLM table instead. A
column that is neither is an error listing every such column: nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from safetywash.data.catalog import CAPABILITY_AREA, CATALOG_COLUMNS, as_catalog, validate_catalog
from safetywash.data.errors import CatalogError, StudyValidationError
from safetywash.data.names import close_matches

#: The study's per-LLM columns a user's table may carry (see ``validate.LLM_COLUMNS``).
LLM_META_COLUMNS = ("display_name", "population", "family", "params", "flop")


@dataclass(frozen=True)
class Declarations:
    """Quick declarations of a table's benchmark columns, for a table without metadata.

    Attributes
    ----------
    capability : tuple of str
        Capability benchmark columns.
    safety : mapping of str to str
        Safety benchmark column -> its safety area (the paper's or a new one).
    lower_is_better : tuple of str
        Declared columns on which a lower raw value is better (safer); the others are
        higher-is-better.
    """

    capability: tuple[str, ...] = ()
    safety: Mapping[str, str] = field(default_factory=dict)
    lower_is_better: tuple[str, ...] = ()

    @property
    def keys(self) -> list[str]:
        """Every column declared as a benchmark, capability first."""
        return [*self.capability, *self.safety]

    def check(self, source: str | None = None) -> None:
        """No column is declared twice, and lower-is-better columns are declared ones
        (errors name ``source``, the table's file)."""
        seen: set[str] = set()
        for key in self.keys:
            if key in seen:
                raise StudyValidationError(
                    f"column {key!r} is declared twice (as capability and as safety, or "
                    "twice in one list)",
                    source=source,
                    column=key,
                )
            seen.add(key)
        for key in self.lower_is_better:
            if key not in seen:
                raise StudyValidationError(
                    f"column {key!r} is declared lower-is-better but not as a capability or "
                    "safety benchmark; declare it as one of them too (a column of the metadata "
                    "takes its direction from there)",
                    source=source,
                    column=key,
                )

    def catalog(self, source: str | None = None) -> pd.DataFrame | None:
        """The declared columns as a validated catalog (None when nothing is declared).

        A bad declaration (an empty area, a misspelt paper area) fails naming ``source``'s
        header and the column declared.
        """
        self.check(source)
        rows = []
        for key in self.keys:
            row = {
                "key": key,
                "role": "capability" if key in self.capability else "safety",
                "area": CAPABILITY_AREA if key in self.capability else self.safety[key],
                "direction": "lower" if key in self.lower_is_better else "higher",
            }
            try:
                validate_catalog(pd.DataFrame([row]), new_areas=True)
            except CatalogError as err:
                raise StudyValidationError(
                    err.problem, source=source, line=1 if source else None, column=key
                ) from None
            rows.append(row)
        if not rows:
            return None
        return validate_catalog(pd.DataFrame(rows), source="declared columns", new_areas=True)


def declared_catalog(
    metadata: str | Path | pd.DataFrame | None,
    declarations: Declarations,
    *,
    columns: Collection[str] | None = None,
    source: str,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """The catalog of a user's table: its metadata CSV and quick declarations together.

    Parameters
    ----------
    metadata : path, DataFrame or None
        A benchmark metadata CSV (catalog format); safety areas beyond the paper's allowed.
    declarations : Declarations
        Quick declarations; a column may not be both in ``metadata`` and declared here.
    columns : collection of str, optional
        The table's benchmark columns: every quick declaration must name one of them.
    source : str
        The table's file, named in errors.
    encoding : str
        Text encoding of a metadata CSV.

    Returns
    -------
    pandas.DataFrame
        A validated catalog (it may describe more benchmarks than the table has; columns it
        does not describe are refused by the reader).
    """
    quick = declarations.catalog(source)
    meta = None
    if metadata is not None:
        meta = as_catalog(metadata, source="metadata", encoding=encoding, new_areas=True)
    if quick is None and meta is None:
        return _empty_catalog()
    if columns is not None and quick is not None:
        absent = [k for k in quick.index if k not in set(columns)]
        if absent:
            raise StudyValidationError(
                f"declared column {absent[0]!r} is not in the file"
                + close_matches(absent[0], list(columns)),
                source=source,
                line=1,
                column=absent[0],
            )
    if meta is None:
        return quick
    if quick is None:
        return meta
    both = [k for k in quick.index if k in meta.index]
    if both:
        where = metadata if not isinstance(metadata, pd.DataFrame) else "the metadata"
        raise StudyValidationError(
            f"column {both[0]!r} is described in {where} and declared again as capability "
            "or safety; describe each column once",
            source=source,
            column=both[0],
        )
    return pd.concat([meta, quick])


def _empty_catalog() -> pd.DataFrame:
    """A catalog with no rows (every column of a table is then undeclared)."""
    frame = pd.DataFrame(columns=list(CATALOG_COLUMNS[1:]))
    frame.index.name = "key"
    return frame


def llm_columns(
    header: Sequence[str], llm_column: str, llm_meta: Mapping[str, str] | None, source: str
) -> dict[str, str]:
    """The per-LLM columns of a table: file column -> study column.

    A column named like a study column (``family``, ``params``, ...) is one; ``llm_meta``
    maps others (``{"family": "Model Family"}``).

    Raises
    ------
    StudyValidationError
        An unknown study column, a mapped column missing from the file, or two file columns
        for one study column.
    """
    llm_meta = dict(llm_meta or {})
    for study_col, file_col in llm_meta.items():
        if study_col not in LLM_META_COLUMNS:
            raise StudyValidationError(
                f"unknown LLM column {study_col!r} in the LLM metadata mapping"
                f"{close_matches(study_col, LLM_META_COLUMNS)}; choose from "
                f"{list(LLM_META_COLUMNS)}",
                source=source,
            )
        if file_col not in header or file_col == llm_column:
            raise StudyValidationError(
                f"LLM metadata {study_col}={file_col!r}: the file has no such column"
                f"{close_matches(file_col, header)}",
                source=source,
                line=1,
                column=file_col,
            )
    out = {file_col: study_col for study_col, file_col in llm_meta.items()}
    for name in LLM_META_COLUMNS:
        if name in header and name not in out:
            if name in out.values():
                raise StudyValidationError(
                    f"the file has a {name!r} column and another column is mapped to {name!r}",
                    source=source,
                    line=1,
                    column=name,
                )
            out[name] = name
    return out
