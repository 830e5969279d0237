"""The shipped Safetywashing catalog against the real release, and offline loading."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safetywash.data.catalog import (
    CATALOG_COLUMNS,
    SAFETY_AREAS,
    load_catalog,
    shipped_catalog_path,
)
from safetywash.data.errors import CatalogError
from safetywash.data.load import load_dataset

LLM_COLUMNS = ("model", "name", "type", "model_size", "FLOP")


@pytest.fixture(scope="module")
def raw_catalog() -> pd.DataFrame:
    """The catalog CSV as text, read by plain pandas (no validation, duplicates kept)."""
    return pd.read_csv(shipped_catalog_path("safetywashing"), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def catalog() -> pd.DataFrame:
    return load_catalog("safetywashing")


def _score_columns(raw_matrices) -> dict[str, list[str]]:
    return {
        pop: [c for c in frame.columns if c not in LLM_COLUMNS]
        for pop, frame in raw_matrices.items()
    }


def test_shipped_catalog_loads(catalog, raw_catalog):
    assert list(catalog.columns) == list(CATALOG_COLUMNS[1:])
    assert list(raw_catalog.columns) == list(CATALOG_COLUMNS)
    assert catalog.index.is_unique
    assert list(catalog.index) == list(raw_catalog["key"])
    assert catalog["role"].value_counts().to_dict() == {
        "safety": 124,
        "capability": 41,
        "excluded": 13,
    }
    by_path = load_catalog(shipped_catalog_path("safetywashing"))
    pd.testing.assert_frame_equal(by_path, catalog)
    assert catalog["lower"].dtype == float and catalog["upper"].dtype == float
    with pytest.raises(CatalogError, match="no shipped catalog"):
        load_catalog("no-such-dataset")


def test_every_score_column_has_exactly_one_row(raw_matrices, raw_catalog):
    counts = raw_catalog["key"].value_counts()
    columns = _score_columns(raw_matrices)
    assert len(columns["base"]) == 176 and len(columns["chat"]) == 178
    for pop, keys in columns.items():
        missing = [k for k in keys if k not in counts.index]
        assert not missing, f"{pop}: no catalog row for {missing}"
        repeated = [k for k in keys if counts[k] != 1]
        assert not repeated, f"{pop}: several catalog rows for {repeated}"
    # ... and no catalog row describes a column that is in neither matrix.
    assert set(raw_catalog["key"]) == set(columns["base"]) | set(columns["chat"])


def test_real_values_within_declared_bounds(raw_matrices, catalog):
    checked = 0
    for pop, frame in raw_matrices.items():
        keys = _score_columns(raw_matrices)[pop]
        low = frame[keys].min().to_numpy(dtype=float)
        high = frame[keys].max().to_numpy(dtype=float)
        lower = catalog["lower"].reindex(keys).to_numpy()
        upper = catalog["upper"].reindex(keys).to_numpy()
        assert not np.isnan(low).any() and not np.isnan(high).any()
        below = np.asarray(keys)[~np.isnan(lower) & (low < lower)]
        above = np.asarray(keys)[~np.isnan(upper) & (high > upper)]
        assert below.size == 0, f"{pop}: values below the lower bound in {below}"
        assert above.size == 0, f"{pop}: values above the upper bound in {above}"
        checked += int((~np.isnan(lower)).sum() + (~np.isnan(upper)).sum())
    # Spot checks of the scales the PROVENANCE notes document.
    chat = raw_matrices["chat"]
    assert chat["HarmBench-TAP-T-all"].max() > 1  # percent, not fraction
    assert catalog.loc["HarmBench-TAP-T-all", ["lower", "upper"]].tolist() == [0, 100]
    assert (raw_matrices["base"]["crows_pairs_english"] < 0).all()
    assert catalog.loc["crows_pairs_english", "upper"] == 0
    assert raw_matrices["base"]["eq_bench"].min() < 0  # negative for some base models
    assert np.isnan(catalog.loc["eq_bench", "lower"])


def test_parents_exist(raw_catalog):
    keys = raw_catalog.set_index("key")
    parts = keys[keys["parent"] != ""]
    assert len(parts) > 80
    for key, row in parts.iterrows():
        assert row["parent"] in keys.index, (key, row["parent"])
        parent = keys.loc[row["parent"]]
        assert parent["parent"] == "", f"{row['parent']} is itself a part"
        assert parent["role"] != "excluded"
        if row["role"] != "excluded":
            # A modelled part sits in its aggregate's role and area.
            assert (row["role"], row["area"]) == (parent["role"], parent["area"]), key


def test_roles_areas_and_directions(raw_catalog):
    safety = raw_catalog[raw_catalog["role"] == "safety"]
    bad_area = safety.loc[~safety["area"].isin(SAFETY_AREAS), ["key", "area"]]
    assert bad_area.empty, bad_area.to_dict("records")
    assert set(safety["area"]) == set(SAFETY_AREAS)  # every area has benchmarks
    capability = raw_catalog[raw_catalog["role"] == "capability"]
    assert set(capability["area"]) == {"capability"}
    modelled = raw_catalog[raw_catalog["role"] != "excluded"]
    assert set(modelled["direction"]) == {"higher", "lower"}
    excluded = raw_catalog[raw_catalog["role"] == "excluded"]
    assert set(excluded["direction"]) == {"none"}


def test_documented_directions(raw_catalog, raw_matrices):
    keys = raw_catalog.set_index("key")
    machiavelli_harms = [
        k
        for k in keys.index
        if k.startswith(("machiavelli-power.", "machiavelli-violations.", "machiavelli-utility."))
        and keys.loc[k, "role"] != "excluded"
    ]
    assert len(machiavelli_harms) == 20  # 5 power, 14 violations, utility.Σ
    assert {"machiavelli-power.Σ", "machiavelli-violations.Σ", "machiavelli-utility.Σ"} <= set(
        machiavelli_harms
    )
    assert set(keys.loc[machiavelli_harms, "direction"]) == {"lower"}
    assert keys.loc["discrim_eval", "direction"] == "lower"
    # Reward-like MACHIAVELLI columns are capabilities, higher = better.
    assert keys.loc["machiavelli-points", ["role", "direction"]].tolist() == [
        "capability",
        "higher",
    ]

    for frame in raw_matrices.values():
        # "machiavelli-utility.Σ and machiavelli-utility.suffering are identical columns":
        # only one of them is modelled.
        pd.testing.assert_series_equal(
            frame["machiavelli-utility.Σ"],
            frame["machiavelli-utility.suffering"],
            check_names=False,
        )
        # "discrim_eval equals the row-wise maximum of the six non-gender subgroup
        # differences"; the subgroup columns are excluded parts of discrim_eval.
        groups = ["asian", "hispanic", "black", "non-binary", "younger", "older"]
        row_max = frame[[f"discrim_eval_{g}" for g in groups]].max(axis=1)
        np.testing.assert_allclose(frame["discrim_eval"], row_max, rtol=0, atol=1e-12)
    assert keys.loc["machiavelli-utility.suffering", "role"] == "excluded"
    subgroups = keys[keys.index.str.startswith("discrim_eval_")]
    assert len(subgroups) == 7
    assert set(subgroups["role"]) == {"excluded"} and set(subgroups["parent"]) == {"discrim_eval"}


# ---------------------------------------------------------------------- malformed catalogs
_HEADER = "key,display_name,role,area,direction,scale,lower,upper,chance,parent,note\n"
_OK = "capability,capability,higher,fraction,0,1,"  # role .. chance


@pytest.mark.parametrize(
    ("rows", "line", "column", "problem"),
    [
        # The first bad row fails, whatever rule a later row breaks ...
        (["a,A,capability,capability,higher,furlongs,0,1,,,", "b,B,hero,,higher,,,,,,"], 2, "scale",
         "scale 'furlongs' of benchmark 'a'"),
        # ... naming the first rule it breaks, in the documented column order.
        (["a,A,safety,nowhere,sideways,furlongs,2,1,,,"], 2, "direction",
         "unknown direction 'sideways'"),
        (["a,A,safety,nowhere,higher,furlongs,2,1,,,"], 2, "area", "has area 'nowhere'"),
        (["a,A,capability,capability,higher,fraction,2,1,,,"], 2, "lower",
         "lower bound 2.0 is not below upper bound 1.0"),
        (["a,A,capability,capability,higher,fraction,x,1,,,", "b,B,hero,,,,,,,,"], 2, "lower",
         "'x' is not a number"),
        ([f"a,A,{_OK},b,", f"b,B,{_OK},c,", f"c,C,{_OK},,", f"d,D,{_OK},zz,"], 2, "parent",
         "parent 'b' of benchmark 'a' is itself a part"),
        ([f"a,A,{_OK},zz,", f"b,B,{_OK},c,", f"c,C,{_OK},d,", f"d,D,{_OK},,"], 2, "parent",
         "parent 'zz' of benchmark 'a' has no catalog row"),
        ([f"a,A,{_OK},,", f"a,B,{_OK},,"], None, "key", "appears more than once (lines [2, 3])"),
    ],
)  # fmt: skip
def test_malformed_catalog_names_first_problem(write_csv, rows, line, column, problem):
    path = write_csv("catalog.csv", _HEADER + "\n".join(rows) + "\n")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert (info.value.source, info.value.line, info.value.column) == (str(path), line, column)
    assert problem in str(info.value)


# ---------------------------------------------------------------------- offline loading
@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, no data-dir variable, an empty download cache in tmp_path."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.delenv("SAFETYWASH_DATA_DIR", raising=False)
    monkeypatch.setenv("SAFETYWASH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_load_dataset_offline(offline, shared_data_dir, real_study):
    study = load_dataset("safetywashing", "chat", data_dir=shared_data_dir, download=False)
    assert study.n_llms == 26
    assert set(study.llms["population"]) == {"chat"}
    assert study.name == "safetywashing-chat"
    assert study.sha256() == real_study("chat").sha256()
    assert not offline.exists()


def test_load_dataset_from_environment(offline, shared_data_dir, real_study, monkeypatch):
    # download=True (the default): the data directory alone must be used.
    monkeypatch.setenv("SAFETYWASH_DATA_DIR", str(shared_data_dir))
    study = load_dataset("safetywashing", "base")
    assert study.n_llms == 27
    assert study.sha256() == real_study("base").sha256()
    assert not offline.exists()


# ---------------------------------------------------------------------- n_items
_ITEMS_HEADER = "key,display_name,role,area,direction,scale,lower,upper,chance,n_items\n"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0", "n_items 0 of benchmark 'b' is not a positive whole number"),
        ("-3", "n_items -3 of benchmark 'b' is not a positive whole number"),
        ("2.5", "n_items 2.5 of benchmark 'b' is not a positive whole number"),
        ("many", "'many' is not a number"),
    ],
)
def test_bad_n_items_names_its_line_and_column(write_csv, value, problem):
    rows = [f"a,A,{_OK},1172", f"b,B,{_OK},{value}"]
    path = write_csv("catalog.csv", _ITEMS_HEADER + "\n".join(rows) + "\n")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert (info.value.source, info.value.line, info.value.column) == (str(path), 3, "n_items")
    assert problem in str(info.value)


def test_n_items_is_optional_and_read_as_a_count(write_csv):
    without = load_catalog(write_csv("old.csv", _HEADER + f"a,A,{_OK},,\n"))
    assert np.isnan(without.loc["a", "n_items"])
    rows = [f"a,A,{_OK},1172", f"b,B,{_OK},"]
    with_items = load_catalog(write_csv("new.csv", _ITEMS_HEADER + "\n".join(rows) + "\n"))
    assert with_items.loc["a", "n_items"] == 1172 and np.isnan(with_items.loc["b", "n_items"])


def test_shipped_counts_are_those_documented(catalog):
    """Every filled count is in data/README.md's table, and the headline ones match."""
    assert catalog.loc["arc_challenge", "n_items"] == 1172
    assert catalog.loc["mmlu", "n_items"] == 14042
    assert catalog.loc["truthfulqa_mc1", "n_items"] == 817
    readme = (Path(__file__).parents[1] / "data" / "README.md").read_text(encoding="utf-8")
    for key in catalog.index[catalog["n_items"].notna()]:
        assert f"`{key}`" in readme.split("## Numbers of scored items")[1], key
