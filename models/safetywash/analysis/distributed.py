"""Many independent fits through ``dask.distributed`` (SBC rounds, held-out repeats, sweeps).

Each task is a picklable module-level function with keyword arguments (its seed among them)
returning an ``xarray.Dataset``. Results are collected as they finish and written at once,
atomically, to ``<out_dir>/<key>.nc``; a rerun skips every task whose file exists, so an
interrupted campaign resumes where it stopped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import xarray as xr

from safetywash.data.files import atomic_write

_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Task:
    """One independent unit of work.

    Attributes
    ----------
    key : str
        Unique, filename-safe name (``[A-Za-z0-9_.-]+``); the result file is ``<key>.nc``.
    func : callable
        Module-level function returning an ``xarray.Dataset``.
    kwargs : mapping
        Keyword arguments of ``func`` (include the task's seed for determinism).
    """

    key: str
    func: Callable[..., xr.Dataset]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"task key {self.key!r} is not filename-safe")


def result_path(out_dir: str | Path, key: str) -> Path:
    """Where the result of task ``key`` is stored."""
    return Path(out_dir) / f"{key}.nc"


def _run_task(func: Callable[..., xr.Dataset], kwargs: Mapping[str, Any]) -> xr.Dataset:
    return func(**kwargs).load()


def run_tasks(
    tasks: Iterable[Task],
    out_dir: str | Path,
    *,
    scheduler: str | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    progress: Callable[[str], None] | None = print,
) -> dict[str, xr.Dataset]:
    """Run tasks on a dask cluster, skipping those already done.

    Parameters
    ----------
    tasks : iterable of Task
        Keys must be unique.
    out_dir : str or pathlib.Path
        Folder of result files (created).
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``). Default:
        a ``LocalCluster`` of ``n_workers`` processes started for this call and closed after.
    n_workers, threads_per_worker : int
        Size of the local cluster.
    progress : callable, optional
        Called with a one-line message as each task finishes (``None``: silent).

    Returns
    -------
    dict
        Task key -> result Dataset, for every task (finished earlier or now), in task order.
    """
    from distributed import Client, LocalCluster, as_completed

    tasks = list(tasks)
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("task keys must be unique")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [t for t in tasks if not result_path(out, t.key).is_file()]
    say = progress or (lambda _msg: None)
    say(f"{len(tasks) - len(todo)} of {len(tasks)} tasks already done in {out}")
    if todo:
        cluster = None
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                dashboard_address=None,
            )
        client = Client(scheduler if scheduler is not None else cluster)
        try:
            futures = {
                client.submit(_run_task, t.func, dict(t.kwargs), key=t.key, pure=False): t.key
                for t in todo
            }
            for done, future in enumerate(as_completed(futures), start=1):
                key = futures[future]
                ds = future.result()
                atomic_write(result_path(out, key), partial(ds.to_netcdf, engine="h5netcdf"))
                say(f"[{done}/{len(todo)}] {key} done")
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    results = {}
    for key in keys:
        with xr.open_dataset(result_path(out, key), engine="h5netcdf") as ds:
            results[key] = ds.load()
    return results
