"""The look shared by every figure and the HTML report: area colours, labels, saving.

Safety areas get the same colour in every figure and in the HTML report's area headings
(:data:`AREA_COLORS`). Figures are :class:`matplotlib.figure.Figure` objects made without
pyplot (:func:`new_figure`); the functions never choose a matplotlib backend: scripts pick
``Agg``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from safetywash.inference.fitfile import fit_info

#: One fixed colour per area, used by every figure (and the HTML report's area headings).
AREA_COLORS: dict[str, str] = {
    "capability": "#4d4d4d",
    "alignment": "#1f77b4",
    "scalable_oversight": "#0e8c9a",
    "truthfulness": "#2ca02c",
    "machine_ethics": "#9467bd",
    "bias": "#ff7f0e",
    "calibration": "#8c564b",
    "adversarial_robustness": "#d62728",
    "weaponization": "#e377c2",
}
#: Colours of areas beyond :data:`AREA_COLORS` (a user's own areas): each new area name gets
#: one of these, fixed by the name itself (the same in every figure, run and report).
NEW_AREA_COLORS: tuple[str, ...] = (
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#7b4173",
    "#ad494a",
    "#6baed6",
    "#74c476",
    "#9e9ac8",
    "#e7969c",
    "#fdae6b",
)
#: Colours of LLM populations (capability ranking).
POPULATION_COLORS: dict[str, str] = {"base": "#3b6ea5", "chat": "#c0504d"}
#: Longest label drawn before it is shortened with an ellipsis.
MAX_LABEL = 48


def area_color(area: str) -> str:
    """The fixed colour of a safety area (or ``"capability"``).

    An area of the paper has its colour in :data:`AREA_COLORS`; any other name gets one of
    :data:`NEW_AREA_COLORS` chosen by a hash of the name, so it is the same wherever the area
    is drawn (two new areas may share a colour; the labels tell them apart).
    """
    area = str(area)
    if area in AREA_COLORS:
        return AREA_COLORS[area]
    digest = hashlib.sha256(area.encode("utf-8")).digest()
    return NEW_AREA_COLORS[int.from_bytes(digest[:4], "big") % len(NEW_AREA_COLORS)]


def area_label(area: str) -> str:
    """Readable name of an area key: ``"machine_ethics"`` -> ``"Machine ethics"``."""
    text = str(area).replace("_", " ")
    return text[:1].upper() + text[1:]


def population_color(population: str, index: int = 0) -> str:
    """Colour of an LLM population (a tab10 colour for unknown labels)."""
    if population in POPULATION_COLORS:
        return POPULATION_COLORS[population]
    return matplotlib.colors.to_hex(matplotlib.colormaps["tab10"](index % 10))


def shorten(text: str, width: int = MAX_LABEL) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    text = str(text)
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def new_figure(width: float, height: float, **kwargs) -> Figure:
    """A figure with the constrained layout, not managed by pyplot."""
    return Figure(figsize=(width, height), layout="constrained", **kwargs)


def area_legend_handles(areas: Sequence[str]) -> list[Patch]:
    """Legend patches for ``areas`` in their fixed colours."""
    return [Patch(color=area_color(a), label=area_label(a)) for a in areas]


def study_name(dt: xr.DataTree) -> str:
    """The fit's study name, for titles."""
    return fit_info(dt).study_name


def save_figure(figure, stem: str | Path, *, dpi: int = 130) -> tuple[Path, Path]:
    """Write a figure (or ArviZ ``PlotCollection``) as ``<stem>.png`` and ``<stem>.svg``.

    The figure is closed afterwards when pyplot manages it.

    Returns
    -------
    png, svg : pathlib.Path
    """
    fig = figure.viz["figure"].item() if hasattr(figure, "viz") else figure
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = Path(f"{stem}.png"), Path(f"{stem}.svg")
    fig.savefig(png, dpi=dpi)
    fig.savefig(svg)
    if hasattr(figure, "viz"):
        import matplotlib.pyplot as plt

        plt.close(fig)
    return png, svg
