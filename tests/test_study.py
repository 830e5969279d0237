"""BenchmarkStudy on the real Safetywashing release, checked against plain pandas reads.

Plus the generic readers on small synthetic files: wide and long files with the same
content must give the same study.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safetywash.data.catalog import shipped_catalog_path
from safetywash.data.errors import StudyValidationError
from safetywash.data.readers import read_long_csv, read_wide_csv
from safetywash.data.sources.safetywashing import read_safetywashing

LLM_COLUMNS = ["name", "type", "model_size", "FLOP"]
POPULATION_SIZES = {"base": 27, "chat": 26}


@pytest.fixture(scope="module")
def raw_catalog() -> pd.DataFrame:
    """The shipped catalog CSV read by plain pandas (no validation), indexed by key."""
    return pd.read_csv(
        shipped_catalog_path("safetywashing"), dtype=str, keep_default_na=False
    ).set_index("key")


def _score_columns(raw: pd.DataFrame) -> list[str]:
    return [c for c in raw.columns if c not in LLM_COLUMNS]


def _raw_all(raw_matrices) -> pd.DataFrame:
    return pd.concat([raw_matrices["base"], raw_matrices["chat"]])


# ---------------------------------------------------------------------- sizes, populations
@pytest.mark.parametrize("population", ["base", "chat", "all"])
def test_llms_and_populations(real_study, raw_matrices, population):
    study = real_study(population)
    raw = _raw_all(raw_matrices) if population == "all" else raw_matrices[population]
    assert study.n_llms == {"base": 27, "chat": 26, "all": 53}[population]
    assert list(study.llms.index) == list(raw.index)
    assert list(study.llms["population"]) == list(raw["type"])
    expected = POPULATION_SIZES if population == "all" else {population: study.n_llms}
    assert study.llms["population"].value_counts().to_dict() == expected
    assert list(study.llms["display_name"]) == list(raw["name"])
    np.testing.assert_array_equal(study.llms["params"].to_numpy(), raw["model_size"].to_numpy())
    np.testing.assert_array_equal(study.llms["flop"].to_numpy(), raw["FLOP"].to_numpy())
    assert study.llms.loc[study.llms.index.str.startswith("Llama-2"), "family"].eq("Llama 2").all()


@pytest.mark.parametrize("population", ["base", "chat", "all"])
def test_excluded_columns_are_listed_and_absent(real_study, raw_matrices, raw_catalog, population):
    study = real_study(population)
    raw = _raw_all(raw_matrices) if population == "all" else raw_matrices[population]
    columns = _score_columns(raw)
    excluded = [c for c in columns if raw_catalog.loc[c, "role"] == "excluded"]
    assert len(excluded) == 13
    assert set(study.excluded) == set(excluded)
    assert not set(excluded) & set(study.benchmarks.index)
    assert not set(excluded) & set(study.scores["benchmark"])
    assert set(study.benchmarks.index) == set(columns) - set(excluded)
    assert study.n_benchmarks == {"base": 163, "chat": 165, "all": 165}[population]


def test_missing_fraction(real_study):
    assert real_study("base").missing_fraction == pytest.approx(1 / (27 * 163))
    assert real_study("chat").missing_fraction == pytest.approx(6 / (26 * 165))
    # Base LLMs have no Alpaca-Eval / Chatbot Arena columns at all.
    assert real_study("all").missing_fraction == pytest.approx((1 + 6 + 2 * 27) / (53 * 165))


# ---------------------------------------------------------------------- conversions
@pytest.mark.parametrize("population", ["base", "chat", "all"])
def test_dataarray_matches_raw_csv(real_study, raw_matrices, population):
    study = real_study(population)
    raw = _raw_all(raw_matrices) if population == "all" else raw_matrices[population]
    da = study.to_dataarray()
    assert da.dims == ("llm", "benchmark")
    assert da.shape == (study.n_llms, study.n_benchmarks)
    assert list(da["llm"].values) == list(raw.index)
    assert list(da["population"].values) == list(raw["type"])
    expected = raw.reindex(columns=list(study.benchmarks.index)).to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(da.values), np.isnan(expected))
    np.testing.assert_array_equal(da.values, expected)  # NaN compare equal here
    assert list(da["direction"].values) == list(study.benchmarks["direction"])


def test_known_missing_cells(real_study):
    base = real_study("base").to_dataarray()
    assert np.isnan(base.sel(llm="Yi-34B", benchmark="cyberseceval2_autocomplete"))
    assert int(np.isnan(base).sum()) == 1
    chat = real_study("chat").to_dataarray()
    arena = chat.sel(benchmark="LMSYS_Chatbot_Arena")
    assert int(np.isnan(arena).sum()) == 6
    assert int(np.isnan(chat).sum()) == 6
    assert real_study("chat").n_cells == 26 * 165 - 6


@pytest.mark.parametrize("population", ["base", "chat"])
@pytest.mark.parametrize(
    "column",
    ["mmlu", "machiavelli-power.Σ", "crows_pairs_english", "HarmBench-TAP-T-all", "eq_bench"],
)
def test_to_wide_and_to_long_round_trip_raw_values(
    real_study, safetywashing_root, population, column
):
    path = safetywashing_root / f"data/benchmarks_{population}_models.csv"
    text = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("model")[column]
    # Python's float() is correctly rounded: the reference for "the raw value".
    expected = np.array([float(t) for t in text])
    study = real_study(population)
    np.testing.assert_array_equal(study.to_wide()[column].to_numpy(), expected)
    long = study.to_long()
    part = long[long["benchmark"] == column].set_index("llm")["value"]
    assert list(part.index) == list(text.index)
    np.testing.assert_array_equal(part.to_numpy(), expected)


def test_to_long_columns_and_round_trip(real_study):
    study = real_study("all")
    long = study.to_long()
    assert len(long) == study.n_cells == 8684
    assert {"llm", "benchmark", "value", "population", "role", "area", "direction"} <= set(
        long.columns
    )
    assert long["value"].notna().all()
    arena = long[long["benchmark"] == "LMSYS_Chatbot_Arena"]
    assert set(arena["population"]) == {"chat"}
    assert len(arena) == 20
    assert set(long.loc[long["benchmark"] == "mmlu", "role"]) == {"capability"}
    back = long.pivot(index="llm", columns="benchmark", values="value")
    back = back.reindex(index=study.llms.index, columns=study.benchmarks.index)
    pd.testing.assert_frame_equal(back, study.to_wide())


@pytest.mark.parametrize("population", ["chat", "all"])
def test_index_arrays_point_to_the_right_rows(real_study, population):
    study = real_study(population)
    li, bi = study.llm_index, study.benchmark_index
    assert li.dtype == np.int64 and bi.dtype == np.int64
    assert len(li) == len(bi) == study.n_cells
    assert list(study.llms.index[li]) == list(study.scores["llm"])
    assert list(study.benchmarks.index[bi]) == list(study.scores["benchmark"])
    values = study.to_dataarray().values
    np.testing.assert_array_equal(values[li, bi], study.scores["value"].to_numpy())
    # Every observed cell appears exactly once.
    assert len(set(zip(li.tolist(), bi.tolist(), strict=True))) == study.n_cells
    assert np.isfinite(values).sum() == study.n_cells


def test_oriented_values_flip_lower_is_better(real_study, raw_catalog):
    study = real_study("chat")
    direction = raw_catalog["direction"].reindex(study.scores["benchmark"]).to_numpy()
    assert set(direction) == {"higher", "lower"}
    raw = study.scores["value"].to_numpy()
    expected = np.where(direction == "lower", -raw, raw)
    np.testing.assert_array_equal(study.oriented_values(), expected)
    lower = direction == "lower"
    assert lower.sum() > 100  # MACHIAVELLI harms, discrim_eval, ... in 26 LLMs each
    assert (study.oriented_values()[lower] < 0).all()  # those are all positive raw values


# ---------------------------------------------------------------------- selections
def _present_parts(study, raw_catalog) -> set[str]:
    keys = set(study.benchmarks.index)
    return {k for k in keys if raw_catalog.loc[k, "parent"] in keys}


def test_select_level(real_study, raw_catalog):
    # One population only: each selection re-validates the study, which is slow (subset()).
    study = real_study("chat")
    keys = set(study.benchmarks.index)
    parts = _present_parts(study, raw_catalog)
    aggregates = {raw_catalog.loc[k, "parent"] for k in parts}
    assert {"adv_glue", "glue", "machiavelli-power.Σ", "HarmBench-TAP-T-all"} <= aggregates
    assert len(parts) > 80

    agg = study.select_level("aggregate")
    assert set(agg.benchmarks.index) == keys - parts
    assert not any(
        raw_catalog.loc[k, "parent"] in set(agg.benchmarks.index) for k in agg.benchmarks.index
    )
    assert set(agg.excluded) == set(study.excluded) | parts
    assert agg.n_llms == study.n_llms
    assert "adv_glue" in agg.benchmarks.index and "adv_qqp" not in agg.benchmarks.index

    only_parts = study.select_level("parts")
    assert set(only_parts.benchmarks.index) == keys - aggregates
    assert (
        "adv_qqp" in only_parts.benchmarks.index and "adv_glue" not in only_parts.benchmarks.index
    )
    # Benchmarks that are neither parts nor aggregates stay in both.
    both = set(agg.benchmarks.index) & set(only_parts.benchmarks.index)
    assert {"mmlu", "gpqa", "MT_Bench"} <= both

    assert study.select_level("all") is study
    # Values of the kept benchmarks are unchanged.
    pd.testing.assert_frame_equal(agg.to_wide(), study.to_wide()[list(agg.benchmarks.index)])
    with pytest.raises(ValueError, match="level must be one of"):
        study.select_level("leaves")


def test_select_population(real_study):
    every = real_study("all")
    # One population only: each selection re-validates the study, which is slow (subset()).
    base = every.select_population("base")
    assert base.sha256() == real_study("base").sha256()
    assert set(base.llms["population"]) == {"base"}
    assert base.n_llms == 27
    assert "LMSYS_Chatbot_Arena" not in base.benchmarks.index
    assert "LMSYS_Chatbot_Arena" in base.excluded
    assert base.name == "safetywashing-all-base"
    assert every.select_population("all") is every
    with pytest.raises(StudyValidationError, match="unknown population 'instruct'") as info:
        every.select_population("instruct")
    assert "'base'" in str(info.value) and "'chat'" in str(info.value)
    with pytest.raises(StudyValidationError, match="unknown population 'base'"):
        real_study("chat").select_population("base")


# ---------------------------------------------------------------------- identity
def test_sha256_stable_and_value_sensitive(safetywashing_root, real_study, real_copy, set_cell):
    first = real_study("chat").sha256()
    assert len(first) == 64
    assert read_safetywashing(safetywashing_root, "chat").sha256() == first  # a second read
    assert real_study("base").sha256() != first

    path = real_copy / "data/benchmarks_chat_models.csv"
    llm = "Llama-2-7b-chat-hf"
    original = pd.read_csv(path, dtype=str).set_index("model").loc[llm, "mmlu"]
    set_cell(path, llm, "mmlu", repr(float(original) + 1e-9))
    assert read_safetywashing(real_copy, "chat").sha256() != first


def test_sha256_depends_on_values_not_spelling(write_csv, tiny_catalog_csv, tiny_wide_text):
    reference = read_wide_csv(write_csv("w.csv", tiny_wide_text), tiny_catalog_csv).sha256()
    respelled = tiny_wide_text.replace("0.5,0.6,1.5", "5e-1,0.60,+1.50")
    assert read_wide_csv(write_csv("w2.csv", respelled), tiny_catalog_csv).sha256() == reference
    changed = tiny_wide_text.replace("0.5,0.6,1.5", "0.5,0.6000000001,1.5")
    assert read_wide_csv(write_csv("w3.csv", changed), tiny_catalog_csv).sha256() != reference


# ---------------------------------------------------------------------- generic readers
LONG_BY_BENCHMARK = (
    "llm,benchmark,value\n"
    "m1,a,0.1\nm2,a,0.3\nm3,a,0.5\nm4,a,0.2\n"
    "m1,b,0.2\nm3,b,0.6\nm4,b,0.9\n"
    "m1,s,3\nm2,s,4\nm3,s,1.5\nm4,s,-2\n"
    "m1,n,10\nm2,n,10\n"
)


def test_wide_and_long_give_the_same_study(
    write_csv, tiny_catalog_csv, tiny_catalog, tiny_wide_text, tiny_long_text
):
    wide = read_wide_csv(write_csv("w.csv", tiny_wide_text), tiny_catalog_csv)
    long = read_long_csv(write_csv("l.csv", tiny_long_text), tiny_catalog_csv)
    assert wide.sha256() == long.sha256()
    pd.testing.assert_frame_equal(wide.scores, long.scores)
    assert wide.excluded == long.excluded == ("n",)
    # Row order of the long file does not matter while LLMs first appear in the same order.
    by_benchmark = read_long_csv(write_csv("l2.csv", LONG_BY_BENCHMARK), tiny_catalog_csv)
    assert by_benchmark.sha256() == wide.sha256()
    # The catalog may be given as a DataFrame.
    assert (
        read_wide_csv(write_csv("w2.csv", tiny_wide_text), tiny_catalog).sha256() == wide.sha256()
    )

    assert (wide.n_llms, wide.n_benchmarks, wide.n_cells) == (4, 3, 11)
    assert list(wide.benchmarks.index) == ["a", "b", "s"]
    assert wide.benchmarks.loc["s", "display_name"] == "Harm"
    assert np.isnan(wide.to_wide().loc["m2", "b"])
    np.testing.assert_array_equal(
        wide.oriented_values(), [0.1, 0.3, 0.5, 0.2, 0.2, 0.6, 0.9, -3, -4, -1.5, 2]
    )
    assert set(wide.llms["population"]) == {"all"}


def test_wide_and_long_with_llm_metadata(write_csv, tiny_catalog_csv):
    wide_text = (
        "llm,population,flop,a,b,s\n"
        "m1,base,1e22,0.1,0.2,3\nm2,base,2e22,0.3,,4\nm3,chat,,0.5,0.6,1.5\nm4,chat,4e22,0.2,0.9,-2\n"
    )
    meta = {"m1": "base,1e22", "m2": "base,2e22", "m3": "chat,", "m4": "chat,4e22"}
    cells = [("m1", "a", "0.1"), ("m1", "b", "0.2"), ("m1", "s", "3"), ("m2", "a", "0.3")]
    cells += [("m2", "s", "4"), ("m3", "a", "0.5"), ("m3", "b", "0.6"), ("m3", "s", "1.5")]
    cells += [("m4", "a", "0.2"), ("m4", "b", "0.9"), ("m4", "s", "-2")]
    long_text = "llm,benchmark,value,population,flop\n" + "".join(
        f"{llm},{b},{v},{meta[llm]}\n" for llm, b, v in cells
    )
    wide = read_wide_csv(write_csv("w.csv", wide_text), tiny_catalog_csv)
    long = read_long_csv(write_csv("l.csv", long_text), tiny_catalog_csv)
    assert wide.sha256() == long.sha256()
    assert list(wide.llms["population"]) == ["base", "base", "chat", "chat"]
    np.testing.assert_array_equal(wide.llms["flop"].to_numpy(), [1e22, 2e22, np.nan, 4e22])
    # Two chat LLMs leave 'a' with 2 observed values: the selection is re-validated.
    with pytest.raises(StudyValidationError, match="only 2 observed"):
        wide.select_population("chat")
    # A metadata change is a different study.
    other = read_wide_csv(write_csv("w3.csv", wide_text.replace("4e22", "5e22")), tiny_catalog_csv)
    assert other.sha256() != wide.sha256()


def test_subset_revalidates(write_csv, tiny_catalog_csv, tiny_wide_text):
    study = read_wide_csv(write_csv("w.csv", tiny_wide_text), tiny_catalog_csv)
    small = study.subset(llms=["m1", "m3", "m4"])
    assert small.n_llms == 3 and small.n_cells == 9
    # Dropping m1 leaves 'b' with 2 observed LLMs: the subset is re-validated.
    with pytest.raises(StudyValidationError, match="only 2 observed") as info:
        study.subset(llms=["m2", "m3", "m4"])
    assert info.value.column == "b"
    assert study.subset(llms=["m2", "m3", "m4"], min_llms=2).n_cells == 8
