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

from safetywash.data.catalog import as_catalog
from safetywash.data.errors import StudyValidationError
from safetywash.data.names import close_matches
from safetywash.data.validate import (
    MIN_LLMS_PER_BENCHMARK,
    validate_llms,
    validate_scores,
)

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
        Indexed by ``llm``; columns :data:`~safetywash.data.validate.LLM_COLUMNS`.
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
            Indexed by LLM id, with any of :data:`~safetywash.data.validate.LLM_COLUMNS`.
            ``None`` builds a minimal table (population ``"all"``) from the LLMs in ``scores``.
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
        # New safety areas pass here: a catalog file is checked for them when it is read.
        catalog = as_catalog(catalog, new_areas=True)
        scores = validate_scores(scores, catalog, source=source, min_llms=min_llms)
        llms = validate_llms(llms, scores, source=source)
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
                f"unknown population {population!r}; this study has {[*known, 'all']}"
                + close_matches(population, [*known, "all"]),
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
