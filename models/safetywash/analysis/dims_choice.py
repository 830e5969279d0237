"""How a fit's number of capability dimensions was chosen, as its attrs record it.

:func:`safetywash.analysis.capability_dims.select_capability_dims` writes the record;
this module only reads and words it (no PyMC), for the fit summary and the report.
"""

from __future__ import annotations

import json

import xarray as xr

#: Attr of a fit chosen among several K, recording the choice (JSON).
DIMS_CHOICE_ATTR = "capability_dims_choice"


def dims_choice(dt: xr.DataTree) -> dict | None:
    """The recorded choice of K (None: K was given, not chosen)."""
    return json.loads(dt.attrs[DIMS_CHOICE_ATTR]) if DIMS_CHOICE_ATTR in dt.attrs else None


def describe_dims_choice(choice: dict | None, dims: int) -> str:
    """One sentence: the K used and why."""
    if choice is None:
        return f"{dims} capability dimension(s), as requested."
    if choice["method"] == "only candidate":
        return f"{dims} capability dimension: {choice['reason']}."
    parts = []
    for k, row in sorted(choice["candidates"].items(), key=lambda kv: int(kv[0])):
        diff = (
            "best" if row["elpd_diff"] == 0 else f"{-row['elpd_diff']:+.1f} ± {row['diff_se']:.1f}"
        )
        if row.get("trustworthy") is False:
            diff += "; its fit did not pass the diagnostics"
        parts.append(f"K={k}: ELPD {row['elpd']:.1f} ({diff})")
    return (
        f"{dims} capability dimension(s), chosen by {choice['method']} expected log "
        f"predictive density ({choice['rule']}): " + "; ".join(parts) + "."
    )
