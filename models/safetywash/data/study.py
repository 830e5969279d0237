"""The validated in-memory representation of a benchmark study.

A study is three tables:

* ``scores``: long format, one row per *observed* (llm, benchmark) cell, raw values as stored
  in the source; missing cells are simply absent;
* ``llms``: one row per LLM (population, family, parameter count, training FLOP);
* ``benchmarks``: one row per benchmark, taken from a catalog (role, area, direction, scale,
  bounds, chance level, parent aggregate).

Everything downstream (the paper's baseline, the latent-factor model, reports) takes a
:class:`BenchmarkStudy`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.data.catalog import MODELLED_ROLES, validate_catalog
from safetywash.data.errors import StudyValidationError

MIN_LLMS_PER_BENCHMARK = 3
LLM_COLUMNS = ("display_name", "population", "family", "params", "flop")
LEVELS = ("aggregate", "parts", "all")


@dataclass(frozen=True, eq=False)
class BenchmarkStudy:
    """A validated models x benchmarks score table with its metadata.

    Build it with :meth:`from_frames` (or a reader in :mod:`safetywash.data.readers`), which
    validates every table; the constructor itself trusts its input.

    Attributes
    ----------
    scores : pandas.DataFrame
        Columns ``llm``, ``benchmark``, ``value``; observed cells only, sorted by benchmark
        then LLM in the order of the two tables below.
    llms : pandas.DataFrame
        Indexed by ``llm``; columns :data:`LLM_COLUMNS`.
    benchmarks : pandas.DataFrame
        Indexed by ``benchmark``; the catalog columns (see :mod:`safetywash.data.catalog`).
    name : str
        Short name of the study (dataset name and selection).
    excluded : tuple of str
        Source columns deliberately left out (catalog role ``excluded``, or dropped by a
        level selection), for the record.
    """

    scores: pd.DataFrame
    llms: pd.DataFrame
    benchmarks: pd.DataFrame
    name: str = "study"
    excluded: tuple[str, ...] = field(default_factory=tuple)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(
        cls,
        scores: pd.DataFrame,
        llms: pd.DataFrame | None,
        catalog: pd.DataFrame,
        *,
        name: str = "study",
        source: str = "scores",
        min_llms: int = MIN_LLMS_PER_BENCHMARK,
        excluded: Iterable[str] = (),
    ) -> BenchmarkStudy:
        """Validate raw tables and build a study.

        Parameters
        ----------
        scores : pandas.DataFrame
            Long table with columns ``llm``, ``benchmark``, ``value`` (observed cells only).
            An optional ``line`` column gives each cell's line in the source file, used in
            error messages.
        llms : pandas.DataFrame or None
            Indexed by LLM id, with any of :data:`LLM_COLUMNS`. ``None`` builds a minimal
            table (population ``"all"``) from the LLMs in ``scores``.
        catalog : pandas.DataFrame
            Benchmark metadata, either already validated (indexed by key) or raw with a
            ``key`` column; must describe every benchmark in ``scores``.
        name : str
            Study name.
        source : str
            File or description named in error messages.
        min_llms : int
            Fewest observed LLMs a benchmark may have.
        excluded : iterable of str
            Columns the reader left out on purpose, kept for the record.

        Returns
        -------
        BenchmarkStudy

        Raises
        ------
        StudyValidationError
            On any bad input, naming the file, line and column.
        """
        catalog = _as_catalog(catalog)
        scores = _validate_scores(scores, catalog, source=source, min_llms=min_llms)
        llms = _validate_llms(llms, scores, source=source)
        bench_keys = pd.unique(scores["benchmark"])
        benchmarks = catalog.loc[catalog.index.isin(bench_keys)]
        benchmarks.index.name = "benchmark"
        llm_order = {k: i for i, k in enumerate(llms.index)}
        bench_order = {k: i for i, k in enumerate(benchmarks.index)}
        scores = (
            scores.assign(_b=scores["benchmark"].map(bench_order), _l=scores["llm"].map(llm_order))
            .sort_values(["_b", "_l"])
            .drop(columns=["_b", "_l"])
            .reset_index(drop=True)
        )
        return cls(
            scores=scores[["llm", "benchmark", "value"]],
            llms=llms,
            benchmarks=benchmarks,
            name=name,
            excluded=tuple(excluded),
        )

    # ------------------------------------------------------------------ sizes
    @property
    def n_llms(self) -> int:
        """Number of LLMs."""
        return len(self.llms)

    @property
    def n_benchmarks(self) -> int:
        """Number of benchmarks."""
        return len(self.benchmarks)

    @property
    def n_cells(self) -> int:
        """Number of observed cells."""
        return len(self.scores)

    @property
    def missing_fraction(self) -> float:
        """Share of the llm x benchmark grid with no score."""
        return 1.0 - self.n_cells / (self.n_llms * self.n_benchmarks)

    # ------------------------------------------------------------------ index arrays
    @property
    def llm_index(self) -> np.ndarray:
        """Integer position (in ``llms``) of the LLM of every observed cell."""
        return pd.Index(self.llms.index).get_indexer(self.scores["llm"]).astype(np.int64)

    @property
    def benchmark_index(self) -> np.ndarray:
        """Integer position (in ``benchmarks``) of the benchmark of every observed cell."""
        idx = pd.Index(self.benchmarks.index).get_indexer(self.scores["benchmark"])
        return idx.astype(np.int64)

    @property
    def direction_sign(self) -> pd.Series:
        """+1 where a higher raw value is better/safer, -1 where it is worse."""
        return self.benchmarks["direction"].map({"higher": 1.0, "lower": -1.0}).astype(float)

    def oriented_values(self) -> np.ndarray:
        """Observed values multiplied by their benchmark's direction sign."""
        sign = self.direction_sign.to_numpy()[self.benchmark_index]
        return self.scores["value"].to_numpy(dtype=float) * sign

    # ------------------------------------------------------------------ conversions
    def to_long(self) -> pd.DataFrame:
        """Long frame of observed cells with LLM and benchmark metadata joined."""
        long = self.scores.merge(
            self.llms[["population", "family"]], left_on="llm", right_index=True, how="left"
        )
        long = long.merge(
            self.benchmarks[["role", "area", "direction"]],
            left_on="benchmark",
            right_index=True,
            how="left",
        )
        return long.reset_index(drop=True)

    def to_wide(self) -> pd.DataFrame:
        """Wide llm x benchmark frame of raw values, NaN where missing."""
        wide = self.scores.pivot(index="llm", columns="benchmark", values="value")
        return wide.reindex(index=self.llms.index, columns=self.benchmarks.index)

    def to_dataarray(self) -> xr.DataArray:
        """The score table as an ``(llm, benchmark)`` DataArray, NaN where missing.

        LLM and benchmark metadata become non-dimension coordinates.
        """
        wide = self.to_wide()
        coords = {
            "llm": np.asarray(self.llms.index, dtype=str),
            "benchmark": np.asarray(self.benchmarks.index, dtype=str),
            "population": ("llm", self.llms["population"].to_numpy(dtype=str)),
            "family": ("llm", self.llms["family"].to_numpy(dtype=str)),
            "llm_name": ("llm", self.llms["display_name"].to_numpy(dtype=str)),
            "benchmark_name": ("benchmark", self.benchmarks["display_name"].to_numpy(dtype=str)),
            "role": ("benchmark", self.benchmarks["role"].to_numpy(dtype=str)),
            "area": ("benchmark", self.benchmarks["area"].to_numpy(dtype=str)),
            "direction": ("benchmark", self.benchmarks["direction"].to_numpy(dtype=str)),
        }
        return xr.DataArray(
            wide.to_numpy(dtype=float), dims=("llm", "benchmark"), coords=coords, name="score"
        )

    # ------------------------------------------------------------------ selections
    def subset(
        self,
        *,
        llms: Sequence[str] | None = None,
        benchmarks: Sequence[str] | None = None,
        name: str | None = None,
        min_llms: int = MIN_LLMS_PER_BENCHMARK,
    ) -> BenchmarkStudy:
        """A new, re-validated study restricted to some LLMs and/or benchmarks."""
        keep = self.scores
        if llms is not None:
            keep = keep[keep["llm"].isin(set(llms))]
        if benchmarks is not None:
            keep = keep[keep["benchmark"].isin(set(benchmarks))]
        llm_table = self.llms.loc[self.llms.index.isin(pd.unique(keep["llm"]))]
        present = self.benchmarks.index.isin(pd.unique(keep["benchmark"]))
        dropped = list(self.benchmarks.index[~present])
        catalog = self.benchmarks.copy()
        catalog.index.name = "key"
        return BenchmarkStudy.from_frames(
            keep,
            llm_table,
            catalog,
            name=name or self.name,
            source=self.name,
            min_llms=min_llms,
            excluded=self.excluded + tuple(dropped),
        )

    def select_population(self, population: str) -> BenchmarkStudy:
        """The study restricted to one population (``"base"``, ``"chat"``, ...).

        ``"all"`` returns the study unchanged.
        """
        if population == "all":
            return self
        known = sorted(set(self.llms["population"]))
        if population not in known:
            raise StudyValidationError(
                f"unknown population {population!r}; this study has {[*known, 'all']}",
                source=self.name,
            )
        members = self.llms.index[self.llms["population"] == population]
        return self.subset(llms=list(members), name=f"{self.name}-{population}")

    def select_level(self, level: str = "aggregate") -> BenchmarkStudy:
        """Choose between aggregates and their parts, so none is counted twice.

        Parameters
        ----------
        level : {"aggregate", "parts", "all"}
            ``"aggregate"`` drops every benchmark that is a part of an aggregate present in
            the study; ``"parts"`` drops every aggregate whose parts are present; ``"all"``
            keeps both (double counting: only for descriptive use).
        """
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        if level == "all":
            return self
        parent = self.benchmarks["parent"]
        present = set(self.benchmarks.index)
        is_part = parent.isin(present) & (parent != "")
        if level == "aggregate":
            keep = self.benchmarks.index[~is_part]
        else:
            aggregates = set(parent[is_part])
            keep = self.benchmarks.index[~self.benchmarks.index.isin(aggregates)]
        return self.subset(benchmarks=list(keep), name=self.name)

    def modelled_roles(self) -> pd.Series:
        """Role of every benchmark (``capability`` or ``safety``)."""
        return self.benchmarks["role"]

    # ------------------------------------------------------------------ identity
    def sha256(self) -> str:
        """SHA-256 of a canonical serialisation of the three tables."""
        digest = hashlib.sha256()
        for frame in (self.scores, self.llms, self.benchmarks):
            buf = io.StringIO()
            frame.to_csv(buf, float_format="%.17g", lineterminator="\n")
            digest.update(buf.getvalue().encode("utf-8"))
        return digest.hexdigest()

    def __repr__(self) -> str:
        pops = self.llms["population"].value_counts().to_dict()
        roles = self.benchmarks["role"].value_counts().to_dict()
        return (
            f"BenchmarkStudy({self.name!r}: {self.n_llms} LLMs {pops}, "
            f"{self.n_benchmarks} benchmarks {roles}, {self.n_cells} observed cells, "
            f"{self.missing_fraction:.1%} missing)"
        )


# ---------------------------------------------------------------------- validation helpers
def _as_catalog(catalog: pd.DataFrame) -> pd.DataFrame:
    if "key" in catalog.columns:
        return validate_catalog(catalog)
    if catalog.index.name in ("key", "benchmark"):
        return validate_catalog(catalog.rename_axis("key").reset_index())
    raise StudyValidationError("the catalog needs a 'key' column or index")


def _where(scores: pd.DataFrame, mask: np.ndarray, source: str) -> dict:
    """Location keywords of the first row selected by ``mask``.

    A ``source`` column (the file of each cell, when cells come from several files) takes
    precedence over the study-wide source.
    """
    row = scores.loc[mask].iloc[0]
    line = int(row["line"]) if "line" in scores.columns and pd.notna(row["line"]) else None
    if "source" in scores.columns and row["source"]:
        source = str(row["source"])
    return {
        "source": source,
        "line": line,
        "column": str(row["benchmark"]),
        "llm": str(row["llm"]),
    }


def _validate_scores(
    scores: pd.DataFrame, catalog: pd.DataFrame, *, source: str, min_llms: int
) -> pd.DataFrame:
    required = ("llm", "benchmark", "value")
    missing = [c for c in required if c not in scores.columns]
    if missing:
        raise StudyValidationError(
            f"missing required column(s) {missing}; scores need {list(required)}",
            source=source,
        )
    if scores.empty:
        raise StudyValidationError("no scores: the table has no observed cells", source=source)
    scores = scores.copy()
    scores["llm"] = scores["llm"].astype(str).str.strip()
    scores["benchmark"] = scores["benchmark"].astype(str).str.strip()

    raw = scores["value"]
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = (numeric.isna() & raw.notna()).to_numpy()
    if bad.any():
        value = raw[bad].iloc[0]
        raise StudyValidationError(
            f"score {value!r} is not a number", **_where(scores, bad, source)
        )
    values = numeric.to_numpy(dtype=float)
    if np.isnan(values).any():
        raise StudyValidationError(
            "missing score given as an empty/NaN cell in long data: leave the row out instead",
            **_where(scores, np.isnan(values), source),
        )
    if np.isinf(values).any():
        raise StudyValidationError("score is infinite", **_where(scores, np.isinf(values), source))
    scores["value"] = values

    dup = scores.duplicated(["llm", "benchmark"], keep=False).to_numpy()
    if dup.any():
        first = scores.loc[dup].iloc[0]
        same = dup & (scores["llm"] == first["llm"]).to_numpy()
        same &= (scores["benchmark"] == first["benchmark"]).to_numpy()
        lines = scores.loc[same, "line"].tolist() if "line" in scores.columns else []
        extra = f" (lines {lines})" if lines else ""
        raise StudyValidationError(
            f"duplicate (llm, benchmark) pair: {same.sum()} scores for the same cell{extra}",
            **_where(scores, dup, source),
        )

    unknown = ~scores["benchmark"].isin(catalog.index).to_numpy()
    if unknown.any():
        names = sorted(set(scores.loc[unknown, "benchmark"]))
        raise StudyValidationError(
            f"benchmark has no catalog entry (no role or direction known); unknown: {names[:10]}",
            source=source,
            column=names[0],
        )
    roles = catalog["role"].reindex(scores["benchmark"]).to_numpy()
    not_modelled = ~np.isin(roles, MODELLED_ROLES)
    if not_modelled.any():
        name = scores.loc[not_modelled, "benchmark"].iloc[0]
        raise StudyValidationError(
            f"benchmark is catalogued as role {catalog.loc[name, 'role']!r} and cannot be "
            "modelled; readers drop such columns",
            source=source,
            column=name,
        )

    lower = catalog["lower"].reindex(scores["benchmark"]).to_numpy(dtype=float)
    upper = catalog["upper"].reindex(scores["benchmark"]).to_numpy(dtype=float)
    below = values < np.where(np.isnan(lower), -np.inf, lower)
    above = values > np.where(np.isnan(upper), np.inf, upper)
    out = below | above
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise StudyValidationError(
            f"score {values[i]:g} is outside the declared range "
            f"[{_bound(lower[i])}, {_bound(upper[i])}]",
            **_where(scores, out, source),
        )

    counts = scores.groupby("benchmark", sort=False)["llm"].size()
    few = counts[counts < min_llms]
    if not few.empty:
        raise StudyValidationError(
            f"benchmark has only {int(few.iloc[0])} observed LLM(s); at least {min_llms} needed",
            source=source,
            column=str(few.index[0]),
        )
    spread = scores.groupby("benchmark", sort=False)["value"].agg(lambda v: np.ptp(v.to_numpy()))
    constant = spread[spread == 0]
    if not constant.empty:
        key = str(constant.index[0])
        value = scores.loc[scores["benchmark"] == key, "value"].iloc[0]
        raise StudyValidationError(
            f"benchmark is constant ({value:g} for every LLM): it carries no information",
            source=source,
            column=key,
        )
    return scores


def _bound(x: float) -> str:
    return "unbounded" if np.isnan(x) else f"{x:g}"


def _validate_llms(llms: pd.DataFrame | None, scores: pd.DataFrame, *, source: str):
    present = list(pd.unique(scores["llm"]))
    if llms is None:
        llms = pd.DataFrame(index=pd.Index(present, name="llm"))
    llms = llms.copy()
    llms.index = pd.Index(llms.index.astype(str).str.strip(), name="llm")
    if llms.index.duplicated().any():
        dup = llms.index[llms.index.duplicated()][0]
        raise StudyValidationError("LLM listed more than once", source=source, llm=dup)
    unknown = [k for k in present if k not in llms.index]
    if unknown:
        raise StudyValidationError(
            "LLM has scores but no row in the LLM table", source=source, llm=unknown[0]
        )
    without = [k for k in llms.index if k not in set(present)]
    if without:
        raise StudyValidationError(
            "LLM has no scores on any modelled benchmark", source=source, llm=without[0]
        )
    defaults = {
        "display_name": None,
        "population": "all",
        "family": "",
        "params": np.nan,
        "flop": np.nan,
    }
    for col, default in defaults.items():
        if col not in llms.columns:
            llms[col] = llms.index if col == "display_name" else default
    for col in ("params", "flop"):
        llms[col] = pd.to_numeric(llms[col], errors="raise").astype(float)
    for col in ("display_name", "population", "family"):
        llms[col] = llms[col].fillna("").astype(str)
    return llms[list(LLM_COLUMNS)]
