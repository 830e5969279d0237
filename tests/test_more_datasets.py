"""Readers of the extra datasets: HELM (benchbench), Epoch benchmark stitching, Open LLM v1.

Real-data tests load through ``load_dataset(name, data_dir=<shared data>, download=False)``
and compare with an independent plain-pandas computation of the documented rules
(``data/README.md``); they are skipped when the shared data are absent (and fail under
``CI=true``). Rule and bad-input tests build tiny files in ``tmp_path``. No test touches the
network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safetywash.data.catalog import load_catalog
from safetywash.data.errors import StudyValidationError
from safetywash.data.load import READERS, load_dataset
from safetywash.data.sources.epoch import (
    EPOCH_EXTERNAL,
    read_epoch_benchmark_stitching,
    resolve_duplicates,
)
from safetywash.data.sources.helm import HELM_TABLES, read_helm_benchbench
from safetywash.data.sources.openllm import OPENLLM_FILE, read_open_llm_leaderboard_v1
from safetywash.data.table import read_table

HELM = "helm-benchbench"
EPOCH = "epoch-benchmark-stitching"
OPENLLM = "open-llm-leaderboard-v1"


@pytest.fixture(scope="module")
def shared_study(shared_dataset):
    """``shared_study(name)``: the real dataset through ``load_dataset``, read once."""
    cache = {}

    def get(name: str):
        if name not in cache:
            data_dir = shared_dataset(name).parent
            cache[name] = load_dataset(name, data_dir=data_dir, download=False)
        return cache[name]

    return get


def test_readers_are_registered():
    assert {HELM, EPOCH, OPENLLM} <= set(READERS)


@pytest.mark.parametrize("name", [HELM, EPOCH, OPENLLM])
def test_every_modelled_benchmark_has_a_direction(name):
    catalog = load_catalog(name)
    modelled = catalog[catalog["role"] != "excluded"]
    assert modelled["direction"].isin(["higher", "lower"]).all()
    excluded = catalog[catalog["role"] == "excluded"]
    assert (excluded["note"] != "").all()
    assert (excluded["direction"] == "none").all()


@pytest.mark.parametrize("name", [HELM, EPOCH, OPENLLM])
def test_only_population_all(name, shared_dataset):
    root = shared_dataset(name)
    with pytest.raises(StudyValidationError, match="population 'chat'"):
        READERS[name](root, "chat")


# ====================================================================== HELM
def _helm_raw(root: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for table in HELM_TABLES:
        frame = pd.read_csv(
            root / "benchbench/data/helm" / f"{table}.tsv",
            sep="\t",
            dtype=str,
            keep_default_na=False,
        )
        out[table] = frame.set_index(frame.columns[0])
    return out


def _helm_rule_keys(raw: dict[str, pd.DataFrame]) -> dict[str, pd.Series]:
    """Independent statement of the documented HELM rules: modelled key -> numeric column."""
    keep = {}
    for table, frame in raw.items():
        for column in frame.columns:
            values = pd.to_numeric(frame[column].replace("-", np.nan))
            if column == "Mean win rate" or table == "efficiency":
                continue
            if column.split(" - ")[-1] in ("Coverage", "Density", "Compression"):
                continue
            if values.nunique() < 3:  # includes the all-missing columns
                continue
            keep[f"{table}: {column}"] = values
    return keep


def test_helm_counts_match_plain_pandas(shared_dataset, shared_study):
    study = shared_study(HELM)
    raw = _helm_raw(shared_dataset(HELM))
    keep = _helm_rule_keys(raw)
    models = set(raw["accuracy"].index)
    assert all(set(f.index) == models for f in raw.values())
    assert study.n_llms == len(models) == 67
    assert set(study.benchmarks.index) == set(keep)
    assert study.n_benchmarks == len(keep) == 96
    assert study.n_cells == sum(int(v.notna().sum()) for v in keep.values()) == 4743
    wide = study.to_wide()
    for key, values in keep.items():
        got = wide[key].dropna()
        want = values.dropna()
        assert got.index.sort_values().equals(want.index.sort_values()), key
        np.testing.assert_array_equal(got.sort_index().to_numpy(), want.sort_index().to_numpy())


def test_helm_missing_fraction(shared_dataset, shared_study):
    study = shared_study(HELM)
    # Modelled columns: 26.3 % missing. The 44 % of PROVENANCE.md counts all 150 metric
    # columns, including 21 empty ones and the excluded efficiency table.
    assert 0.25 < study.missing_fraction < 0.28
    raw = _helm_raw(shared_dataset(HELM))
    cells = [
        (frame[c] != "-").to_numpy()
        for frame in raw.values()
        for c in frame.columns
        if c != "Mean win rate"
    ]
    assert 0.43 < 1 - np.mean(np.concatenate(cells)) < 0.45


def test_helm_directions_and_roles(shared_study):
    bench = shared_study(HELM).benchmarks
    assert (bench.loc[bench.index.str.startswith("calibration: "), "direction"] == "lower").all()
    assert (bench.loc[bench.index.str.startswith("toxicity: "), "direction"] == "lower").all()
    assert (bench.loc[bench.index.str.startswith("bias: "), "direction"] == "lower").all()
    for table in ("robustness", "fairness", "accuracy"):
        assert (bench.loc[bench.index.str.startswith(f"{table}: "), "direction"] == "higher").all()
    assert bench.loc["calibration: MMLU - ECE (10-bin)", "area"] == "calibration"
    assert bench.loc["robustness: MMLU - EM (Robustness)", "area"] == "adversarial_robustness"
    assert bench.loc["fairness: MMLU - EM (Fairness)", "area"] == "bias"
    assert bench.loc["accuracy: TruthfulQA - EM", "area"] == "truthfulness"
    assert bench.loc["accuracy: CivilComments - EM", "role"] == "capability"
    assert bench.loc["accuracy: MMLU - EM", "chance"] == 0.25
    excluded = set(shared_study(HELM).excluded)
    assert "accuracy: Mean win rate" in excluded
    assert "efficiency: MMLU - Denoised inference time (s)" in excluded
    assert "summarization: XSUM - Density" in excluded
    assert "bias: NarrativeQA - Stereotypes (race)" in excluded  # constant 0.667


def test_helm_llm_metadata(shared_study):
    llms = shared_study(HELM).llms
    assert llms.loc["Llama 2 (70B)", "family"] == "Llama 2"
    assert llms.loc["Llama 2 (70B)", "params"] == 70e9
    assert llms.loc["Cohere small v20220720 (410M)", "params"] == 410e6
    assert np.isnan(llms.loc["text-davinci-002", "params"])


@pytest.fixture
def helm_copy(tmp_path: Path, shared_dataset) -> Path:
    src = shared_dataset(HELM) / "benchbench/data/helm"
    dest = tmp_path / HELM / "benchbench/data/helm"
    dest.mkdir(parents=True)
    for table in HELM_TABLES:
        (dest / f"{table}.tsv").write_bytes((src / f"{table}.tsv").read_bytes())
    return tmp_path / HELM


def _edit_tsv(path: Path, model: str, column: str | None, value: str) -> int:
    """Set one cell (or, with column None, the model name) of a HELM TSV; return its line."""
    lines = path.read_text().split("\n")
    header = lines[0].split("\t")
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if cells[0] == model:
            cells[header.index(column) if column else 0] = value
            lines[number - 1] = "\t".join(cells)
            path.write_text("\n".join(lines))
            return number
    raise AssertionError(f"{model} not in {path}")


def test_helm_bad_cell_is_located(helm_copy: Path):
    path = helm_copy / "benchbench/data/helm/calibration.tsv"
    line = _edit_tsv(path, "Llama 2 (13B)", "MMLU - ECE (10-bin)", "n/a")
    with pytest.raises(StudyValidationError) as err:
        read_helm_benchbench(helm_copy)
    e = err.value
    assert (e.source, e.line) == (str(path), line)
    assert e.column == "calibration: MMLU - ECE (10-bin)"
    assert e.llm == "Llama 2 (13B)"
    assert "not a number" in str(e)


def test_helm_out_of_range_is_located(helm_copy: Path):
    path = helm_copy / "benchbench/data/helm/toxicity.tsv"
    line = _edit_tsv(path, "Llama 2 (7B)", "QuAC - Toxic fraction", "1.5")
    with pytest.raises(StudyValidationError, match="outside the declared range") as err:
        read_helm_benchbench(helm_copy)
    assert (err.value.source, err.value.line) == (str(path), line)


def test_helm_model_in_one_table_only(helm_copy: Path):
    path = helm_copy / "benchbench/data/helm/bias.tsv"
    line = _edit_tsv(path, "Llama 2 (7B)", None, "Llama 2 (7b)")
    with pytest.raises(StudyValidationError, match=r"not in accuracy\.tsv") as err:
        read_helm_benchbench(helm_copy)
    assert (err.value.source, err.value.line, err.value.llm) == (str(path), line, "Llama 2 (7b)")


def test_helm_unknown_column_and_ragged_row(helm_copy: Path):
    path = helm_copy / "benchbench/data/helm/toxicity.tsv"
    text = path.read_text()
    lines = text.split("\n")
    lines[0] = lines[0].replace("RAFT - Toxic fraction", "RAFT - Toxic share")
    path.write_text("\n".join(lines))
    with pytest.raises(StudyValidationError, match="no entry in the benchmark catalog") as err:
        read_helm_benchbench(helm_copy)
    assert err.value.column == "toxicity: RAFT - Toxic share"
    assert (err.value.source, err.value.line) == (str(path), 1)
    lines = text.split("\n")
    lines[5] = lines[5].rsplit("\t", 1)[0]
    path.write_text("\n".join(lines))
    with pytest.raises(StudyValidationError, match="fields but the header") as err:
        read_helm_benchbench(helm_copy)
    assert (err.value.source, err.value.line) == (str(path), 6)


# ====================================================================== Epoch
_EPOCH_PAPER_LEFT_OUT = {
    "boolq",
    "mcbench",
    "metr",
    "FrontierMath-2025-02-28-Public",
    "FrontierMath-Tier-4-2025-07-01-Public",
}


def _epoch_reference(root: Path) -> pd.DataFrame:
    """The documented rules in plain pandas (default NA parsing, as in the paper's loader)."""
    data = root / "data"
    frames = []
    for key, spec in EPOCH_EXTERNAL.items():
        if key in _EPOCH_PAPER_LEFT_OUT:
            continue
        frame = pd.read_csv(data / f"external_benchmark_{key}.csv")
        need = ["Model version", spec.score_column] + (["Source"] if spec.needs_source else [])
        frame = frame.dropna(subset=need)
        text = frame[spec.score_column].astype(str).str.rstrip("%")
        frames.append(
            pd.DataFrame(
                {
                    "llm": frame["Model version"].str.strip(),
                    "benchmark": key,
                    "value": pd.to_numeric(text) / spec.divisor,
                }
            )
        )
    runs = pd.read_csv(data / "benchmarks_runs.csv")
    runs = runs[~runs["task"].isin(_EPOCH_PAPER_LEFT_OUT)]
    frames.append(
        pd.DataFrame(
            {
                "llm": runs["model"].str.strip(),
                "benchmark": runs["task"],
                "value": runs["Best score (across scorers)"],
            }
        )
    )
    scores = pd.concat(frames)
    counts = scores.groupby("llm")["benchmark"].nunique()
    scores = scores[scores["llm"].isin(counts.index[counts > 3])]
    versions = pd.read_csv(data / "model_versions.csv")
    versions["llm"] = versions["id"].str.strip()
    scores = scores.merge(versions[["llm", "Version release date"]], on="llm")
    scores = scores[pd.to_datetime(scores["Version release date"]) >= "2022-11-01"]
    return scores.groupby(["llm", "benchmark"], as_index=False)["value"].max()


def test_epoch_counts_match_plain_pandas(shared_dataset, shared_study):
    study = shared_study(EPOCH)
    ref = _epoch_reference(shared_dataset(EPOCH))
    assert (study.n_llms, study.n_benchmarks, study.n_cells) == (179, 38, 1324)
    assert study.n_llms == ref["llm"].nunique()
    assert set(study.benchmarks.index) == set(ref["benchmark"])
    assert study.n_cells == len(ref)
    merged = study.scores.merge(ref, on=["llm", "benchmark"], suffixes=("", "_ref"))
    assert len(merged) == len(ref)
    np.testing.assert_allclose(merged["value"], merged["value_ref"], rtol=0, atol=1e-12)


def test_epoch_observed_fraction_and_ids(shared_study):
    study = shared_study(EPOCH)
    assert 0.19 < 1 - study.missing_fraction < 0.20
    # Trailing-space ids are joined after stripping both sides.
    assert "Llama-2-70b-hf" in study.llms.index
    family = study.llms["family"]
    assert family[family != ""].nunique() == 121 and (family == "").sum() == 17
    assert set(study.excluded) == _EPOCH_PAPER_LEFT_OUT
    assert study.scores["value"].between(0, 1).all()


def test_epoch_directions(shared_study):
    bench = shared_study(EPOCH).benchmarks
    assert bench.loc["cybench", ["role", "area", "direction"]].tolist() == [
        "safety",
        "weaponization",
        "lower",
    ]
    assert bench.loc["anli", ["role", "area", "direction"]].tolist() == [
        "safety",
        "adversarial_robustness",
        "higher",
    ]
    capability = bench[bench["role"] == "capability"]
    assert len(capability) == 36 and (capability["direction"] == "higher").all()


def _write(path: Path, text: str, *, bom: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


_TINY_KEYS = ("GPQA diamond", "mmlu", "gsm8k", "hellaswag")


def _tiny_epoch(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """A tiny release exercising every Epoch rule; the catalog models four benchmarks."""
    root = tmp_path / EPOCH
    data = root / "data"
    _write(
        data / "model_versions.csv",
        "id,Model,Version release date,Display name,Unique display name\n"
        "v1,Fam A,2023-01-01,,Version one\n"
        "v2,Fam A,2023-06-01,,\n"
        "v3,Fam B,2024-01-01,,\n"
        "v4,Fam B,2024-02-01,,\n"
        "v5 ,Fam C,2024-03-01,,\n"  # trailing space on both sides
        "old,Fam D,2021-01-01,,\n"  # dropped by the date filter
        "nodate,Fam D,,,\n"  # dropped: empty date
        "few,Fam E,2024-05-01,,\n",  # dropped: only 3 benchmarks
    )
    _write(
        data / "benchmarks_runs.csv",
        "task,model,Best score (across scorers),Status\n"
        "GPQA diamond,v1,0.30,Success\nGPQA diamond,v2,0.40,Success\n"
        "GPQA diamond,v3,0.50,Success\nGPQA diamond,v4,0.55,Success\n"
        "GPQA diamond,v5 ,0.60,Success\nGPQA diamond,old,0.2,Success\n"
        "GPQA diamond,nodate,0.2,Success\nGPQA diamond,few,0.2,Success\n"
        "FrontierMath-2025-02-28-Public,v1,0.9,Success\n",  # excluded task, not counted
    )
    _write(
        data / "external_benchmark_mmlu.csv",
        "Name,EM,Model version,Source,Notes\n"
        'a,50%,v1,paper,"a note\nover two lines"\n'
        "b,60%,v1,leaderboard,\n"  # duplicate pair: the maximum (0.6) is kept
        "c,62.5%,v2,paper,\n"
        "d,70%,v3,paper,\n"
        "e,75%,v4,,\n"  # no Source: dropped
        "e2,74%,v4,paper,\n"
        "f,80%,v5 ,paper,\n"
        "g,40%,,paper,\n"  # no version: dropped
        "h,30%,old,paper,\nh,30%,nodate,paper,\nk,30%,few,paper,\n",
    )
    _write(
        data / "external_benchmark_gsm8k.csv",
        "EM,Model version,Source\n"
        "10%,v1,p\n20%,v2,p\n30%,v3,p\n45%,v4,p\n50%,v5 ,p\n5%,old,p\n5%,nodate,p\n",
    )
    _write(
        data / "external_benchmark_hellaswag.csv",
        "Overall accuracy,Model version,Source\n"
        "60%,v1,p\n65%,v2,p\n70%,v3,p\n75%,v4,p\n80%,v5 ,p\n50%,old,p\n50%,nodate,p\n"
        "50%,few,p\n",
    )
    catalog = load_catalog(EPOCH).rename_axis("key").reset_index()
    modelled = catalog["key"].isin(_TINY_KEYS)
    catalog.loc[~modelled, ["role", "area", "direction"]] = ["excluded", "", "none"]
    return root, catalog


def test_epoch_rules_on_a_tiny_release(tmp_path: Path):
    root, catalog = _tiny_epoch(tmp_path)
    study = read_epoch_benchmark_stitching(root, catalog=catalog)
    assert list(study.llms.index) == ["v1", "v2", "v3", "v4", "v5"]
    assert study.llms.loc["v1", "display_name"] == "Version one"
    assert study.llms.loc["v5", "family"] == "Fam C"
    wide = study.to_wide()
    assert wide.loc["v1", "mmlu"] == pytest.approx(0.6)  # max of 0.5 and 0.6
    assert wide.loc["v4", "mmlu"] == pytest.approx(0.74)  # the row without Source is dropped
    assert wide.loc["v5", "mmlu"] == pytest.approx(0.8)  # "v5 " joined to "v5 "
    assert wide.loc["v2", "GPQA diamond"] == pytest.approx(0.4)
    assert study.n_cells == 20


def test_epoch_duplicate_rule(tmp_path: Path):
    root, catalog = _tiny_epoch(tmp_path)
    path = root / "data/external_benchmark_mmlu.csv"
    with pytest.raises(StudyValidationError, match="same \\(version, benchmark\\) pair") as err:
        read_epoch_benchmark_stitching(root, catalog=catalog, duplicates="error")
    e = err.value
    assert (e.source, e.line, e.llm, e.column) == (str(path), 2, "v1", "mmlu")
    assert f"{path} line 2; {path} line 4" in str(e)  # the quoted note spans lines 2-3
    rows = pd.DataFrame(
        {
            "llm": ["a", "a", "a", "b"],
            "benchmark": ["x"] * 4,
            "value": [0.2, 0.7, 0.7, 0.1],
            "source": "f",
            "line": [2, 3, 4, 5],
        }
    )
    kept = resolve_duplicates(rows, "max")
    assert kept["line"].tolist() == [3, 5]  # the maximum; ties keep the earlier row
    with pytest.raises(ValueError, match="duplicates must be"):
        resolve_duplicates(rows, "mean")


def test_epoch_bad_inputs_are_located(tmp_path: Path):
    root, catalog = _tiny_epoch(tmp_path)
    path = root / "data/external_benchmark_gsm8k.csv"
    text = path.read_bytes().decode("utf-8-sig")
    path.write_text(text.replace("30%,v3", "3O%,v3"), encoding="utf-8")
    with pytest.raises(StudyValidationError, match="'3O%' is not a number") as err:
        read_epoch_benchmark_stitching(root, catalog=catalog)
    assert (err.value.source, err.value.line, err.value.column, err.value.llm) == (
        str(path),
        4,
        "EM",
        "v3",
    )
    path.write_text(text.replace("45%,v4", "45%,v9"), encoding="utf-8")
    with pytest.raises(StudyValidationError, match=r"not in data/model_versions\.csv") as err:
        read_epoch_benchmark_stitching(root, catalog=catalog)
    assert (err.value.source, err.value.line, err.value.llm) == (str(path), 5, "v9")
    path.write_text(text, encoding="utf-8")
    versions = root / "data/model_versions.csv"
    vtext = versions.read_bytes().decode("utf-8-sig")
    versions.write_text(vtext.replace("2024-01-01", "Jan 2024"), encoding="utf-8")
    with pytest.raises(StudyValidationError, match="not a YYYY-MM-DD date") as err:
        read_epoch_benchmark_stitching(root, catalog=catalog)
    assert (err.value.source, err.value.line, err.value.llm) == (str(versions), 4, "v3")
    versions.write_text(vtext.replace("v2,Fam A", "v1 ,Fam A"), encoding="utf-8")
    with pytest.raises(StudyValidationError, match="id appears more than once") as err:
        read_epoch_benchmark_stitching(root, catalog=catalog)
    assert (err.value.line, err.value.llm) == (3, "v1")


def test_read_table_reports_start_lines(tmp_path: Path):
    path = tmp_path / "x.csv"
    _write(path, 'a,b\n1,"two\nlines"\n\n3,4\n', bom=True)
    frame = read_table(path, required=["a"])
    assert frame["line"].tolist() == [2, 5]
    assert frame["b"].tolist() == ["two\nlines", "4"]


# ====================================================================== Open LLM v1
_OLLM_BENCHMARKS = [
    "HFV1_ARC",
    "HFV1_HellaSwag",
    "HFV1_MMLU",
    "HFV1_TruthfulQA",
    "HFV1_Winogrande",
    "HFV1_GSM8K",
]


def _openllm_reference(root: Path) -> pd.DataFrame:
    raw = pd.read_csv(root / OPENLLM_FILE)
    raw["_row"] = np.arange(len(raw))
    kept = raw.sort_values(["hf_open_llm_v1", "_row"], ascending=[False, True])
    # Hugging Face repository ids ignore case: two spellings are one model.
    kept = kept.assign(_id=kept["model"].str.lower()).drop_duplicates("_id").set_index("model")
    failed = (kept["HFV1_GSM8K"] == 0) & (kept["HFV1_MMLU"] >= 30)
    kept.loc[failed, "HFV1_GSM8K"] = np.nan
    return kept[_OLLM_BENCHMARKS]


def test_openllm_counts_match_plain_pandas(shared_dataset, shared_study):
    study = shared_study(OPENLLM)
    ref = _openllm_reference(shared_dataset(OPENLLM))
    assert study.n_llms == len(ref) == 1755
    assert list(study.benchmarks.index) == _OLLM_BENCHMARKS
    assert study.n_cells == int(ref.notna().sum().sum()) == 6 * 1755 - 16
    wide = study.to_wide().reindex(index=ref.index)
    np.testing.assert_array_equal(wide.to_numpy(), ref.to_numpy())
    assert study.excluded == ("hf_open_llm_v1",)


def test_openllm_missing_fraction_and_directions(shared_dataset, shared_study):
    study = shared_study(OPENLLM)
    assert study.missing_fraction == pytest.approx(16 / (6 * 1755))
    bench = study.benchmarks
    assert bench.loc["HFV1_TruthfulQA", ["role", "area", "direction"]].tolist() == [
        "safety",
        "truthfulness",
        "higher",
    ]
    assert (bench.loc[bench["role"] == "capability", "direction"] == "higher").all()
    # Duplicated name: the higher-average submission is kept whole.
    wide = study.to_wide()
    assert wide.loc["CohereForAI/c4ai-command-r-plus", "HFV1_GSM8K"] == 70.74
    # The same name in two spellings (lines 708 and 795): the higher average, line 708.
    spelled = [
        k for k in wide.index if k.lower() == "pinkyponky/mistral-7b-instruct-sft-tuned-v0.2"
    ]
    assert spelled == ["pinkyponky/Mistral-7B-Instruct-sft-tuned-v0.2"]
    assert wide.loc[spelled[0], "HFV1_GSM8K"] == 50.34
    # A failed GSM8K run (MMLU 70.37) is missing; a near-chance zero is kept.
    assert np.isnan(wide.loc["chargoddard/MelangeC-70b", "HFV1_GSM8K"])
    ref = _openllm_reference(shared_dataset(OPENLLM))
    assert (wide["HFV1_GSM8K"] == 0).sum() == (ref["HFV1_GSM8K"] == 0).sum() == 133


_OLLM_HEADER = "model,hf_open_llm_v1," + ",".join(_OLLM_BENCHMARKS) + "\n"


def _tiny_openllm(tmp_path: Path, body: str) -> tuple[Path, Path]:
    root = tmp_path / OPENLLM
    path = root / OPENLLM_FILE
    path.parent.mkdir(parents=True)
    path.write_text(_OLLM_HEADER + body, encoding="utf-8")
    return root, path


_TINY_OLLM = (
    "org/a,50,40,60,50,45,70,35\n"  # line 2: model a, lower average first
    "org/b,55,45,65,60,40,72,48\n"
    "org/a,60,50,70,60,50,75,55\n"  # line 4: model a, higher average: kept
    "org/c,40,30,50,65,48,60,0\n"  # failed GSM8K run (MMLU 65): missing
    "org/d,30,25,30,26,50,52,0\n"  # near-chance zero (MMLU 26): kept
    "org/e,45,35,55,55,41,66,30\n"
    "org/e,45,36,56,54,42,65,29\n"  # tie on the average: the earlier line (7) is kept
)


def test_openllm_duplicate_and_gsm8k_rules(tmp_path: Path):
    root, _ = _tiny_openllm(tmp_path, _TINY_OLLM)
    study = read_open_llm_leaderboard_v1(root)
    wide = study.to_wide()
    assert list(wide.index) == ["org/b", "org/a", "org/c", "org/d", "org/e"]
    assert wide.loc["org/a", "HFV1_ARC"] == 50  # from the higher-average row
    assert wide.loc["org/e", "HFV1_ARC"] == 35  # tie: the earlier row
    assert np.isnan(wide.loc["org/c", "HFV1_GSM8K"])
    assert wide.loc["org/d", "HFV1_GSM8K"] == 0
    keep_all = read_open_llm_leaderboard_v1(root, gsm8k_failed_mmlu=None).to_wide()
    assert keep_all.loc["org/c", "HFV1_GSM8K"] == 0
    path = root / OPENLLM_FILE
    with pytest.raises(StudyValidationError, match=r"more than one row \(lines \[2, 4\]\)") as err:
        read_open_llm_leaderboard_v1(root, duplicates="error")
    assert (err.value.source, err.value.line, err.value.llm) == (str(path), 4, "org/a")


def test_openllm_bad_inputs_are_located(tmp_path: Path):
    root, path = _tiny_openllm(tmp_path, _TINY_OLLM.replace("72,48", "72,4 8"))
    with pytest.raises(StudyValidationError, match="'4 8' is not a number") as err:
        read_open_llm_leaderboard_v1(root)
    assert (err.value.source, err.value.line, err.value.column, err.value.llm) == (
        str(path),
        3,
        "HFV1_GSM8K",
        "org/b",
    )
    shutil.rmtree(root)
    root, path = _tiny_openllm(tmp_path, _TINY_OLLM.replace("org/d,30,", "org/d,30,25,"))
    with pytest.raises(StudyValidationError, match="9 fields but the header has 8") as err:
        read_open_llm_leaderboard_v1(root)
    assert (err.value.source, err.value.line) == (str(path), 6)
    shutil.rmtree(root)
    root, path = _tiny_openllm(
        tmp_path, _TINY_OLLM.replace("org/b,55,45,65,60,40", "org/b,55,45,65,160,40")
    )
    with pytest.raises(StudyValidationError, match="outside the declared range") as err:
        read_open_llm_leaderboard_v1(root)
    assert (err.value.line, err.value.column) == (3, "HFV1_MMLU")
    shutil.rmtree(root)
    # Line 2 is a duplicate submission the "best" rule drops: its cells are checked anyway,
    # and so is the average that ranks submissions.
    for bad, column in (("org/a,50,4O,60", "HFV1_ARC"), ("org/a,5O,40,60", "hf_open_llm_v1")):
        root, path = _tiny_openllm(tmp_path, _TINY_OLLM.replace("org/a,50,40,60", bad))
        with pytest.raises(StudyValidationError, match="is not a number") as err:
            read_open_llm_leaderboard_v1(root)
        assert (err.value.source, err.value.line, err.value.column, err.value.llm) == (
            str(path),
            2,
            column,
            "org/a",
        )
        shutil.rmtree(root)


def test_catalog_bounds_hold_for_every_column(shared_dataset):
    """Like the Safetywashing re-check: every stored value lies within its catalog bounds."""
    helm = load_catalog(HELM)
    raw = _helm_raw(shared_dataset(HELM))
    seen = set()
    for table, frame in raw.items():
        for column in frame.columns:
            key = f"{table}: {column}"
            seen.add(key)
            values = pd.to_numeric(frame[column].replace("-", np.nan)).dropna()
            lo, hi = helm.loc[key, ["lower", "upper"]].fillna({"lower": -np.inf, "upper": np.inf})
            assert values.between(lo, hi).all(), key
    assert seen == set(helm.index)
    ollm = load_catalog(OPENLLM)
    frame = pd.read_csv(shared_dataset(OPENLLM) / OPENLLM_FILE).set_index("model")
    assert set(frame.columns) == set(ollm.index)
    for key in frame.columns:
        assert frame[key].between(ollm.loc[key, "lower"], ollm.loc[key, "upper"]).all(), key


# ====================================================================== names in every source
_SPELLINGS = (
    "org/x,50,40,60,50,45,70,35\n"  # line 2
    "org/b,55,45,65,60,40,72,48\n"
    "Org/X,60,50,70,60,50,75,55\n"  # line 4: org/x again, higher average
    "org/c,45,35,55,55,41,66,30\n"
)


def test_openllm_names_differing_in_case_are_one_model(tmp_path: Path):
    root, path = _tiny_openllm(tmp_path, _SPELLINGS)
    wide = read_open_llm_leaderboard_v1(root).to_wide()
    assert list(wide.index) == ["org/b", "Org/X", "org/c"]  # the higher-average row's spelling
    assert wide.loc["Org/X", "HFV1_ARC"] == 50
    with pytest.raises(StudyValidationError) as err:
        read_open_llm_leaderboard_v1(root, duplicates="error")
    assert str(err.value) == (
        f"{path}, line 4, column 'model', LLM 'Org/X': model names 'org/x' (line 2) and "
        "'Org/X' (line 4) differ only in case; pass duplicates='best' to keep the row with "
        "the highest hf_open_llm_v1"
    )


def test_openllm_control_character_in_name(tmp_path: Path):
    root, path = _tiny_openllm(tmp_path, _SPELLINGS.replace("org/b", "org/\x1bb"))
    with pytest.raises(StudyValidationError) as err:
        read_open_llm_leaderboard_v1(root)
    assert str(err.value) == (
        f"{path}, line 3, column 'model': 'org/\\x1bb' contains the control character "
        "U+001B (ESC): names, benchmark keys and metadata must be printable text"
    )


def _rename_epoch_version(root: Path, old: str, new: str) -> None:
    """Rename a version id in every file of a tiny release (registry and scores)."""
    for path in (root / "data").glob("*.csv"):
        text = path.read_bytes().decode("utf-8-sig")
        lines = [
            ",".join(new if cell == old else cell for cell in line.split(","))
            for line in text.split("\n")
        ]
        path.write_text("\n".join(lines), encoding="utf-8")


def test_epoch_versions_differing_in_case(tmp_path: Path):
    # "few" (registry line 9) has too few scores: spelled "V1", it never meets "v1".
    root, catalog = _tiny_epoch(tmp_path / "filtered")
    _rename_epoch_version(root, "few", "V1")
    study = read_epoch_benchmark_stitching(root, catalog=catalog)
    assert list(study.llms.index) == ["v1", "v2", "v3", "v4", "v5"]
    # "v2" (line 3) passes every filter: spelled "V1", the study would hold both.
    root, catalog = _tiny_epoch(tmp_path / "kept")
    _rename_epoch_version(root, "v2", "V1")
    versions = root / "data/model_versions.csv"
    with pytest.raises(StudyValidationError) as err:
        read_epoch_benchmark_stitching(root, catalog=catalog)
    assert str(err.value) == (
        f"{versions}, line 3, column 'id', LLM 'V1': LLM names 'v1' (line 2) and 'V1' "
        "(line 3) differ only in case; spell one LLM the same way on every line, or give "
        "two LLMs names that differ in more than case"
    )


def test_epoch_control_character_in_version(tmp_path: Path):
    root, catalog = _tiny_epoch(tmp_path)
    path = root / "data/external_benchmark_gsm8k.csv"
    text = path.read_bytes().decode("utf-8-sig")
    path.write_text(text.replace("45%,v4", "45%,v\x004"), encoding="utf-8")
    with pytest.raises(StudyValidationError) as err:
        read_epoch_benchmark_stitching(root, catalog=catalog)
    assert str(err.value) == (
        f"{path}, line 5, column 'Model version': 'v\\x004' contains the control character "
        "U+0000 (NUL): names, benchmark keys and metadata must be printable text"
    )


def test_helm_models_differing_in_case(helm_copy: Path):
    path = helm_copy / "benchbench/data/helm/accuracy.tsv"
    first = _edit_tsv(path, "Llama 2 (13B)", None, "LLAMA 2 (7B)")
    line = _edit_tsv(path, "Llama 2 (7B)", None, "Llama 2 (7B)")
    assert first < line
    with pytest.raises(StudyValidationError) as err:
        read_helm_benchbench(helm_copy)
    assert str(err.value) == (
        f"{path}, line {line}, column 'Model/adapter', LLM 'Llama 2 (7B)': LLM names "
        f"'LLAMA 2 (7B)' (line {first}) and 'Llama 2 (7B)' (line {line}) differ only in case; "
        "spell one LLM the same way on every line, or give two LLMs names that differ in "
        "more than case"
    )
