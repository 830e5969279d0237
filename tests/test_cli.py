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

import safetywash.cli.fit as fit_command
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
    "sensitivity.py": "sensitivity",
    "holdout.py": "holdout",
    "sbc.py": "sbc",
}


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

    monkeypatch.setattr(fit_command, "fit", record("fit"))
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
                elif token.endswith(".csv") and argv[argv.index(token) - 1] == "--scores":
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
    assert "--capability" not in seen


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

    monkeypatch.setattr(fit_command, "load_dataset", bad_data)
    assert main(["fit", "--out", str(tmp_path / "run")]) == 2
    assert _one_error_line(capsys) == "error: scores.csv, line 3, column 'b': not a number: 'x'"

    def offline(*args, **kwargs):
        raise DatasetError("could not be downloaded.\nPut the files under\n  /some/dir")

    monkeypatch.setattr(fit_command, "load_dataset", offline)
    assert main(["fit", "--out", str(tmp_path / "run")]) == 2
    assert _one_error_line(capsys) == (
        "error: could not be downloaded. Put the files under /some/dir"
    )
    assert no_sampling == []


def test_programming_errors_keep_their_traceback(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(fit_command, "load_dataset", broken)
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
