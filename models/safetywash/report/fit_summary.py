"""The outputs of one fit run: posterior file, separability CSV, verdict file and a summary.

Every run folder holds ``VERDICT``: ``TRUSTED`` or ``NOT TRUSTED`` on its first line, then
the failed diagnostics one per line and the full verdict sentence (the same diagnostics
are in the fit's attrs), so an untrusted fit kept for inspection says so on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from safetywash.analysis.baseline import fitted_baseline
from safetywash.analysis.intervals import CI_KIND, CI_PROB, interval_label
from safetywash.analysis.separability import (
    area_loadings,
    format_separability,
    separability,
    separability_table,
)
from safetywash.inference.diagnostics import Diagnostics
from safetywash.inference.fitfile import diagnostics_of, fit_config, save_fit

#: File name of a run folder's trust verdict.
VERDICT_FILE = "VERDICT"


def verdict_text(diagnostics: Diagnostics, notes: Sequence[str] = ()) -> str:
    """The ``VERDICT`` file's text: ``TRUSTED``/``NOT TRUSTED``, the reasons, the sentence.

    ``notes`` (likely causes, the command to try, a retry made) follow the sentence.
    """
    head = "TRUSTED" if diagnostics.trustworthy else "NOT TRUSTED"
    extra = ["", *notes] if notes else []
    return "\n".join([head, *diagnostics.problems, "", diagnostics.verdict(), *extra]) + "\n"


def write_verdict(dt: xr.DataTree, out_dir: str | Path, notes: Sequence[str] = ()) -> Path:
    """Write ``out_dir/VERDICT`` from the diagnostics stored in a fit (and ``notes``)."""
    path = Path(out_dir) / VERDICT_FILE
    path.write_text(verdict_text(diagnostics_of(dt), notes), encoding="utf-8")
    return path


def write_fit_outputs(
    dt: xr.DataTree,
    out_dir: str | Path,
    *,
    tau: float,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    notes: Sequence[str] = (),
) -> tuple[Path, Path, str]:
    """Save ``posterior.nc``, ``separability.csv`` and ``VERDICT`` into ``out_dir``.

    ``ci_prob`` and ``ci_kind`` set the intervals of the table and the summary; ``notes``
    go into ``VERDICT`` after the verdict (see :func:`verdict_text`).

    Returns
    -------
    posterior_path, table_path, text
        The paths written and the printed summary.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    posterior_path = save_fit(dt, out_dir / "posterior.nc")
    summary = separability(dt, tau=tau, ci_prob=ci_prob, ci_kind=ci_kind)
    table = separability_table(summary, fitted_baseline(dt))
    table_path = out_dir / "separability.csv"
    table.to_csv(table_path, index=False)
    write_verdict(dt, out_dir, notes)
    areas = area_loadings(dt, ci_prob=ci_prob, ci_kind=ci_kind)
    subspace = fit_config(dt).capability_dims > 1
    text = format_separability(table, tau, ci_prob=ci_prob, ci_kind=ci_kind, subspace=subspace)
    lines = [diagnostics_of(dt).verdict(), "", text]
    if areas.data_vars:
        label = interval_label(ci_prob, ci_kind)
        lines.append(f"Area mean capability loadings (median, {label}, P(> 0)):")
        for area in areas["area"].values:
            a = areas.sel(area=area)
            lines.append(
                f"  {area:<24}{float(a.mean_loading_median):+.2f}  "
                f"[{float(a.mean_loading_hdi_low):+.2f}, {float(a.mean_loading_hdi_high):+.2f}]"
                f"  {float(a.p_positive):.2f}"
            )
    return posterior_path, table_path, "\n".join(lines)
