"""A fit's report: diagnostics verdict, separability by area, figures and a PPC.

:func:`build_report` turns a fit into a :class:`Report` (Markdown and self-contained HTML,
figures written as PNG and SVG), one function per section; :func:`write_report` also saves
``report.md`` and ``report.html`` into a run folder, with the figures in its ``figures/``
folder by default (the Markdown links them relatively, so the folder can be moved). The
numbers come from :mod:`safetywash.report.tables` and :mod:`safetywash.analysis.ppc`, the
rendering from :mod:`safetywash.report.render`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import xarray as xr

from safetywash.analysis.dims_choice import describe_dims_choice, dims_choice
from safetywash.analysis.intervals import CI_KIND, CI_PROB, interval_label, percent
from safetywash.analysis.ppc import DEFAULT_MAX_DRAWS, correlation_ppc
from safetywash.analysis.separability import DEFAULT_TAU
from safetywash.data.files import atomic_write
from safetywash.inference.fitfile import (
    benchmark_table,
    diagnostics_of,
    fit_config,
    fit_info,
    fitted_transform,
    llm_table,
)
from safetywash.model.config import ModelConfig
from safetywash.report.figures import (
    capability_summary,
    plot_capability_ranking,
    plot_correlation_ppc,
    plot_loadings_heatmap,
    plot_scores_vs_capability,
)
from safetywash.report.render import (
    FigureBlock,
    Heading,
    Paragraph,
    Table,
    render_html,
    render_markdown,
)
from safetywash.report.runfolder import partial_prefix
from safetywash.report.separability_section import separability_section
from safetywash.report.style import area_label, save_figure
from safetywash.report.tables import (
    capability_rows,
    default_benchmarks,
    paper_baseline_of,
    report_table,
)

#: Folder of the figures inside the report's folder.
FIGURES_FOLDER = "figures"


@dataclass
class Report:
    """A rendered report and what it was made from."""

    markdown: str
    html: str
    figures: dict[str, tuple[Path, Path]]
    table: pd.DataFrame
    ppc: xr.Dataset
    blocks: list = field(default_factory=list, repr=False)


@dataclass
class _FigureWriter:
    """Saves figures as ``<folder>/<stem>_<what>.png`` and ``.svg`` and records them."""

    folder: Path
    stem: str
    saved: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    def block(self, figure, what: str, caption: str) -> FigureBlock:
        png, svg = self.saved[what] = save_figure(figure, self.folder / f"{self.stem}_{what}")
        return FigureBlock(png, svg, caption)


def fit_label(dt: xr.DataTree) -> str:
    """The study name, plus the model choices that differ from the defaults.

    ``"safetywashing-chat"`` for a default fit, ``"safetywashing-chat_factors-bias"`` with a
    bias factor: the prefix of figure file names (fits of one study with different models
    do not overwrite each other's figures).
    """
    info = fit_info(dt)
    config, default = info.model_config, ModelConfig()
    parts = [info.study_name]
    if config.factors:
        parts.append("factors-" + "-".join(config.factors))
    for choice in ("transform", "level"):
        if getattr(config, choice) != getattr(default, choice):
            parts.append(getattr(config, choice))
    if config.prior_scale != 1.0:
        parts.append(f"prior{config.prior_scale:g}")
    if config.capability_dims != 1:
        parts.append(f"dims{config.capability_dims}")
    return "_".join(parts)


def _fit_facts(dt: xr.DataTree) -> str:
    info = fit_info(dt)
    meta, llms = benchmark_table(dt), llm_table(dt)
    pops = ", ".join(f"{n} {p}" for p, n in llms["population"].value_counts().sort_index().items())
    config, settings = info.model_config, info.sampler_settings
    factors = ", ".join(area_label(f) for f in config.factors) or "none (capability only)"
    n_cells = dt["observed_data"].sizes["cell"]
    n_cap = int((meta["role"] == "capability").sum())
    n_safe = int((meta["role"] == "safety").sum())
    transform = fitted_transform(dt)
    logistic = ", ".join(transform.benchmarks[transform.logit]) or "none"
    return (
        f"Study {info.study_name}: {len(llms)} LLMs ({pops}), {n_cap} capability and {n_safe} "
        f"safety benchmarks ({len(info.excluded_benchmarks)} excluded), "
        f"{n_cells} observed scores of {len(llms) * len(meta)} cells. "
        f"Model: {describe_dims_choice(dims_choice(dt), config.capability_dims)} "
        f"Area factors {factors}; transform {config.transform} (logistic treatment: "
        f"{logistic}); level {config.level}. "
        f"Sampler: {settings.sampler}, {settings.chains} chains x "
        f"{settings.draws} draws, seed {info.seed}; "
        f"safetywash {info.version}."
    )


def _verdict_section(dt: xr.DataTree) -> list:
    diagnostics = diagnostics_of(dt)
    style = "strong" if diagnostics.trustworthy else "warning"
    return [
        Heading(f"Safetywashing report: {fit_info(dt).study_name}", 1),
        Paragraph(f"Diagnostics: {diagnostics.verdict()}", style),
        Paragraph(_fit_facts(dt)),
    ]


def _capability_section(dt, figures: _FigureWriter, ci_prob, ci_kind) -> list:
    label = interval_label(ci_prob, ci_kind)
    ranking = plot_capability_ranking(dt, ci_prob=ci_prob, ci_kind=ci_kind)
    summary = capability_summary(dt, ci_prob=ci_prob, ci_kind=ci_kind).to_dataframe()
    return [
        Heading("LLM capability"),
        figures.block(
            ranking,
            "capability_ranking",
            f"LLMs by posterior capability θ (median, {label}), by population.",
        ),
        Table(
            ["population", "rank", "LLM", "θ median", label],
            capability_rows(summary),
            align="lrlrr",
        ),
    ]


def _scores_section(dt, benchmarks, figures: _FigureWriter, ci_prob, ci_kind) -> list:
    meta = benchmark_table(dt)
    panels = plot_scores_vs_capability(dt, benchmarks, ci_prob=ci_prob, ci_kind=ci_kind)
    names = ", ".join(str(meta.loc[b, "display_name"]) for b in benchmarks)
    caption = (
        f"Standardised oriented scores against posterior capability for {names}, with the "
        f"posterior median and {percent(ci_prob)} band of intercept + loading × θ."
    )
    return [
        Heading("Scores against capability"),
        figures.block(panels, "scores_vs_capability", caption),
    ]


def _ppc_section(dt, ppc: xr.Dataset, figures: _FigureWriter, ci_prob) -> list:
    pct = percent(ci_prob)
    return [
        Heading("Posterior predictive check: benchmark correlations"),
        Paragraph(
            f"{ppc.attrs['share_inside']:.1%} of {ppc.attrs['n_pairs']} pairwise benchmark "
            f"correlations (pairs sharing at least {ppc.attrs['min_pairs']} LLMs) lie inside "
            f"their {pct} posterior predictive interval (a model that reproduces the "
            f"correlation structure puts about {pct} or more inside); replicates "
            f"{ppc.attrs['source']}, {ppc.attrs['n_draws']} draws.",
            "strong",
        ),
        figures.block(
            plot_correlation_ppc(ppc, dt),
            "correlation_ppc",
            "Observed pairwise correlations of the standardised scores against their "
            "replicated distribution; right: per-pair posterior predictive p-values.",
        ),
    ]


def _loadings_section(dt, figures: _FigureWriter) -> list:
    if fit_config(dt).factors and "factor_loading" in dt["posterior"].data_vars:
        body = figures.block(
            plot_loadings_heatmap(dt),
            "loadings_heatmap",
            "Posterior median loadings on capability and on each area factor (blank: "
            "fixed at zero).",
        )
    else:
        body = Paragraph(
            "One-factor fit (capability only): no loadings heatmap. Fit with area factors "
            "(safetywash fit --factors AREA ...) to see capability and area loadings side "
            "by side."
        )
    return [Heading("Loadings"), body]


def build_report(
    dt: xr.DataTree,
    *,
    report_dir: str | Path = ".",
    figures_dir: str | Path | None = None,
    tau: float = DEFAULT_TAU,
    ci_prob: float = CI_PROB,
    ci_kind: str = CI_KIND,
    benchmarks: Sequence[str] | None = None,
    max_draws: int | None = DEFAULT_MAX_DRAWS,
) -> Report:
    """Make every figure of a fit and the report text.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit (:func:`safetywash.inference.fitfile.load_fit`).
    report_dir : str or pathlib.Path
        Where the Markdown will live (its figure links are relative to it).
    figures_dir : str or pathlib.Path, optional
        Where the figures go, as ``<fit label>_<what>.png`` and ``.svg`` (see
        :func:`fit_label`); default ``<report_dir>/figures``.
    tau : float
        Separability threshold.
    ci_prob, ci_kind : float, str
        Interval convention of every summary and label.
    benchmarks : sequence of str, optional
        Benchmark keys for the scores-vs-capability panels; default
        :func:`safetywash.report.tables.default_benchmarks`.
    max_draws : int, optional
        Draws used by the correlation PPC.

    Returns
    -------
    Report
    """
    figures_dir = Path(report_dir) / FIGURES_FOLDER if figures_dir is None else Path(figures_dir)
    meta = benchmark_table(dt)
    benchmarks = list(benchmarks) if benchmarks else default_benchmarks(dt)
    unknown = [b for b in benchmarks if b not in meta.index]
    if unknown:
        raise KeyError(f"benchmark(s) {unknown} are not in this fit; known: {list(meta.index)}")
    baseline, caps = paper_baseline_of(dt)
    table = report_table(dt, tau=tau, ci_prob=ci_prob, ci_kind=ci_kind, baseline=baseline)
    ppc = correlation_ppc(dt, ci_prob=ci_prob, max_draws=max_draws)
    figures = _FigureWriter(figures_dir, fit_label(dt))
    blocks = [
        *_verdict_section(dt),
        *separability_section(dt, table, baseline, caps, figures, tau, ci_prob, ci_kind),
        *_capability_section(dt, figures, ci_prob, ci_kind),
        *_scores_section(dt, benchmarks, figures, ci_prob, ci_kind),
        *_ppc_section(dt, ppc, figures, ci_prob),
        *_loadings_section(dt, figures),
    ]
    markdown = render_markdown(blocks, base=report_dir)
    page = render_html(blocks, title=f"Safetywashing report: {fit_info(dt).study_name}")
    return Report(markdown, page, figures.saved, table, ppc, blocks)


def write_report(
    dt: xr.DataTree, out_dir: str | Path, *, figures_dir: str | Path | None = None, **kwargs
) -> tuple[Path, Path, Report]:
    """Build the report of a fit and write ``report.md`` and ``report.html`` into ``out_dir``.

    The figures go to ``out_dir/figures`` unless ``figures_dir`` is given. Other keyword
    arguments go to :func:`build_report`. Nothing is half written: the figures are made in
    a staging folder inside the figures folder and moved in when all exist, then
    ``report.html`` and last ``report.md`` replace the old ones in one step each.

    Returns
    -------
    markdown_path, html_path, report
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / FIGURES_FOLDER if figures_dir is None else Path(figures_dir)
    final.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=partial_prefix("report"), dir=final))
    try:
        report = build_report(dt, figures_dir=stage, report_dir=out_dir, **kwargs)
        _move_figures(report, final)
        report.markdown = render_markdown(report.blocks, base=out_dir)
        html_path = atomic_write(out_dir / "report.html", _text_writer(report.html))
        md_path = atomic_write(out_dir / "report.md", _text_writer(report.markdown))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return md_path, html_path, report


def _text_writer(text: str):
    return lambda tmp: Path(tmp).write_text(text, encoding="utf-8")


def _move_figures(report: Report, folder: Path) -> None:
    """Move a report's staged figure files into ``folder`` and point the report at them."""
    for files in report.figures.values():
        for path in files:
            os.replace(path, folder / path.name)
    report.figures = {w: tuple(folder / p.name for p in pair) for w, pair in report.figures.items()}
    report.blocks = [
        dataclasses.replace(b, png=folder / b.png.name, svg=folder / b.svg.name)
        if isinstance(b, FigureBlock)
        else b
        for b in report.blocks
    ]
