"""Output folders written whole: no run lost, no folder that disagrees with itself.

``safetywash fit`` runs with the data loader and the sampler replaced by stand-ins that
return a simulated study and a fit-shaped tree (``fit_trees``), so every case runs in well
under a second; ``report``, ``sensitivity --save-fits`` and ``sbc --out`` use the same
trees or stand-ins for their refits and rounds.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import safetywash.cli.common as study_options
import safetywash.cli.sbc as sbc_command
import safetywash.cli.sensitivity as sensitivity_command
from fit_trees import BAD_DIAGNOSTICS, GOOD_DIAGNOSTICS, simulated_fit_tree
from safetywash.analysis.separability import separability
from safetywash.cli import main
from safetywash.inference.fitfile import fit_config, load_fit, save_fit
from safetywash.model.simulate import simulate
from safetywash.report.runfolder import clean_leftovers

SEED = 5


def _error(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def _dead_pid() -> int:
    """The id of a process that has finished."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


class StandIns:
    """Records the calls to the loader and the sampler of ``safetywash fit``."""

    def __init__(self, monkeypatch, diagnostics=GOOD_DIAGNOSTICS, during=None):
        self.calls: list[str] = []
        self.study, _ = simulate(24, 4, {"bias": 3, "calibration": 3}, seed=SEED)
        self.tree = simulated_fit_tree(seed=SEED, diagnostics=diagnostics)
        self.during = during
        monkeypatch.setattr(study_options, "load_dataset", self.load)
        monkeypatch.setattr("safetywash.analysis.retry.fit", self.fit)

    def load(self, *args, **kwargs):
        self.calls.append("load")
        return self.study

    def fit(self, *args, **kwargs):
        self.calls.append("fit")
        if self.during is not None:
            self.during()
        return self.tree


def _fit(out: Path, *extra: str) -> int:
    return main(["fit", "--out", str(out), "--no-progress", *extra])


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- fit


def test_fit_writes_a_complete_folder_with_its_verdict(tmp_path, monkeypatch, capsys):
    stand = StandIns(monkeypatch)
    out = tmp_path / "runs" / "good"
    assert _fit(out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["VERDICT", "posterior.nc", "separability.csv"]
    assert (out / "VERDICT").read_text().splitlines()[0] == "TRUSTED"
    table = pd.read_csv(out / "separability.csv")
    expected = separability(load_fit(out / "posterior.nc"))
    np.testing.assert_allclose(
        table.set_index("benchmark").loc[expected.benchmark.values, "rho_median"],
        expected.rho_median.values,
    )
    assert _leftovers(out.parent) == [] and stand.calls == ["load", "fit"]
    assert f"wrote {out}: posterior.nc, separability.csv, VERDICT" in capsys.readouterr().out


def test_existing_run_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    out = tmp_path / "good"
    StandIns(monkeypatch)
    assert _fit(out) == 0
    before = _snapshot(out)
    stand = StandIns(monkeypatch, diagnostics=BAD_DIAGNOSTICS)
    capsys.readouterr()
    for extra in ([], ["--draws", "30", "--tune", "30", "--seed", "7"]):
        assert _fit(out, *extra) == 2
        line = _error(capsys)
        assert f"--out {out} already exists and is not empty" in line and "--overwrite" in line
    assert _fit(out, "--tau", "2") == 2
    assert "--tau" in _error(capsys)
    assert stand.calls == [] and _snapshot(out) == before


def test_untrusted_fit_is_written_and_says_so(tmp_path, monkeypatch, capsys):
    StandIns(monkeypatch, diagnostics=BAD_DIAGNOSTICS)
    out = tmp_path / "short"
    assert _fit(out) == 2  # written, but the exit status says: do not trust it
    verdict = (out / "VERDICT").read_text().splitlines()
    assert verdict[0] == "NOT TRUSTED"
    assert verdict[1 : 1 + len(BAD_DIAGNOSTICS.problems)] == BAD_DIAGNOSTICS.problems
    sentence = 2 + len(BAD_DIAGNOSTICS.problems)
    assert verdict[sentence] == BAD_DIAGNOSTICS.verdict()
    # then what to do: the retry made, the likely causes and the command to try
    notes = verdict[sentence + 1 :]
    assert "Likely causes:" in notes and notes[-1].startswith("Try: safetywash fit ")
    stored = load_fit(out / "posterior.nc").attrs["diagnostics"]
    assert '"trustworthy": false' in stored
    captured = capsys.readouterr()
    assert "DO NOT TRUST" in captured.err and "error:" not in captured.err
    assert _fit(tmp_path / "allowed", "--allow-untrusted") == 0
    assert (tmp_path / "allowed" / "VERDICT").read_text().startswith("NOT TRUSTED\n")


def test_overwrite_replaces_the_whole_folder(tmp_path, monkeypatch):
    out = tmp_path / "run"
    StandIns(monkeypatch)
    assert _fit(out) == 0
    (out / "report.md").write_text("an old report\n")
    StandIns(monkeypatch, diagnostics=BAD_DIAGNOSTICS)
    assert _fit(out, "--overwrite") == 2
    assert sorted(p.name for p in out.iterdir()) == ["VERDICT", "posterior.nc", "separability.csv"]
    assert (out / "VERDICT").read_text().startswith("NOT TRUSTED\n")
    assert _leftovers(tmp_path) == []


def test_overwrite_never_replaces_a_folder_fit_did_not_write(tmp_path, monkeypatch, capsys):
    stand = StandIns(monkeypatch)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me\n")
    assert _fit(notes, "--overwrite") == 2
    assert "not written by this command" in _error(capsys)
    assert (notes / "todo.txt").read_text() == "keep me\n" and stand.calls == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _fit(empty) == 0 and (empty / "posterior.nc").is_file()


def test_failed_write_leaves_no_folder_and_no_leftovers(tmp_path, monkeypatch):
    import safetywash.report.fit_summary as fit_summary

    out = tmp_path / "run"
    StandIns(monkeypatch)
    assert _fit(out) == 0
    before = _snapshot(out)

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_summary, "separability_table", broken)
    with pytest.raises(KeyboardInterrupt):
        _fit(out, "--overwrite")
    assert _snapshot(out) == before  # posterior.nc was written, but only in the stage
    assert _leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "new")
    assert not (tmp_path / "new").exists() and _leftovers(tmp_path) == []


def test_folder_filled_while_fitting_is_kept(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def someone_else_writes():
        out.mkdir()
        (out / "posterior.nc").write_text("their fit")

    StandIns(monkeypatch, during=someone_else_writes)
    assert _fit(out) == 2
    line = _error(capsys)
    assert "was filled while this command ran" in line
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("run-")]
    assert str(kept) in line and (kept / "posterior.nc").is_file()
    assert (out / "posterior.nc").read_text() == "their fit"


def test_leftovers_of_killed_runs_are_cleaned(tmp_path, monkeypatch):
    dead = _dead_pid()
    parent = tmp_path / "runs"
    good = parent / "good"
    StandIns(monkeypatch)
    assert _fit(good) == 0
    staged = parent / f".new.partial-{dead}-0a1b2c3d"
    staged.mkdir()
    (staged / "posterior.nc").write_bytes(b"half")
    replaced = parent / f".good.replaced-{dead}-00112233"  # replacement in place: delete
    replaced.mkdir()
    lost = parent / f".lost.replaced-{dead}-44556677"  # replacement never moved in: restore
    lost.mkdir()
    (lost / "posterior.nc").write_bytes(b"the only copy")
    stale = parent / ".posterior.nc.deadbeef.part"
    stale.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = parent / ".other.nc.0badcafe.part"  # a write that may still be running
    fresh.write_bytes(b"partial")
    alive = parent / f".mine.partial-{os.getpid()}-ffffffff"  # this process: running
    alive.mkdir()
    assert _fit(parent / "next") == 0
    assert not staged.exists() and not replaced.exists() and not stale.exists()
    assert (parent / "lost" / "posterior.nc").read_bytes() == b"the only copy"
    assert fresh.exists() and alive.exists()
    assert (good / "posterior.nc").is_file()
    # a temporary file of the very file about to be written goes whatever its age
    assert clean_leftovers(parent, ["other.nc"]) == [fresh] and not fresh.exists()


# --------------------------------------------------------------------------- report


@pytest.fixture
def run_folder(tmp_path) -> Path:
    tree = simulated_fit_tree(seed=SEED, diagnostics=GOOD_DIAGNOSTICS)
    save_fit(tree, tmp_path / "run" / "posterior.nc")
    return tmp_path / "run"


def test_report_is_replaced_whole_or_not_at_all(run_folder, monkeypatch, capsys):
    import safetywash.report.document as document

    assert main(["report", str(run_folder)]) == 0
    before = _snapshot(run_folder)
    figures = sorted(p.name for p in (run_folder / "figures").iterdir())
    assert len(figures) == 8 and "report.md" in before and "report.html" in before

    def broken(*args, **kwargs):
        raise RuntimeError("the figure could not be drawn")

    monkeypatch.setattr(document, "plot_correlation_ppc", broken)  # after three figures
    with pytest.raises(RuntimeError, match="could not be drawn"):
        main(["report", str(run_folder)])
    assert _snapshot(run_folder) == before
    assert _leftovers(run_folder) == [] and _leftovers(run_folder / "figures") == []


def test_report_cleans_leftovers_and_checks_benchmarks_first(run_folder, capsys):
    dead = _dead_pid()
    leftover = run_folder / "figures" / f".report.partial-{dead}-abc123"
    leftover.mkdir(parents=True)
    part = run_folder / ".report.md.12345678.part"
    part.write_text("half a report")
    assert main(["report", str(run_folder), "--benchmarks", "cap00", "bias_0"]) == 2
    line = _error(capsys)
    assert "--benchmarks: benchmark 'bias_0' is not in this fit" in line
    assert "did you mean" in line
    assert not (run_folder / "report.md").exists()
    assert main(["report", str(run_folder)]) == 0
    assert not leftover.exists() and not part.exists()


def test_damaged_fit_file_is_one_error_line(run_folder, capsys):
    data = (run_folder / "posterior.nc").read_bytes()
    (run_folder / "posterior.nc").write_bytes(data[: len(data) // 3])
    for argv in (
        ["report", str(run_folder)],
        ["adjusted", str(run_folder)],
        ["compare", str(run_folder), "--benchmarks", "bias_00", "bias_01"],
    ):
        assert main(argv) == 2
        line = _error(capsys)
        assert f"{run_folder / 'posterior.nc'}: the file is truncated" in line, argv


# --------------------------------------------------------------------------- other folders


def test_sensitivity_save_fits_is_refused_before_refitting(run_folder, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(
        sensitivity_command, "refit_prior_scales", lambda *a, **k: calls.append(1) or {}
    )
    existing = run_folder.parent / "refits"
    existing.mkdir()
    (existing / "prior_scale_2").mkdir()
    (existing / "prior_scale_2" / "posterior.nc").write_text("an earlier refit")
    assert main(["sensitivity", str(run_folder), "--save-fits", str(existing)]) == 2
    assert "--save-fits" in _error(capsys) and calls == []
    assert (existing / "prior_scale_2" / "posterior.nc").read_text() == "an earlier refit"


def test_sensitivity_refits_are_saved_whole(run_folder, monkeypatch, capsys):
    tree = load_fit(run_folder / "posterior.nc")

    def refits(dt, scales, **kwargs):
        out = {}
        for scale in scales:
            refit = tree.copy()
            config = dataclasses.replace(fit_config(tree), prior_scale=float(scale))
            refit.attrs = {**tree.attrs, "model_config": config.to_json()}
            out[float(scale)] = refit
        return out

    monkeypatch.setattr(sensitivity_command, "refit_prior_scales", refits)
    target = run_folder.parent / "refits"
    argv = ["sensitivity", str(run_folder), "--scales", "2", "--save-fits", str(target)]
    assert main(argv) == 0
    assert sorted(p.name for p in (target / "prior_scale_2").iterdir()) == [
        "VERDICT",
        "posterior.nc",
    ]
    assert (target / "prior_scale_2" / "VERDICT").read_text().startswith("TRUSTED\n")
    assert main([*argv, "--overwrite"]) == 0
    assert _leftovers(run_folder.parent) == []
    table = pd.read_csv(run_folder / "prior_sensitivity.csv")
    assert {"rho_hdi_low@2", "rho_hdi_high@1", "p_positive@2"} <= set(table.columns)


def test_sbc_out_is_refused_or_written_whole(tmp_path, monkeypatch, capsys):
    calls = []
    rounds = xr.Dataset(
        {"rank": (("round", "benchmark"), np.arange(6).reshape(2, 3))},
        coords={"round": [0, 1], "benchmark": ["a", "b", "c"]},
    )
    monkeypatch.setattr(sbc_command, "run_sbc", lambda *a, **k: calls.append(k) or rounds)
    monkeypatch.setattr(sbc_command, "summarize_sbc", lambda ds, bins: {"rounds": 2})
    monkeypatch.setattr(sbc_command, "summary_text", lambda summary: "summary")
    out = tmp_path / "sbc"
    assert main(["sbc", "--rounds", "2", "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["sbc.nc", "summary.json"]
    with h5py.File(out / "sbc.nc", "r") as handle:
        assert handle["rank"].fletcher32
    xr.testing.assert_equal(xr.open_dataset(out / "sbc.nc", engine="h5netcdf").load(), rounds)
    assert calls[0]["work_dir"] is None  # rounds in this process keep no per-round files
    assert main(["sbc", "--rounds", "2", "--out", str(out)]) == 2
    assert "already exists" in _error(capsys) and len(calls) == 1
    argv = ["sbc", "--rounds", "2", "--out", str(out), "--workers", "2", "--overwrite"]
    assert main(argv) == 0
    assert calls[1]["work_dir"] == tmp_path / ".sbc.rounds"
    assert _leftovers(tmp_path) == []
