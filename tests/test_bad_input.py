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
def test_no_metadata_and_no_default_direction(write_csv, reader, text):
    path = write_csv("scores.csv", text)
    with pytest.raises(StudyValidationError) as info:
        reader(path)
    _check(info.value, path, ["unknown direction", "default_direction"], None, "a", None)
    # The same file is fine once a direction is given.
    study = reader(path, default_direction="lower", capability=["a", "b"])
    assert dict(study.benchmarks["role"]) == {"a": "capability", "b": "capability", "s": "safety"}
    assert set(study.benchmarks["direction"]) == {"lower"}
    assert study.n_cells == 11


def test_bad_default_direction(write_csv, tiny_wide_text):
    path = write_csv("scores.csv", tiny_wide_text)
    with pytest.raises(CatalogError, match="unknown direction 'sideways'") as info:
        read_wide_csv(path, default_direction="sideways")
    assert info.value.column == "direction"


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
        read_wide_csv(path, default_direction="higher")


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
