"""Bad input: every class of malformed score file fails with a located StudyValidationError.

Each case checks the exception type, the message (file, problem) and the ``line``,
``column`` and ``llm`` attributes. Synthetic files use the tiny catalog of ``conftest.py``;
the last group corrupts a copy of the real Safetywashing release in ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safetywash.data.errors import CatalogError, StudyValidationError
from safetywash.data.readers import read_long_csv, read_wide_csv
from safetywash.data.sources.safetywashing import read_safetywashing
from safetywash.data.study import BenchmarkStudy
from safetywash.data.table import read_table

SKIP = object()  # "do not check this attribute"

WIDE_HEADER = "llm,a,b,s,n"
# Lines 2..5 of the valid tiny wide file (see conftest.TINY_WIDE_CSV).
WIDE_ROWS = ("m1,0.1,0.2,3,10", "m2,0.3,,4,10", "m3,0.5,0.6,1.5,10", "m4,0.2,0.9,-2,10")

LONG_HEADER = "llm,benchmark,value"
# Lines 2..16 of the valid tiny long file (see conftest.TINY_LONG_CSV).
LONG_ROWS = (
    "m1,a,0.1",  # 2
    "m1,b,0.2",  # 3
    "m1,s,3",  # 4
    "m1,n,10",  # 5
    "m2,a,0.3",  # 6
    "m2,s,4",  # 7
    "m2,n,10",  # 8
    "m3,a,0.5",  # 9
    "m3,b,0.6",  # 10
    "m3,s,1.5",  # 11
    "m3,n,10",  # 12
    "m4,a,0.2",  # 13
    "m4,b,0.9",  # 14
    "m4,s,-2",  # 15
    "m4,n,10",  # 16
)


def _text(header: str, rows: tuple[str, ...] | list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


def _wide(*, header: str = WIDE_HEADER, **replace: str) -> str:
    """The tiny wide file with rows replaced, e.g. ``_wide(m3="m3,0.5,abc,1.5,10")``."""
    rows = [replace.get(row.split(",")[0], row) for row in WIDE_ROWS]
    return _text(header, rows)


def _long(*, header: str = LONG_HEADER, drop=(), replace=None, append=()) -> str:
    """The tiny long file with lines dropped/replaced (by file line number) or appended."""
    replace = replace or {}
    rows = [
        replace.get(line, row)
        for line, row in enumerate(LONG_ROWS, start=2)
        if line not in set(drop)
    ]
    return _text(header, [*rows, *append])


def _check(err: StudyValidationError, path: Path | None, problems, line, column, llm) -> None:
    message = str(err)
    if path is not None:
        assert str(path) in message, message
        assert err.source == str(path)
    for fragment in problems:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for attr, expected in (("line", line), ("column", column), ("llm", llm)):
        if expected is SKIP:
            continue
        assert getattr(err, attr) == expected, f"{attr}: {getattr(err, attr)!r} != {expected!r}"
        if expected is not None:
            # The location is also spelled out in the message.
            shown = f"line {expected}" if attr == "line" else repr(expected)
            assert shown in message, f"{shown!r} not in {message!r}"


# file text, message fragments, line, column, llm
WIDE_CASES = [
    pytest.param(
        _wide(header="model,a,b,s,n"),
        ["missing required", "'llm'"],
        1,
        None,
        None,
        id="missing_llm_column",
    ),
    pytest.param(
        _wide(m3="m3,0.5,abc,1.5,10"), ["'abc'", "not a number"], 4, "b", "m3", id="non_numeric"
    ),
    pytest.param(
        _wide(m2="m2,30%,,4,10"), ["'30%'", "not a number"], 3, "a", "m2", id="non_numeric_percent"
    ),
    pytest.param(
        _wide(m3="m3,1.3,0.6,1.5,10"),
        ["1.3", "outside", "[0, 1]"],
        4,
        "a",
        "m3",
        id="above_upper_bound",
    ),
    pytest.param(
        _wide(m4="m4,0.2,-0.2,-2,10"),
        ["-0.2", "outside", "[0, 1]"],
        5,
        "b",
        "m4",
        id="below_lower_bound",
    ),
    pytest.param(
        _wide(m3="m1,0.5,0.6,1.5,10"),
        ["more than one row", "[2, 4]"],
        4,
        "llm",
        "m1",
        id="duplicate_llm_row",
    ),
    pytest.param(
        _wide(header="llm,a,b,a,n"), ["appears twice"], 1, "a", None, id="duplicate_header"
    ),
    pytest.param(
        _wide(header="llm,a,b, s,s"),
        ["appears twice"],
        1,
        "s",
        None,
        id="duplicate_header_after_strip",
    ),
    pytest.param(
        _wide(m4="m4,0.2,,-2,10"),
        ["only 2 observed", "at least 3"],
        None,
        "b",
        None,
        id="fewer_than_3_llms",
    ),
    pytest.param(
        _wide(header="llm,a,b,zz,n"),
        ["no entry in the benchmark catalog", "'zz'"],
        1,
        "zz",
        None,
        id="no_catalog_entry",
    ),
    pytest.param(_wide(m2="m2,,,,"), ["no scores"], None, None, "m2", id="llm_all_cells_empty"),
    pytest.param(
        _wide(m2="m2,,,,10"), ["no scores"], None, None, "m2", id="llm_only_excluded_scores"
    ),
    pytest.param(_wide(m2=",0.3,,4,10"), ["empty LLM name"], 3, "llm", None, id="empty_llm_name"),
    pytest.param("", ["empty"], None, None, None, id="empty_file"),
    pytest.param("  \n\n", ["empty"], None, None, None, id="whitespace_only_file"),
    pytest.param(
        WIDE_HEADER + "\n", ["header but no data rows"], None, None, None, id="header_only"
    ),
    pytest.param(
        WIDE_HEADER, ["header but no data rows"], None, None, None, id="header_only_no_newline"
    ),
    pytest.param(_wide(m3="m3,0.5,0.6,inf,10"), ["infinite"], 4, "s", "m3", id="inf"),
    pytest.param(_wide(m3="m3,0.5,0.6,-inf,10"), ["infinite"], 4, "s", "m3", id="minus_inf"),
    pytest.param(_wide(m1="m1,0.1,0.2,1e999,10"), ["infinite"], 2, "s", "m1", id="overflow_to_inf"),
    pytest.param(
        _wide(m1="m1,0.1,0.6,3,10", m4="m4,0.2,0.6,-2,10"),
        ["constant", "0.6"],
        None,
        "b",
        None,
        id="constant_column",
    ),
]

LONG_CASES = [
    pytest.param(
        _long(header="llm,bench,value"),
        ["missing required", "'benchmark'"],
        1,
        None,
        None,
        id="missing_benchmark_column",
    ),
    pytest.param(
        _long(header="llm,benchmark,score"),
        ["missing required", "'value'"],
        1,
        None,
        None,
        id="missing_value_column",
    ),
    pytest.param(
        _long(append=["m2,a,0.35"]),
        ["duplicate (llm, benchmark)", "[6, 17]"],
        6,
        "a",
        "m2",
        id="duplicate_pair",
    ),
    pytest.param(
        _long(append=["m4,s,-2"]),
        ["duplicate (llm, benchmark)", "[15, 17]"],
        15,
        "s",
        "m4",
        id="duplicate_pair_same_value",
    ),
    pytest.param(
        _long(replace={11: "m3,s,high"}),
        ["'high'", "not a number"],
        11,
        "s",
        "m3",
        id="non_numeric",
    ),
    pytest.param(
        _long(replace={9: "m3,a,1.3"}),
        ["1.3", "outside", "[0, 1]"],
        9,
        "a",
        "m3",
        id="above_upper_bound",
    ),
    pytest.param(_long(replace={7: "m2,s,"}), ["empty score"], 7, "value", "m2", id="empty_value"),
    pytest.param(_long(replace={15: "m4,s,inf"}), ["infinite"], 15, "s", "m4", id="inf"),
    pytest.param(_long(replace={4: "m1,s,-inf"}), ["infinite"], 4, "s", "m1", id="minus_inf"),
    pytest.param(
        _long(drop=[10, 14]),
        ["only 1 observed", "at least 3"],
        None,
        "b",
        None,
        id="fewer_than_3_llms",
    ),
    # The line is checked separately (see test_long_unknown_benchmark_names_its_row).
    pytest.param(
        _long(append=["m2,zz,0.5"]),
        ["no entry in the benchmark catalog", "'zz'"],
        SKIP,
        "zz",
        SKIP,
        id="no_catalog_entry",
    ),
    pytest.param(
        _long(replace={4: "m1,s,7", 7: "m2,s,7", 11: "m3,s,7", 15: "m4,s,7"}),
        ["constant", "7"],
        None,
        "s",
        None,
        id="constant_column",
    ),
    pytest.param("", ["empty"], None, None, None, id="empty_file"),
    pytest.param(
        LONG_HEADER + "\n", ["header but no data rows"], None, None, None, id="header_only"
    ),
]


@pytest.mark.parametrize(
    ("text", "problems", "line", "column", "llm"),
    WIDE_CASES,
)
def test_wide_bad_input(write_csv, tiny_catalog_csv, text, problems, line, column, llm):
    path = write_csv("scores.csv", text)
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv)
    _check(info.value, path, problems, line, column, llm)


@pytest.mark.parametrize(
    ("text", "problems", "line", "column", "llm"),
    LONG_CASES,
)
def test_long_bad_input(write_csv, tiny_catalog_csv, text, problems, line, column, llm):
    path = write_csv("scores_long.csv", text)
    with pytest.raises(StudyValidationError) as info:
        read_long_csv(path, tiny_catalog_csv)
    _check(info.value, path, problems, line, column, llm)


def test_missing_file_is_named(tmp_path, tiny_catalog_csv):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(StudyValidationError, match="file not found") as info:
        read_wide_csv(path, tiny_catalog_csv)
    assert str(path) in str(info.value)


def test_long_metadata_clash_names_llm_and_column(write_csv, tiny_catalog_csv):
    text = _text(
        "llm,benchmark,value,population",
        [f"{row},base" for row in LONG_ROWS[:-1]] + ["m4,n,10,chat"],
    )
    # m4's excluded row is dropped before the clash check, so this one is valid ...
    read_long_csv(write_csv("ok.csv", text), tiny_catalog_csv)
    text = text.replace("m4,b,0.9,base", "m4,b,0.9,chat")
    path = write_csv("clash.csv", text)
    with pytest.raises(StudyValidationError, match="differs between rows") as info:
        read_long_csv(path, tiny_catalog_csv)
    _check(info.value, path, [], SKIP, "population", "m4")


# ---------------------------------------------------------------------- directions
@pytest.mark.parametrize("direction", ["", "sideways", "Higher"])
def test_catalog_with_unknown_direction(write_csv, tiny_wide_text, tiny_catalog, direction):
    catalog = tiny_catalog.copy()
    catalog.loc[catalog["key"] == "s", "direction"] = direction
    catalog_path = write_csv("bad_catalog.csv", catalog.to_csv(index=False))
    scores = write_csv("scores.csv", tiny_wide_text)
    with pytest.raises(CatalogError) as info:
        read_wide_csv(scores, catalog_path)
    # Row of benchmark "s" is the third data row of the catalog: line 4.
    problems = ["unknown direction", repr(direction), "'s'"]
    _check(info.value, catalog_path, problems, 4, "direction", None)

    with pytest.raises(CatalogError) as info:
        read_wide_csv(scores, catalog)  # the same catalog as a DataFrame
    _check(info.value, None, ["unknown direction", "'s'"], 4, "direction", None)
    assert info.value.source == "metadata"


def test_excluded_rows_need_no_direction(write_csv, tiny_wide_text, tiny_catalog):
    catalog = tiny_catalog.copy()
    catalog.loc[catalog["key"] == "n", "direction"] = ""
    study = read_wide_csv(write_csv("scores.csv", tiny_wide_text), catalog)
    assert study.excluded == ("n",)


NO_META_WIDE = "llm,a,b,s\nm1,0.1,0.2,3\nm2,0.3,,4\nm3,0.5,0.6,1.5\nm4,0.2,0.9,-2\n"
NO_META_LONG = _text(LONG_HEADER, [r for r in LONG_ROWS if ",n," not in r])


@pytest.mark.parametrize(
    ("reader", "text"),
    [(read_wide_csv, NO_META_WIDE), (read_long_csv, NO_META_LONG)],
    ids=["wide", "long"],
)
def test_undeclared_columns_are_refused_not_guessed(write_csv, reader, text):
    path = write_csv("scores.csv", text)
    with pytest.raises(StudyValidationError) as info:
        reader(path)
    # Every undeclared column is listed; the first is located (the header or its first row).
    line = 1 if reader is read_wide_csv else 2
    llm = None if reader is read_wide_csv else "m1"
    _check(info.value, path, ["no entry", "['a', 'b', 's']"], line, "a", llm)
    # Declaring two of three still names the third, never makes it a safety benchmark.
    with pytest.raises(StudyValidationError) as info:
        reader(path, capability=["a", "b"])
    _check(info.value, path, ["undeclared column: ['s']"], SKIP, "s", SKIP)
    # The same file is fine once every column is declared.
    study = reader(path, capability=["a", "b"], safety={"s": "alignment"}, lower_is_better=["s"])
    assert dict(study.benchmarks["role"]) == {"a": "capability", "b": "capability", "s": "safety"}
    assert dict(study.benchmarks["direction"]) == {"a": "higher", "b": "higher", "s": "lower"}
    assert study.benchmarks.loc["s", "area"] == "alignment"
    assert study.n_cells == 11


def test_lower_is_better_needs_a_declared_column(write_csv):
    path = write_csv("scores.csv", NO_META_WIDE)
    with pytest.raises(StudyValidationError, match="declared lower-is-better but not") as info:
        read_wide_csv(path, capability=["a", "b"], lower_is_better=["s"])
    assert info.value.column == "s"


# ---------------------------------------------------------------------- acceptance
@pytest.mark.parametrize(
    ("bom", "crlf"), [(True, True), (True, False), (False, True)], ids=["bom+crlf", "bom", "crlf"]
)
def test_bom_and_crlf_read_like_plain(
    write_csv, tiny_catalog_csv, tiny_wide_text, tiny_long_text, bom, crlf
):
    plain_wide = read_wide_csv(write_csv("plain.csv", tiny_wide_text), tiny_catalog_csv)
    for reader, text in ((read_wide_csv, tiny_wide_text), (read_long_csv, tiny_long_text)):
        plain = reader(write_csv("plain.csv", text), tiny_catalog_csv)
        odd_path = write_csv("odd.csv", text, bom=bom, crlf=crlf)
        assert odd_path.read_bytes() != text.encode()
        odd = reader(odd_path, tiny_catalog_csv)
        assert odd.sha256() == plain.sha256()
        pd.testing.assert_frame_equal(odd.to_wide(), plain.to_wide())
        assert list(odd.llms.index) == ["m1", "m2", "m3", "m4"]
        assert list(odd.benchmarks.index) == ["a", "b", "s"]
        assert odd.excluded == ("n",)
    # A BOM / CRLF on the catalog is accepted too.
    catalog = write_csv("catalog_odd.csv", tiny_catalog_csv.read_text(), bom=bom, crlf=crlf)
    again = read_wide_csv(write_csv("plain.csv", tiny_wide_text), catalog)
    assert again.sha256() == plain_wide.sha256()


def test_bom_and_crlf_error_still_located(write_csv, tiny_catalog_csv):
    path = write_csv("odd.csv", _wide(m3="m3,0.5,abc,1.5,10"), bom=True, crlf=True)
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv)
    _check(info.value, path, ["'abc'"], 4, "b", "m3")


@pytest.mark.parametrize(
    ("token", "na_values"),
    [
        ("-", None),
        ("NA", None),
        ("na", None),
        ("NaN", None),
        ("nan", None),
        (" - ", None),
        ("n/a", ("n/a",)),
        ("missing", ("", "MISSING")),
    ],
)
def test_na_values_count_as_missing(write_csv, tiny_catalog_csv, tiny_wide_text, token, na_values):
    reference = read_wide_csv(write_csv("ref.csv", tiny_wide_text), tiny_catalog_csv)
    assert np.isnan(reference.to_wide().loc["m2", "b"])
    kwargs = {} if na_values is None else {"na_values": na_values}
    text = _wide(m2=f"m2,0.3,{token},4,10")
    study = read_wide_csv(write_csv("na.csv", text), tiny_catalog_csv, **kwargs)
    assert study.sha256() == reference.sha256()
    assert study.n_cells == 11


def test_na_token_outside_na_values_is_an_error(write_csv, tiny_catalog_csv):
    path = write_csv("na.csv", _wide(m2="m2,0.3,-,4,10"))
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv, na_values=("",))
    _check(info.value, path, ["'-'", "not a number"], 3, "b", "m2")


# ---------------------------------------------------------------------- real layout
def _llm_at(path: Path, row: int) -> str:
    return pd.read_csv(path, usecols=["model"])["model"].iloc[row]


@pytest.mark.parametrize(
    ("population", "value", "problems"),
    [
        ("chat", "abc", ["'abc'", "not a number"]),
        ("chat", "1.7", ["1.7", "outside the declared range", "[0, 1]"]),
        ("chat", "inf", ["infinite"]),
        ("base", "1.7", ["1.7", "outside the declared range"]),
    ],
)
def test_real_layout_corrupt_cell(real_copy, set_cell, population, value, problems):
    path = real_copy / f"data/benchmarks_{population}_models.csv"
    llm = _llm_at(path, 6)
    line = set_cell(path, llm, "mmlu", value)
    assert line == 8  # 7th data row; header = line 1
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, population)
    _check(info.value, path, problems, line, "mmlu", llm)


def _all_population_case(value: str, *, located: bool):
    # Both kinds of error must name the one file that holds the cell.
    return pytest.param(value, id=value)


@pytest.mark.parametrize(
    "value",
    [
        _all_population_case("abc", located=True),
        _all_population_case("1.7", located=False),
    ],
)
def test_real_layout_corrupt_cell_all_population(real_copy, set_cell, value):
    chat = real_copy / "data/benchmarks_chat_models.csv"
    llm = _llm_at(chat, 3)
    line = set_cell(chat, llm, "mmlu", value)
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "all")
    assert (info.value.line, info.value.column, info.value.llm) == (line, "mmlu", llm)
    assert "benchmarks_base_models.csv" not in str(info.value)
    _check(info.value, chat, [], line, "mmlu", llm)


def test_real_layout_missing_llm_column(real_copy):
    path = real_copy / "data/benchmarks_chat_models.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns="type")
    frame.to_csv(path, index=False)
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "chat")
    _check(info.value, path, ["missing required", "'type'"], 1, None, None)


def test_real_layout_duplicate_llm_row(real_copy):
    path = real_copy / "data/benchmarks_base_models.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.append(lines[2])  # the LLM of line 3 again, as line len(lines) + 1
    path.write_text("".join(lines), encoding="utf-8")
    llm = lines[2].split(",")[0]
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "base")
    _check(info.value, path, ["more than one row"], len(lines), "model", llm)


def test_real_layout_unknown_column(real_copy):
    path = real_copy / "data/benchmarks_chat_models.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.insert(5, "new_bench", "0.5")
    frame.to_csv(path, index=False)
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "chat")
    _check(info.value, path, ["no entry in the benchmark catalog"], 1, "new_bench", None)


def test_real_layout_missing_file(real_copy):
    (real_copy / "data/benchmarks_chat_models.csv").unlink()
    with pytest.raises(StudyValidationError, match="file not found") as info:
        read_safetywashing(real_copy, "chat")
    assert "benchmarks_chat_models.csv" in str(info.value)


def test_real_layout_unknown_population(safetywashing_root):
    with pytest.raises(StudyValidationError, match="unknown population 'instruct'"):
        read_safetywashing(safetywashing_root, "instruct")


# ---------------------------------------------------------------------- file-shape problems


def test_long_unknown_benchmark_names_its_row(write_csv, tiny_catalog_csv):
    path = write_csv("long.csv", _long(append=["m2,zz,0.5"]))
    with pytest.raises(StudyValidationError) as info:
        read_long_csv(path, tiny_catalog_csv)
    assert info.value.line == 17


def test_line_numbers_after_blank_line(write_csv, tiny_catalog_csv):
    text = _text(
        WIDE_HEADER, [WIDE_ROWS[0], "", *WIDE_ROWS[1:2], "m3,0.5,abc,1.5,10", WIDE_ROWS[3]]
    )
    path = write_csv("blank.csv", text)
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv)
    assert info.value.line == 5  # header, m1, blank, m2, m3


def test_row_with_extra_field(write_csv, tiny_catalog_csv):
    path = write_csv("ragged.csv", _wide(m2="m2,0.3,0.4,4,10,99"))
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv)
    assert info.value.line == 3


def test_every_row_with_extra_field(write_csv):
    text = "llm,a,b\nm1,1,2,9\nm2,3,1,8\nm3,5,6,7\nm4,2,9,6\n"
    path = write_csv("shifted.csv", text)
    # What happens instead: the study is built with LLM ids '1', '3', '5', '2' (column a).
    with pytest.raises(StudyValidationError):
        read_wide_csv(path, capability=["a", "b"])


def test_benchmark_with_no_observed_llm(write_csv, tiny_catalog_csv):
    text = _wide(m1="m1,0.1,,3,10", m2="m2,0.3,,4,10", m3="m3,0.5,,1.5,10", m4="m4,0.2,,-2,10")
    path = write_csv("empty_column.csv", text)
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv)
    assert info.value.column == "b"


def test_bad_flop_in_real_layout_names_file(real_copy: Path, set_cell: Callable):
    path = real_copy / "data/benchmarks_chat_models.csv"
    llm = _llm_at(path, 2)
    line = set_cell(path, llm, "FLOP", "abc")
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "chat")
    assert (info.value.column, info.value.llm) == ("FLOP", llm)
    assert str(path) in str(info.value)
    assert info.value.line == line


def test_bad_flop_in_wide_file_names_file(write_csv, tiny_catalog_csv):
    text = _text("llm,flop,a,b,s", ["m1,1e22,0.1,0.2,3", "m2,abc,0.3,0.1,4", "m3,1,0.5,0.6,1"])
    path = write_csv("flop.csv", text)
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv)
    assert (info.value.column, info.value.llm) == ("flop", "m2")
    assert str(path) in str(info.value)
    assert info.value.line == 3


# ====================================================================== names and text
# Each test below checks the whole message: the location prefix (file, line, column, LLM)
# and the problem, as the command layer prints it after "error: ".
CASE_ADVICE = (
    "spell one LLM the same way on every line, or give two LLMs names that differ in more than case"
)
PRINTABLE = "names, benchmark keys and metadata must be printable text"
REENCODE = "re-save the file as UTF-8 or pass its encoding (e.g. encoding='latin-1' or 'cp1252')"


def _message(err: StudyValidationError, source, line=None, column=None, llm=None) -> str:
    """The expected message, with the location attributes checked on the way."""
    assert (err.source, err.line, err.column, err.llm) == (str(source), line, column, llm)
    where = [str(source)]
    where += [f"line {line}"] if line is not None else []
    where += [f"column {column!r}"] if column is not None else []
    where += [f"LLM {llm!r}"] if llm is not None else []
    return ", ".join(where) + ": " + err.problem


# ---------------------------------------------------------------------- declared populations
POP_HEADER = "llm,population,a,b,s,n"
POP_ROWS = (
    "m1,base,0.1,0.2,3,10",
    "m2,chat,0.3,,4,10",
    "m3,chat,0.5,0.6,1.5,10",
    "m4,base,0.2,0.9,-2,10",
)
DECLARED = "is not one of the declared populations ['base', 'chat']"


def _pop_wide(**replace: str) -> str:
    return _text(POP_HEADER, [replace.get(r.split(",")[0], r) for r in POP_ROWS])


def test_population_typo_is_a_population_of_one_unless_declared(write_csv, tiny_catalog_csv):
    path = write_csv("pops.csv", _pop_wide(m3="m3,caht,0.5,0.6,1.5,10"))
    # Undeclared: today's behaviour, the typo starts a population of one LLM.
    study = read_wide_csv(path, tiny_catalog_csv)
    assert study.llms["population"].to_dict() == {
        "m1": "base",
        "m2": "chat",
        "m3": "caht",
        "m4": "base",
    }
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv, populations=["base", "chat"])
    assert str(info.value) == _message(info.value, path, 4, "population", "m3")
    assert str(info.value) == (
        f"{path}, line 4, column 'population', LLM 'm3': population 'caht' {DECLARED}; "
        "close matches: ['chat']"
    )


def test_declared_populations_accept_the_declared_values(write_csv, tiny_catalog_csv):
    path = write_csv("pops.csv", _pop_wide())
    for declared in (["base", "chat"], ("chat", "base", "other"), {"base", "chat"}):
        study = read_wide_csv(path, tiny_catalog_csv, populations=declared)
        assert study.llms["population"].tolist() == ["base", "chat", "chat", "base"]


def test_declared_populations_in_a_long_file(write_csv, tiny_catalog_csv):
    pops = {"m1": "base", "m2": "chat", "m3": "chat", "m4": "base"}
    rows = [f"{row},{pops[row.split(',')[0]]}" for row in LONG_ROWS]
    rows[10 - 2] = "m3,b,0.6,Chat"  # line 10: m3's second row
    path = write_csv("pops_long.csv", _text("llm,benchmark,value,population", rows))
    with pytest.raises(StudyValidationError) as info:
        read_long_csv(path, tiny_catalog_csv, populations=["base", "chat"])
    assert str(info.value) == (
        f"{path}, line 10, column 'population', LLM 'm3': population 'Chat' {DECLARED}; "
        "close matches: ['chat']"
    )
    assert str(info.value) == _message(info.value, path, 10, "population", "m3")


def test_declared_populations_empty_value_and_missing_column(write_csv, tiny_catalog_csv):
    path = write_csv("pops.csv", _pop_wide(m2="m2,,0.3,,4,10"))
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv, populations=["base", "chat"])
    assert str(info.value) == (
        f"{path}, line 3, column 'population', LLM 'm2': empty population {DECLARED}"
    )
    plain = write_csv("plain.csv", _wide())
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(plain, tiny_catalog_csv, populations=["base"])
    assert str(info.value) == (
        f"{plain}, line 1: populations ['base'] were declared but the file has no "
        "'population' column"
    )


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ("base", "populations must be a list of names, not the single string 'base'"),
        ([], "populations was given but lists no name"),
        (["base", " "], "populations lists an empty name"),
        (["ba\x00se"], "populations: 'ba\\x00se' contains the control character U+0000 (NUL)"),
    ],
)
def test_bad_populations_argument(write_csv, tiny_catalog_csv, declared, problem):
    path = write_csv("pops.csv", _pop_wide())
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv, populations=declared)
    assert str(info.value).startswith(problem)


def test_real_layout_population_typo(real_copy, set_cell):
    path = real_copy / "data/benchmarks_chat_models.csv"
    llm = _llm_at(path, 4)
    line = set_cell(path, llm, "type", "caht")
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "all")
    assert str(info.value) == (
        f"{path}, line {line}, column 'type', LLM {llm!r}: population 'caht' {DECLARED}; "
        "close matches: ['chat']"
    )
    set_cell(path, llm, "type", "base")
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "chat")
    assert str(info.value) == (
        f"{path}, line {line}, column 'type', LLM {llm!r}: population 'base' in the matrix "
        "of 'chat' LLMs (data/benchmarks_chat_models.csv): each matrix holds one population"
    )


def test_unknown_population_selection_has_close_matches(write_csv, tiny_catalog_csv):
    study = read_wide_csv(write_csv("pops.csv", _pop_wide()), tiny_catalog_csv)
    with pytest.raises(StudyValidationError) as info:
        study.select_population("caht")
    assert str(info.value) == (
        "pops: unknown population 'caht'; this study has ['base', 'chat', 'all']; "
        "close matches: ['chat']"
    )


# ---------------------------------------------------------------------- names that differ in case
def test_wide_llm_names_differing_in_case(write_csv, tiny_catalog_csv):
    text = _wide(m1="Llama-2-7b-chat-hf,0.1,0.2,3,10", m3="llama-2-7b-chat-hf,0.5,0.6,1.5,10")
    path = write_csv("case.csv", text)
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv)
    assert str(info.value) == (
        f"{path}, line 4, column 'llm', LLM 'llama-2-7b-chat-hf': LLM names "
        "'Llama-2-7b-chat-hf' (line 2) and 'llama-2-7b-chat-hf' (line 4) differ only in case; "
        + CASE_ADVICE
    )
    assert str(info.value) == _message(info.value, path, 4, "llm", "llama-2-7b-chat-hf")


def test_long_llm_names_differing_in_case(write_csv, tiny_catalog_csv):
    path = write_csv("case_long.csv", _long(replace={7: "M2,s,4"}))
    with pytest.raises(StudyValidationError) as info:
        read_long_csv(path, tiny_catalog_csv)
    assert str(info.value) == (
        f"{path}, line 7, column 'llm', LLM 'M2': LLM names 'm2' (line 6) and 'M2' (line 7) "
        "differ only in case; " + CASE_ADVICE
    )


def test_real_layout_llm_names_differing_in_case(real_copy, set_cell):
    path = real_copy / "data/benchmarks_chat_models.csv"
    first, other = _llm_at(path, 1), _llm_at(path, 4)
    line = set_cell(path, other, "model", first.upper())
    assert line == 6
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "chat")
    assert str(info.value) == (
        f"{path}, line 6, column 'model', LLM {first.upper()!r}: LLM names {first!r} (line 3) "
        f"and {first.upper()!r} (line 6) differ only in case; " + CASE_ADVICE
    )


@pytest.mark.parametrize("spelling", ["upper", "same"])
def test_real_layout_llm_in_both_matrices(real_copy, set_cell, spelling):
    base = real_copy / "data/benchmarks_base_models.csv"
    chat = real_copy / "data/benchmarks_chat_models.csv"
    name = _llm_at(base, 1)
    new = name.upper() if spelling == "upper" else name
    line = set_cell(chat, _llm_at(chat, 2), "model", new)
    assert read_safetywashing(real_copy, "chat").llms.index[2] == new  # one matrix: fine
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "all")
    if spelling == "upper":
        problem = (
            f"models {name!r} ({base} line 3) and {new!r} ({chat} line {line}) differ only in "
            "case; " + CASE_ADVICE
        )
    else:
        problem = f"model {name!r} appears in two files ({base} line 3, {chat} line {line})"
    assert str(info.value) == f"{chat}, line {line}, column 'model', LLM {new!r}: {problem}"


def test_study_refuses_llm_names_differing_in_case(tiny_catalog):
    scores = pd.DataFrame(
        {"llm": ["a", "A", "b"] * 2, "benchmark": ["a"] * 3 + ["b"] * 3, "value": np.arange(6) / 9}
    )
    with pytest.raises(StudyValidationError) as info:
        BenchmarkStudy.from_frames(scores, None, tiny_catalog, source="frames")
    assert str(info.value) == (
        "frames, LLM 'A': LLM names 'a' and 'A' differ only in case; spell one LLM the same "
        "way everywhere, or give two LLMs names that differ in more than case"
    )


# ---------------------------------------------------------------------- control characters
def _control(text: str, code: str) -> str:
    return f"{text!r} contains the control character {code}: {PRINTABLE}"


_META_HEADER = "llm,display_name,family,a,b,s"
_META_ROWS = ["m1,One,F,0.1,0.2,3", "m2,Two,F,0.3,0.1,4", "m3,Three,G,0.5,0.6,1"]


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        pytest.param(
            _wide(m2="m\x002,0.3,,4,10"), 3, "llm", _control("m\x002", "U+0000 (NUL)"), id="nul"
        ),
        pytest.param(
            _wide(m2="m\t2,0.3,,4,10"), 3, "llm", _control("m\t2", "U+0009 (tab)"), id="tab"
        ),
        pytest.param(
            _wide(m4="m4\t,0.2,0.9,-2,10"),
            5,
            "llm",
            _control("m4\t", "U+0009 (tab)"),
            id="tab_at_the_edge",
        ),
        pytest.param(
            _wide(m3='"m3\n",0.5,0.6,1.5,10'),
            4,
            "llm",
            _control("m3\n", "U+000A (line feed)"),
            id="quoted_line_break",
        ),
        pytest.param(
            _wide(header="llm,a,b\x1b,s,n"), 1, "b\x1b", _control("b\x1b", "U+001B (ESC)"), id="key"
        ),
        pytest.param(
            _text(_META_HEADER, [_META_ROWS[0], "m2,T\x7fwo,F,0.3,0.1,4", _META_ROWS[2]]),
            3,
            "display_name",
            _control("T\x7fwo", "U+007F"),
            id="del_in_display_name",
        ),
        pytest.param(
            _text(_META_HEADER, [*_META_ROWS[:2], "m3,Three,G\x85,0.5,0.6,1"]),
            4,
            "family",
            _control("G\x85", "U+0085"),
            id="c1_in_family",
        ),
    ],
)
def test_control_characters_in_wide_names(write_csv, tiny_catalog_csv, text, line, column, problem):
    path = write_csv("ctrl.csv", text)
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv)
    assert str(info.value) == f"{path}, line {line}, column {column!r}: {problem}"
    assert str(info.value) == _message(info.value, path, line, column)


@pytest.mark.parametrize(
    ("replace", "line", "column", "problem"),
    [
        ({11: "m3,s\x07,1.5"}, 11, "benchmark", _control("s\x07", "U+0007")),
        ({13: "m4\x00,a,0.2"}, 13, "llm", _control("m4\x00", "U+0000 (NUL)")),
    ],
)
def test_control_characters_in_long_names(
    write_csv, tiny_catalog_csv, replace, line, column, problem
):
    path = write_csv("ctrl_long.csv", _long(replace=replace))
    with pytest.raises(StudyValidationError) as info:
        read_long_csv(path, tiny_catalog_csv)
    assert str(info.value) == f"{path}, line {line}, column {column!r}: {problem}"


def test_control_characters_in_catalog(write_csv, tiny_wide_text, tiny_catalog):
    scores = write_csv("scores.csv", tiny_wide_text)
    catalog = tiny_catalog.copy()
    catalog.loc[catalog["key"] == "s", "note"] = "tabs\tand\nline breaks are fine in a note"
    assert read_wide_csv(scores, write_csv("ok.csv", catalog.to_csv(index=False))).n_llms == 4
    cases = (("note", "a\x00note", "U+0000 (NUL)"), ("area", "ali\tgnment", "U+0009 (tab)"))
    for column, value, code in cases:
        bad = catalog.copy()
        bad.loc[bad["key"] == "s", column] = value
        path = write_csv("bad_catalog.csv", bad.to_csv(index=False))
        with pytest.raises(CatalogError) as info:
            read_wide_csv(scores, path)
        assert str(info.value) == f"{path}, line 4, column {column!r}: {_control(value, code)}"
        with pytest.raises(CatalogError) as info:
            read_wide_csv(scores, bad)  # the same catalog as a table
        assert str(info.value) == f"metadata, line 4, column {column!r}: {_control(value, code)}"


def test_real_layout_control_character(real_copy, set_cell):
    path = real_copy / "data/benchmarks_base_models.csv"
    llm = _llm_at(path, 3)
    line = set_cell(path, llm, "name", "Llama\x002")
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "base")
    assert str(info.value) == (
        f"{path}, line {line}, column 'name': {_control('Llama\x002', 'U+0000 (NUL)')}"
    )


def test_study_refuses_control_characters(tiny_catalog):
    scores = pd.DataFrame(
        {"llm": ["x", "y", "z\x01"], "benchmark": "a", "value": [0.1, 0.2, 0.3], "line": [2, 3, 4]}
    )
    with pytest.raises(StudyValidationError) as info:
        BenchmarkStudy.from_frames(scores, None, tiny_catalog, source="frames")
    assert str(info.value) == f"frames, line 4, column 'llm': {_control('z\x01', 'U+0001')}"


def test_printable_unicode_names_are_accepted(write_csv, tiny_catalog_csv):
    path = write_csv("unicode.csv", _wide(m1="café-7b,0.1,0.2,3,10", m2="模型-2,0.3,,4,10"))
    study = read_wide_csv(path, tiny_catalog_csv)
    assert list(study.llms.index) == ["café-7b", "模型-2", "m3", "m4"]


# ---------------------------------------------------------------------- encodings
def _bytes(text: str, **swap: bytes) -> bytes:
    """``text`` as UTF-8 with placeholders replaced by raw bytes (``swap={"@": b"\\xe9"}``)."""
    data = text.encode("utf-8")
    for placeholder, raw in swap.items():
        data = data.replace(placeholder.encode(), raw)
    return data


def test_non_utf8_wide_file(write_csv, tiny_catalog_csv):
    path = write_csv("latin.csv", _bytes(_wide(m2="caf@,0.3,,4,10"), **{"@": b"\xe9"}))
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv)
    assert str(info.value) == (
        f"{path}, line 3, column 'llm': not valid UTF-8 text (byte 0xe9); {REENCODE}"
    )
    study = read_wide_csv(path, tiny_catalog_csv, encoding="latin-1")
    assert list(study.llms.index) == ["m1", "café", "m3", "m4"]


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        (_long(replace={9: "m3,a,0.@"}), 9, "value"),
        (_long(header="llm,benchm@rk,value"), 1, None),
        # Physical line 8: the quoted field of the third line spans two lines.
        (_long(drop=[5, 8, 12, 16], replace={3: 'm1,b,"0.2\n"', 9: "m3,@,0.5"}), 8, "benchmark"),
    ],
    ids=["value", "header", "after_multiline_field"],
)
def test_non_utf8_long_file(write_csv, tiny_catalog_csv, text, line, column):
    path = write_csv("latin_long.csv", _bytes(text, **{"@": b"\xe9"}), bom=True)
    with pytest.raises(StudyValidationError) as info:
        read_long_csv(path, tiny_catalog_csv)
    column_part = f", column {column!r}" if column else ""
    assert str(info.value) == (
        f"{path}, line {line}{column_part}: not valid UTF-8 text (byte 0xe9); {REENCODE}"
    )


def test_non_utf8_metadata_file(write_csv, tiny_wide_text, tiny_catalog):
    scores = write_csv("scores.csv", tiny_wide_text)
    catalog = tiny_catalog.copy()
    catalog.loc[catalog["key"] == "s", "note"] = "r@sum@"
    path = write_csv("catalog.csv", _bytes(catalog.to_csv(index=False), **{"@": b"\xe9"}))
    with pytest.raises(CatalogError) as info:
        read_wide_csv(scores, path)
    assert str(info.value) == (
        f"{path}, line 4, column 'note': not valid UTF-8 text (byte 0xe9); {REENCODE}"
    )
    study = read_wide_csv(scores, path, encoding="latin-1")
    assert study.benchmarks.loc["s", "note"] == "résumé"


def test_windows_quotes_need_their_encoding(write_csv, tiny_catalog_csv):
    text = _bytes(_wide(m3="<m3>,0.5,0.6,1.5,10"), **{"<": b"\x93", ">": b"\x94"})
    path = write_csv("cp1252.csv", text)
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv)
    assert str(info.value) == (
        f"{path}, line 4, column 'llm': not valid UTF-8 text (byte 0x93); {REENCODE}"
    )
    # Read as latin-1 the quotes become C1 control characters: named, not accepted.
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv, encoding="latin-1")
    assert str(info.value) == (f"{path}, line 4, column 'llm': {_control('\x93m3\x94', 'U+0093')}")
    study = read_wide_csv(path, tiny_catalog_csv, encoding="cp1252")
    assert list(study.llms.index) == ["m1", "m2", "“m3”", "m4"]


@pytest.mark.parametrize("encoding", ["utf-8", "UTF8", "utf_8", "utf-8-sig"])
def test_bom_accepted_under_every_utf8_spelling(
    write_csv, tiny_catalog_csv, tiny_wide_text, encoding
):
    plain = read_wide_csv(write_csv("plain.csv", tiny_wide_text), tiny_catalog_csv)
    odd = read_wide_csv(
        write_csv("bom.csv", tiny_wide_text, bom=True), tiny_catalog_csv, encoding=encoding
    )
    assert odd.sha256() == plain.sha256()


def test_unknown_encoding_and_empty_files(write_csv, tiny_catalog_csv, tiny_wide_text):
    path = write_csv("scores.csv", tiny_wide_text)
    with pytest.raises(StudyValidationError) as info:
        read_wide_csv(path, tiny_catalog_csv, encoding="klingon")
    assert str(info.value) == f"{path}: unknown text encoding 'klingon'"
    empty = write_csv("empty.csv", b"")
    for reader in (read_wide_csv, read_long_csv):
        with pytest.raises(StudyValidationError) as info:
            reader(empty, tiny_catalog_csv)
        assert str(info.value) == f"{empty}: the file is empty (no header line)"
    with pytest.raises(CatalogError) as info:
        read_wide_csv(path, empty)
    assert str(info.value) == f"{empty}: the file is empty (no header line)"
    header_only = write_csv("header.csv", "key,role,direction\n")
    with pytest.raises(CatalogError) as info:
        read_wide_csv(path, header_only)
    assert str(info.value) == f"{header_only}: the catalog has no rows"


def test_real_layout_non_utf8_byte(real_copy):
    path = real_copy / "data/benchmarks_chat_models.csv"
    lines = path.read_bytes().split(b"\n")
    lines[6] = lines[6].replace(b",", b"\xe9,", 1)  # end of the model name of line 7
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(StudyValidationError) as info:
        read_safetywashing(real_copy, "chat")
    assert str(info.value) == (
        f"{path}, line 7, column 'model': not valid UTF-8 text (byte 0xe9); {REENCODE}"
    )


def test_read_table_for_a_new_llms_scores(write_csv):
    """The reader of a ``benchmark,value`` file of a new LLM's scores (header-only allowed)."""
    path = write_csv(
        "new.csv", _bytes("benchmark,value\nmmlu,0.5\n\ngsm8k,0.@\n", **{"@": b"\xe9"})
    )
    with pytest.raises(StudyValidationError) as info:
        read_table(path, required=["benchmark", "value"], names=["benchmark"], min_rows=0)
    assert str(info.value) == (
        f"{path}, line 4, column 'value': not valid UTF-8 text (byte 0xe9); {REENCODE}"
    )
    frame = read_table(path, required=["benchmark", "value"], encoding="latin-1")
    assert frame.to_dict("list") == {
        "benchmark": ["mmlu", "gsm8k"],
        "value": ["0.5", "0.é"],
        "line": [2, 4],
    }
    header_only = write_csv("header.csv", "benchmark,value\n")
    assert read_table(header_only, required=["benchmark", "value"], min_rows=0).empty
