"""The outputs of one fit run: posterior file, separability CSV and a printed summary."""

from __future__ import annotations

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
from safetywash.inference.fitfile import diagnostics_of, save_fit


def write_fit_outputs(
    dt: xr.DataTree,
    out_dir: str | Path,
    *,
    tau: float,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
) -> tuple[Path, Path, str]:
    """Save ``posterior.nc`` and ``separability.csv`` into ``out_dir``; return a summary.

    ``ci_prob`` and ``ci_kind`` set the intervals of the table and the summary.

    Returns
    -------
    posterior_path, table_path, text
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    posterior_path = save_fit(dt, out_dir / "posterior.nc")
    summary = separability(dt, tau=tau, ci_prob=ci_prob, ci_kind=ci_kind)
    table = separability_table(summary, fitted_baseline(dt))
    table_path = out_dir / "separability.csv"
    table.to_csv(table_path, index=False)
    areas = area_loadings(dt, ci_prob=ci_prob, ci_kind=ci_kind)
    text = format_separability(table, tau, ci_prob=ci_prob, ci_kind=ci_kind)
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
