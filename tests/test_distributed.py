"""The dask.distributed task runner on a local cluster of two workers."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr

from safetywash.analysis.distributed import Task, result_path, run_tasks


def draw_numbers(seed: int, n: int) -> xr.Dataset:
    """A seeded stand-in for one fit: returns its draws and the worker's process id."""
    rng = np.random.default_rng(seed)
    return xr.Dataset({"x": ("i", rng.normal(size=n))}, attrs={"pid": os.getpid()})


def fail_once(marker: str) -> xr.Dataset:
    raise RuntimeError(f"boom {marker}")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    tasks = [Task(f"round{r:02d}", draw_numbers, {"seed": 100 + r, "n": 5}) for r in range(6)]
    messages: list[str] = []
    results = run_tasks(tasks, out, n_workers=2, progress=messages.append)
    return out, tasks, results, messages


def test_results_are_seeded_and_complete(first_run):
    out, tasks, results, messages = first_run
    assert list(results) == [t.key for t in tasks]
    for task in tasks:
        expected = np.random.default_rng(task.kwargs["seed"]).normal(size=5)
        np.testing.assert_array_equal(results[task.key]["x"].values, expected)
        assert result_path(out, task.key).is_file()
    assert sum("done" in m and "[" in m for m in messages) == len(tasks)


def test_tasks_ran_in_worker_processes(first_run):
    _, _, results, _ = first_run
    pids = {int(ds.attrs["pid"]) for ds in results.values()}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2


def test_rerun_skips_finished_tasks(first_run):
    out, tasks, results, _ = first_run
    # Were any task re-run, it would raise: finished results must be read, not recomputed.
    again = [Task(t.key, fail_once, {"marker": t.key}) for t in tasks]
    messages: list[str] = []
    reread = run_tasks(again, out, n_workers=2, progress=messages.append)
    assert messages == [f"{len(tasks)} of {len(tasks)} tasks already done in {out}"]
    for key, ds in results.items():
        np.testing.assert_array_equal(reread[key]["x"].values, ds["x"].values)


def test_rerun_runs_only_missing_tasks(first_run, tmp_path):
    out, tasks, _, _ = first_run
    partial = tmp_path / "partial"
    partial.mkdir()
    for t in tasks[:4]:
        (partial / result_path(out, t.key).name).write_bytes(result_path(out, t.key).read_bytes())
    messages: list[str] = []
    results = run_tasks(tasks, partial, n_workers=2, progress=messages.append)
    assert messages[0] == f"4 of {len(tasks)} tasks already done in {partial}"
    assert sorted(m.split()[1] for m in messages[1:]) == [t.key for t in tasks[4:]]
    assert len(results) == len(tasks)


def test_failing_task_raises_and_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        run_tasks([Task("bad", fail_once, {"marker": "x"})], tmp_path, n_workers=1, progress=None)
    assert list(tmp_path.iterdir()) == []


def test_task_keys_are_checked():
    with pytest.raises(ValueError, match="filename-safe"):
        Task("a/b", draw_numbers, {})
    with pytest.raises(ValueError, match="unique"):
        run_tasks([Task("a", draw_numbers), Task("a", draw_numbers)], "unused", progress=None)


def test_sbc_rounds_run_on_a_local_cluster_and_resume(tmp_path):
    from safetywash.analysis.calibration import summarize_sbc
    from safetywash.analysis.sbc import run_sbc

    kwargs = dict(
        n_llms=16,
        n_capability=3,
        safety={"bias": 2},
        draws=100,
        tune=100,
        chains=2,
        seed=5,
        rank_draws=19,
        workers=2,
        work_dir=tmp_path / "rounds",
    )
    messages: list[str] = []
    ds = run_sbc(2, progress=lambda r, n, info: messages.append(info["message"]), **kwargs)
    assert ds.sizes == {"round": 2, "benchmark": 5}
    assert ds["seed"].values.tolist() == [5, 6]
    assert sorted(p.name for p in (tmp_path / "rounds").iterdir()) == [
        "round0000-seed5.nc",
        "round0001-seed6.nc",
    ]
    assert any("done" in m for m in messages)
    summary = summarize_sbc(ds)
    assert 0.0 <= summary["coverage90"] <= 1.0
    # Written whole, every round keeps its own variable names (not cut to the first
    # round's string width).
    ds.to_netcdf(tmp_path / "all.nc", engine="h5netcdf")
    with xr.open_dataset(tmp_path / "all.nc", engine="h5netcdf") as whole:
        for r, name in enumerate(["round0000-seed5.nc", "round0001-seed6.nc"]):
            with xr.open_dataset(tmp_path / "rounds" / name, engine="h5netcdf") as one:
                for var in ("worst_rhat_variable", "worst_ess_variable", "structure"):
                    assert str(whole[var].values[r]) == str(one[var].values)

    # A rerun reads the finished rounds instead of fitting again.
    again: list[str] = []
    ds2 = run_sbc(2, progress=lambda r, n, info: again.append(info["message"]), **kwargs)
    assert again == [f"2 of 2 tasks already done in {tmp_path / 'rounds'}"]
    np.testing.assert_array_equal(ds2["rho_median"].values, ds["rho_median"].values)
