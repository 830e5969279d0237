"""The ``safetywash`` console command: help, option names, user errors, shims, ``datasets``.

Nothing here samples: the subcommands that would are stopped by their argument checks, or
their sampling entry point is replaced by one that records the call.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import safetywash.cli.common as common_options
from safetywash.cli import main
from safetywash.cli.app import build_parser
from safetywash.data.errors import StudyValidationError
from safetywash.data.registry import DatasetError, dataset_names, dataset_spec

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (
    "fit",
    "baseline",
    "report",
    "compare",
    "adjusted",
    "score-llm",
    "score-benchmark",
    "plan",
    "sensitivity",
    "holdout",
    "sbc",
    "datasets",
)
SHIMS = {
    "fit.py": "fit",
    "baseline.py": "baseline",
    "report.py": "report",
    "compare.py": "compare",
    "adjusted_scores.py": "adjusted",
    "score_llm.py": "score-llm",
    "score_benchmark.py": "score-benchmark",
    "plan.py": "plan",
    "sensitivity.py": "sensitivity",
    "holdout.py": "holdout",
    "sbc.py": "sbc",
}


#: Options whose file must exist when the arguments are parsed.
INPUT_FILE_OPTIONS = ("--scores", "--metadata", "--candidates")


def _subparsers(parser=None) -> dict:
    parser = parser or build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return dict(action.choices)


@pytest.fixture
def no_sampling(monkeypatch):
    """Replace the sampler entry point of ``safetywash fit`` by a recorder; the call log."""
    calls: list[str] = []

    def record(name):
        def stand_in(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} must not run")

        return stand_in

    monkeypatch.setattr("safetywash.analysis.retry.fit", record("fit"))
    return calls


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err
    return lines[0]


# --------------------------------------------------------------------------- help


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: safetywash")
    listed = out.split("commands:")[1].split("examples:")[0]
    for command in COMMANDS:
        assert f"\n    {command}" in listed, command
    assert set(_subparsers()) == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help_shows_an_example(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: safetywash {command}")
    examples = out.split("examples:\n")[1]
    assert f"  safetywash {command}" in examples
    assert "--no-progress" in out


def test_every_example_parses(tmp_path, monkeypatch):
    """The examples in every ``--help`` are valid command lines (run folders and data
    folders stubbed)."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    parser = build_parser()
    epilogs = [parser.epilog, *(sub.epilog for sub in _subparsers(parser).values())]
    for epilog in epilogs:
        lines = [line.strip() for line in epilog.splitlines()[1:] if line.strip()]
        assert lines, epilog
        for line in lines:
            argv = shlex.split(line)
            assert argv[0] == "safetywash"
            for token in argv:
                if re.fullmatch(r"runs/\w+", token):
                    Path(token).mkdir(parents=True, exist_ok=True)
                    Path(token, "posterior.nc").touch()
                elif token.endswith(".csv") and argv[argv.index(token) - 1] in INPUT_FILE_OPTIONS:
                    Path(token).touch()
                elif argv[argv.index(token) - 1] == "--data-dir":
                    Path(token).mkdir(parents=True, exist_ok=True)
            if "--help" not in argv:
                parser.parse_args(argv[1:])


def test_no_progress_is_accepted_everywhere():
    for name, sub in _subparsers().items():
        options = {s for a in sub._actions for s in a.option_strings}
        assert "--no-progress" in options, name


def test_one_meaning_per_option_name():
    """An option name shared by commands takes the same kind of value in each of them."""
    seen: dict[str, dict] = {}
    for name, sub in _subparsers().items():
        for action in sub._actions:
            for option in action.option_strings:
                kind = (
                    type(action).__name__,
                    action.metavar,
                    action.nargs,
                    tuple(action.choices) if action.choices else None,
                )
                seen.setdefault(option, {})[name] = kind
    for option, kinds in seen.items():
        assert len(set(kinds.values())) == 1, (option, kinds)
    # --capability names capability columns of a user's table, never the old capability mode
    assert set(seen["--capability"].values()) == {("_StoreAction", "COL", "+", None)}


def test_renamed_capability_options(capsys):
    parser = build_parser()
    args = parser.parse_args(["fit", "--out", "runs/x", "--capability-mode", "marginal"])
    assert args.capability_mode == "marginal"
    args = parser.parse_args(["sbc", "--capability-benchmarks", "7"])
    assert args.capability_benchmarks == 7
    # the old name is neither accepted nor taken as an abbreviation of the new ones
    assert main(["fit", "--out", "runs/x", "--capability", "marginal"]) == 2
    assert "--capability" in _one_error_line(capsys)
    assert main(["sbc", "--capability", "4"]) == 2
    assert "--capability" in _one_error_line(capsys)


# --------------------------------------------------------------------------- user errors


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--draws", "0"], "--draws"),
        (["--chains", "0"], "--chains"),
        (["--tune", "-1"], "--tune"),
        (["--target-accept", "1.5"], "--target-accept"),
        (["--target-accept", "0"], "--target-accept"),
        (["--seed", "-1"], "--seed"),
        (["--tau", "1"], "--tau"),
        (["--draws", "many"], "expected an integer"),
        (["--factors", "martians"], "martians"),
        (["--dataset", "nope"], "nope"),
    ],
)
def test_fit_rejects_bad_arguments_before_loading(argv, needle, tmp_path, no_sampling, capsys):
    out = tmp_path / "run"
    assert main(["fit", "--out", str(out), *argv]) == 2
    line = _one_error_line(capsys)
    assert needle in line
    assert capsys.readouterr().out == ""  # nothing loaded, nothing printed
    assert no_sampling == [] and not out.exists()


def test_fit_out_must_not_be_a_file(tmp_path, no_sampling, capsys):
    existing = tmp_path / "posterior.nc"
    existing.write_text("not a folder")
    assert main(["fit", "--out", str(existing)]) == 2
    assert f"{existing} is an existing file" in _one_error_line(capsys)
    assert existing.read_text() == "not a folder" and no_sampling == []


def test_unknown_population(shared_data_dir, tmp_path, no_sampling, capsys):
    argv = ["fit", "--population", "martians", "--data-dir", str(shared_data_dir)]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert "unknown population 'martians'" in _one_error_line(capsys)
    assert no_sampling == [] and not (tmp_path / "run").exists()


#: Where each command would first read data, run a sampler or open a fit.
FIRST_WORK = {
    "fit": ["study_from_args", "fit_with_retry"],
    "baseline": ["study_from_args"],
    "holdout": ["study_from_args", "run_holdout"],
    "report": ["load_fit"],
    "compare": ["open_fit"],
    "adjusted": ["open_fit"],
    "score-llm": ["open_fit"],
    "score-benchmark": ["open_fit", "read_wide_csv"],
    "plan": ["open_fit"],
    "sensitivity": ["open_fit", "refit_prior_scales"],
    "sbc": ["run_sbc"],
    "datasets": ["listing", "fetch_dataset"],
}
BIG_SEED = str(2**32)
BOTH_DECLARED = ("--safety", "a=b", "--metadata", "{tmp}/file.txt")

#: One bad argument per case, for every subcommand: the command line and the message part.
BAD_ARGUMENTS = [
    (["fit", "--out", "{tmp}/r", "--seed", BIG_SEED], f"must be at most {2**32 - 1}"),
    (["fit", "--out", "{tmp}/r", "--data-dir", "{tmp}/nowhere"], "nowhere: no such folder"),
    (["fit", "--out", "{tmp}/file.txt"], "is an existing file, not a folder"),
    (["fit", "--out", "{tmp}/file.txt/r"], "file.txt is a file, not a folder"),
    (["fit", "--out", "{tmp}/r", "--population", "caht"], "did you mean 'chat'?"),
    (["fit", "--out", "{tmp}/r", "--factors", "bais"], "unknown safety area 'bais'; did you"),
    (["fit", "--out", "{tmp}/r", "--sampler", "stan"], "invalid choice: 'stan'"),
    (["baseline", "--population", "caht"], "unknown population 'caht' for dataset"),
    (["baseline", "--csv", "{tmp}"], "is a folder, not a file"),
    (["baseline", "--data-dir", "{tmp}/file.txt"], "file.txt: a file, not a folder"),
    (["holdout", "--dataset", "helm-benchbench", "--population", "chat"], "choose from all"),
    (["holdout", "--chains", "0"], "--chains: must be at least 1"),
    (["holdout", "--seed", "-1"], "--seed: must be at least 0"),
    (["report", "{tmp}/run", "--tau", "2"], "--tau: must be in (0, 1)"),
    (["report", "{tmp}/run", "--figures", "{tmp}/file.txt"], "is an existing file"),
    (["report", "{tmp}/run", "--ci-prob", "1"], "--ci-prob: must be in (0, 1)"),
    (["compare", "{tmp}/run", "--benchmarks", "a", "b", "--se-multiple", "-1"], "at least 0"),
    (["compare", "--fits", "{tmp}/run", "{tmp}/run"], "are the same file"),
    (["compare", "{tmp}/run", "--benchmarks", "a", "b", "--json", "{tmp}"], "is a folder"),
    (["adjusted", "{tmp}/run", "--ci-kind", "central"], "invalid choice: 'central'"),
    (["adjusted", "{tmp}/run", "--csv", "{tmp}/file.txt/x.csv"], "is a file, not a folder"),
    (["score-llm", "{tmp}/run", "--scores", "{tmp}/none.csv"], "no such file"),
    (["score-llm", "{tmp}/run", "--scores", "{tmp}/file.txt", "--seed", BIG_SEED], "at most"),
    (["score-benchmark", "{tmp}/run", "--scores", "{tmp}/none.csv"], "no such file"),
    (["score-benchmark", "{tmp}/run", "--scores", "{tmp}/file.txt"], "not described"),
    (["score-benchmark", "{tmp}/run", "--scores", "{tmp}/file.txt", *BOTH_DECLARED], "not both"),
    (["score-benchmark", "{tmp}/run", "--scores", "{tmp}/file.txt", "--safety", "a"], "COL=AREA"),
    (["plan", "{tmp}/run", "--n", "2"], "--n: must be at least 3"),
    (["plan", "{tmp}/run", "--prior", "flat"], "invalid choice: 'flat'"),
    (["plan", "{tmp}/run", "--figure", "{tmp}"], "is a folder"),
    (["sensitivity", "{tmp}/run", "--scales", "0"], "--scales: must be above 0"),
    (["sensitivity", "{tmp}/run", "--draws", "0"], "--draws: must be at least 1"),
    (["sensitivity", "{tmp}/run", "--save-fits", "{tmp}/file.txt"], "is an existing file"),
    (["sensitivity", "{tmp}/run", "--target-accept", "0.9"], "unrecognized arguments"),
    (["sbc", "--seed", str(2**32 - 1), "--rounds", "2"], "exceeds the largest seed"),
    (["sbc", "--areas", "bais"], "did you mean 'bias'?"),
    (["sbc", "--factors", "Bias"], "unknown safety area 'Bias'; did you mean 'bias'?"),
    (["sbc", "--llms", "1"], "--llms: must be at least 2"),
    (["sbc", "--out", "{tmp}/file.txt"], "is an existing file"),
    (["datasets", "--data-dir", "{tmp}/nowhere"], "no such folder"),
    (["datasets", "--timeout", "0"], "--timeout: must be above 0"),
    (["datasets", "--cache-dir", "{tmp}/file.txt"], "is an existing file"),
]


@pytest.fixture
def no_work(monkeypatch):
    """Replace where every command starts its work by stand-ins that must not run."""
    from safetywash.cli.app import COMMANDS

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    for module in COMMANDS:
        command = module.__name__.rsplit(".", 1)[1].replace("_", "-")
        for name in FIRST_WORK[command]:
            monkeypatch.setattr(module, name, refuse)


def test_every_readable_dataset_declares_its_populations():
    from safetywash.data.load import DATASET_POPULATIONS, READERS

    assert set(DATASET_POPULATIONS) == set(READERS)
    assert all(DATASET_POPULATIONS.values())


def test_every_command_is_guarded():
    from safetywash.cli.app import COMMANDS

    names = {m.__name__.rsplit(".", 1)[1].replace("_", "-") for m in COMMANDS}
    assert names == set(FIRST_WORK) == {case[0][0] for case in BAD_ARGUMENTS}


@pytest.mark.parametrize(("argv", "needle"), BAD_ARGUMENTS)
def test_bad_arguments_stop_every_command_first(argv, needle, tmp_path, no_work, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "posterior.nc").write_bytes(b"never opened")
    (tmp_path / "file.txt").write_text("a file\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    line = _one_error_line(capsys)
    assert needle in line, line
    assert capsys.readouterr().out == ""
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_output_folder_that_cannot_be_written(tmp_path, monkeypatch, no_work, capsys):
    """Permissions are faked (the tests may run as root, who may write anywhere)."""
    import os

    locked = tmp_path / "locked"
    (locked / "run").mkdir(parents=True)
    (locked / "run" / "posterior.nc").write_bytes(b"never opened")
    denied = {locked, locked / "run"}
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: Path(p) not in denied and real_access(p, mode)
    )
    for argv, needle in (
        (["fit", "--out", str(locked / "new")], f"{locked} is not writable"),
        (["sbc", "--out", str(locked / "deep" / "sbc")], f"{locked} is not writable"),
        (["baseline", "--json", str(locked / "b.json")], f"{locked} is not writable"),
        (["adjusted", str(locked / "run")], f"cannot write into {locked / 'run'}"),
        (["report", str(locked / "run")], f"cannot write into {locked / 'run'}"),
    ):
        assert main(argv) == 2
        assert needle in _one_error_line(capsys), argv


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{tmp}/missing_run"],
        ["compare", "{tmp}/missing_run", "--benchmarks", "a", "b"],
        ["adjusted", "{tmp}/missing_run"],
        ["sensitivity", "{tmp}/missing_run", "--draws", "10"],
        ["score-llm", "{tmp}/missing_run", "--scores", "{tmp}/scores.csv"],
    ],
)
def test_commands_on_a_missing_run_folder(argv, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert "no fit in" in line and "missing_run" in line
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["holdout", "--fraction", "1"], "--fraction"),
        (["sbc", "--missing", "1"], "--missing"),
        (["sbc", "--rounds", "0"], "--rounds"),
        (["sbc", "--factors", "bias", "--areas", "alignment"], "must be among --areas"),
        (["compare", "--fits", "a"], "no fit in"),
        (["compare"], "either RUN --benchmarks"),
        (["datasets", "download", "nope"], "unknown dataset"),
        (["datasets", "download"], "at least one NAME"),
        (["martians"], "invalid choice"),
        ([], "COMMAND"),
    ],
)
def test_other_user_errors(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in _one_error_line(capsys)


def test_library_errors_become_one_line(monkeypatch, tmp_path, no_sampling, capsys):
    def bad_data(*args, **kwargs):
        raise StudyValidationError("not a number: 'x'", source="scores.csv", line=3, column="b")

    monkeypatch.setattr(common_options, "load_dataset", bad_data)
    assert main(["fit", "--out", str(tmp_path / "run")]) == 2
    assert _one_error_line(capsys) == "error: scores.csv, line 3, column 'b': not a number: 'x'"

    def offline(*args, **kwargs):
        raise DatasetError("could not be downloaded.\nPut the files under\n  /some/dir")

    monkeypatch.setattr(common_options, "load_dataset", offline)
    assert main(["fit", "--out", str(tmp_path / "run")]) == 2
    assert _one_error_line(capsys) == (
        "error: could not be downloaded. Put the files under /some/dir"
    )
    assert no_sampling == []


def test_programming_errors_keep_their_traceback(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(common_options, "load_dataset", broken)
    with pytest.raises(TypeError, match="a bug"):
        main(["fit", "--out", str(tmp_path / "run")])


# --------------------------------------------------------------------------- entry points


def test_console_script_entry_point():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    module, _, name = project["project"]["scripts"]["safetywash"].partition(":")
    assert getattr(importlib.import_module(module), name) is main


def test_shim_runs_in_a_fresh_interpreter():
    proc = subprocess.run(
        [sys.executable, "scripts/fit.py", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: safetywash fit")
    assert "--capability-mode" in proc.stdout


@pytest.mark.parametrize(("shim", "command"), sorted(SHIMS.items()))
def test_every_shim_calls_its_subcommand(shim, command, monkeypatch, capsys):
    assert sorted(p.name for p in (REPO_ROOT / "scripts").glob("*.py")) == sorted(SHIMS)
    monkeypatch.setattr(sys, "argv", [shim, "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(REPO_ROOT / "scripts" / shim), run_name="__main__")
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: safetywash {command} ")


def test_python_dash_m(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["safetywash", "sbc", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("safetywash", run_name="__main__", alter_sys=True)
    assert done.value.code == 0
    assert "--capability-benchmarks" in capsys.readouterr().out


# --------------------------------------------------------------------------- datasets


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_datasets_lists_local_and_cached_status(shared_data_dir, tmp_path, capsys):
    data, cache = tmp_path / "data", tmp_path / "cache"
    shutil.copytree(shared_data_dir / "safetywashing", data / "safetywashing")
    spec = dataset_spec("helm-benchbench")
    first = sorted(spec.files)[0]
    (data / "helm-benchbench" / first).parent.mkdir(parents=True)
    (data / "helm-benchbench" / first).write_text("tampered\n")
    out = tmp_path / "datasets.json"
    argv = ["datasets", "--data-dir", str(data), "--cache-dir", str(cache), "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert [d["name"] for d in payload["datasets"]] == dataset_names()
    rows = {d["name"]: d for d in payload["datasets"]}
    for name, row in rows.items():
        files = dataset_spec(name).files
        local = data / name
        verified = sum((local / p).is_file() and _sha256(local / p) == d for p, d in files.items())
        assert row["local"]["verified"] == verified
        assert row["local"]["n_files"] == len(files)
        assert row["cache"]["present"] == 0 and row["cache"]["status"] == "missing"
        assert name in printed
    assert rows["safetywashing"]["local"]["status"] == "ok"
    assert rows["helm-benchbench"]["local"]["present"] == 1
    assert rows["helm-benchbench"]["local"]["verified"] == 0
    assert rows["helm-benchbench"]["local"]["status"].startswith("incomplete")


def test_datasets_download_into_the_cache(shared_data_dir, tmp_path, monkeypatch, capsys):
    """Download from a file:// mirror (no network) into an empty cache, then list it."""
    monkeypatch.delenv("SAFETYWASH_DATA_DIR", raising=False)
    cache = tmp_path / "cache"
    mirror = (shared_data_dir / "safetywashing").resolve().as_uri() + "/"
    argv = ["datasets", "download", "safetywashing", "--cache-dir", str(cache)]
    assert main([*argv, "--base-url", mirror]) == 0
    assert "verified" in capsys.readouterr().out
    for path, digest in dataset_spec("safetywashing").files.items():
        assert _sha256(cache / "safetywashing" / path) == digest
    out = tmp_path / "list.json"
    assert main(["datasets", "--cache-dir", str(cache), "--json", str(out)]) == 0
    rows = {d["name"]: d for d in json.loads(out.read_text(encoding="utf-8"))["datasets"]}
    assert rows["safetywashing"]["cache"]["status"] == "ok"
    assert rows["helm-benchbench"]["cache"]["status"] == "missing"
