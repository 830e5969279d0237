"""A fit's report: diagnostics verdict, separability by area, figures and a PPC.

:func:`build_report` turns a fit into a :class:`Report` (Markdown and self-contained HTML,
figures written as PNG and SVG); :func:`write_report` also saves ``report.md`` and
``report.html``. The numeric pieces are separate functions that take and return xarray /
pandas objects: :func:`report_table` (separability beside the paper's baseline, with
disagreements flagged), :func:`correlation_ppc` (posterior predictive check of the
benchmark correlation matrix), :func:`replicate_scores` and :func:`pairwise_correlation`.
"""

from __future__ import annotations

import base64
import html
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from safetywash.analysis.baseline import (
    BASELINE_VARIABLE,
    PAPER_CAPABILITY_BENCHMARKS,
    capability_benchmarks_for,
    fitted_baseline,
    oriented_baseline,
)
from safetywash.analysis.separability import (
    DEFAULT_CI_PROB,
    DEFAULT_TAU,
    area_loadings,
    separability,
    separability_table,
)
from safetywash.inference.fitfile import diagnostics_of, fit_config, study_from_fit
from safetywash.report.figures import (
    AREA_COLORS,
    area_color,
    area_label,
    benchmark_metadata,
    capability_summary,
    llm_metadata,
    plot_capability_ranking,
    plot_correlation_ppc,
    plot_loadings_heatmap,
    plot_rho_forest,
    plot_scores_vs_capability,
    save_figure,
)

SAMPLE_DIMS = ("chain", "draw")
#: Fewest LLMs two benchmarks must share for their correlation to be checked.
MIN_PAIRS = 5
#: Most posterior draws used for the correlation PPC (evenly thinned).
DEFAULT_MAX_DRAWS = 1000
#: Safety benchmarks shown against capability when none are chosen.
DEFAULT_N_BENCHMARKS = 4


# --------------------------------------------------------------------------- tables


def paper_baseline_of(dt: xr.DataTree) -> tuple[pd.Series | None, tuple[str, ...]]:
    """The paper's oriented capabilities correlation for the fitted study.

    Taken from the fit, which stores it computed on the whole input study (so the paper's
    12 capability benchmarks are all used even when the fit is at the aggregate level);
    for older fits without it, recomputed from the fitted study
    (:func:`safetywash.inference.fitfile.study_from_fit`), which may lack some of the 12.

    Returns
    -------
    baseline : pandas.Series or None
        Oriented Spearman correlation by benchmark key (None when the baseline cannot be
        computed, e.g. with fewer than two capability benchmarks).
    capability_benchmarks : tuple of str
        The columns of the baseline's capability score.
    """
    stored = fitted_baseline(dt)
    if stored is not None:
        return stored, _stored_capability_benchmarks(dt)
    study = study_from_fit(dt)
    try:
        return oriented_baseline(study), tuple(capability_benchmarks_for(study))
    except ValueError:
        return None, ()


def _stored_capability_benchmarks(dt: xr.DataTree) -> tuple[str, ...]:
    """The capability benchmarks of the stored baseline's capability score."""
    attrs = dt["constant_data"][BASELINE_VARIABLE].attrs
    return tuple(json.loads(attrs.get("capability_benchmarks", "[]")))


def baseline_disagrees(table: pd.DataFrame) -> pd.Series:
    """Whether the paper's baseline lies outside the Bayesian HDI of ``rho``.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``rho_hdi_low``, ``rho_hdi_high`` and ``baseline_correlation``.

    Returns
    -------
    pandas.Series of bool
        False where the baseline is missing.
    """
    base = table["baseline_correlation"].astype(float)
    outside = (base < table["rho_hdi_low"]) | (base > table["rho_hdi_high"])
    return outside & base.notna()


def report_table(
    dt: xr.DataTree,
    *,
    tau: float = DEFAULT_TAU,
    ci_prob: float = DEFAULT_CI_PROB,
    baseline: pd.Series | None = None,
    group: str = "posterior",
) -> pd.DataFrame:
    """Separability of every benchmark beside the paper's baseline, grouped by area.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    tau, ci_prob : float
        Separability threshold and HDI probability (see
        :func:`safetywash.analysis.separability.separability`).
    baseline : pandas.Series, optional
        Oriented baseline correlation by benchmark key (:func:`paper_baseline_of`).
    group : str
        Group holding the draws.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`safetywash.analysis.separability.separability_table` plus ``role``,
        ``loading_median`` and ``disagrees``; safety areas (alphabetical) first, capability
        benchmarks last, each area by descending ``rho_median``.
    """
    summary = separability(dt, tau=tau, ci_prob=ci_prob, group=group)
    table = separability_table(summary, baseline)
    extra = summary[["loading_median"]].reset_coords().to_dataframe()
    table = table.join(extra[["role", "loading_median"]], on="benchmark")
    table["disagrees"] = baseline_disagrees(table)
    table["_cap"] = table["role"] == "capability"
    table = table.sort_values(["_cap", "area", "rho_median"], ascending=[True, True, False])
    return table.drop(columns="_cap").reset_index(drop=True)


def default_benchmarks(
    dt: xr.DataTree, n: int = DEFAULT_N_BENCHMARKS, *, group: str = "posterior"
) -> list[str]:
    """A few safety benchmarks spanning the range of ``|rho|`` (highest to lowest)."""
    meta = benchmark_metadata(dt)
    keys = list(meta.index[meta["role"] == "safety"]) or list(meta.index)
    strength = np.abs(dt[group]["rho"].sel(benchmark=keys).median(SAMPLE_DIMS).values)
    ordered = [keys[i] for i in np.argsort(-strength, kind="stable")]
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(n, len(ordered))).round().astype(int))
    return [ordered[i] for i in picks]


# --------------------------------------------------------------------------- PPC


def pairwise_correlation(
    values: np.ndarray, observed: np.ndarray, *, min_pairs: int = MIN_PAIRS
) -> np.ndarray:
    """Pearson correlations between columns over the rows both observe.

    Parameters
    ----------
    values : numpy.ndarray
        Shape ``(..., n_rows, n_columns)``; entries outside ``observed`` are ignored.
    observed : numpy.ndarray of bool
        Shape ``(n_rows, n_columns)``, shared by every leading index.
    min_pairs : int
        Pairs of columns sharing fewer rows get NaN.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., n_columns, n_columns)``; NaN where undefined.
    """
    observed = np.asarray(observed, dtype=bool)
    m = observed.astype(float)
    x = np.where(observed, np.asarray(values, dtype=float), 0.0)
    xt = np.swapaxes(x, -1, -2)
    n = m.T @ m
    sx = xt @ m  # [a, b]: sum of column a over the rows that observe b (and a)
    sxx = (xt * xt) @ m
    sxy = xt @ x
    sy, syy = np.swapaxes(sx, -1, -2), np.swapaxes(sxx, -1, -2)
    var_x = n * sxx - sx**2
    var_y = n * syy - sy**2
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (n * sxy - sx * sy) / np.sqrt(var_x * var_y)
    tiny = 1e-12 * np.maximum(n, 1) ** 2
    r = np.where((n >= min_pairs) & (var_x > tiny) & (var_y > tiny), r, np.nan)
    return np.clip(r, -1.0, 1.0)


def _thin(n_total: int, max_draws: int | None) -> np.ndarray:
    if max_draws is None or n_total <= max_draws:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, max_draws).round().astype(int))


def replicate_scores(
    dt: xr.DataTree,
    *,
    max_draws: int | None = DEFAULT_MAX_DRAWS,
    seed: int | None = None,
    group: str = "posterior",
) -> xr.DataArray:
    """Replicated standardised scores of the observed cells, simulated from the posterior.

    ``score = intercept + loading * capability (+ factor_loading * area_factor)
    + Normal(0, residual_sd)`` for every observed cell, one replicate per posterior draw.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    max_draws : int, optional
        Use at most this many draws (evenly thinned); None for all.
    seed : int, optional
        Seed of the residual noise; default the fit's seed + 2.
    group : str
        Group holding the draws.

    Returns
    -------
    xarray.DataArray
        Dims ``("sample", "cell")``.
    """
    post = dt[group].to_dataset().stack(sample=SAMPLE_DIMS)
    keep = _thin(post.sizes["sample"], max_draws)
    post = post.isel(sample=keep)
    const = dt["constant_data"]
    b = const["benchmark_index"].values
    ll = const["llm_index"].values
    alpha = post["intercept"].transpose("sample", "benchmark").values
    lam = post["loading"].transpose("sample", "benchmark").values
    sigma = post["residual_sd"].transpose("sample", "benchmark").values
    theta = post["capability"].transpose("sample", "llm").values
    mu = alpha[:, b] + lam[:, b] * theta[:, ll]
    if "factor_loading" in post.data_vars and "area_factor" in post.data_vars:
        keys = list(const["benchmark"].values.astype(str))
        meta = benchmark_metadata(dt)
        factors = list(post["factor"].values.astype(str))
        gamma = post["factor_loading"].transpose("sample", "factor_benchmark")
        eta = post["area_factor"].transpose("sample", "llm", "factor").values
        for j, key in enumerate(gamma["factor_benchmark"].values.astype(str)):
            cells = b == keys.index(key)
            f = factors.index(meta.loc[key, "area"])
            mu[:, cells] += gamma.values[:, [j]] * eta[:, ll[cells], f]
    if seed is None:
        seed = int(dt.attrs.get("seed", 0)) + 2
    rng = np.random.default_rng(seed)
    y = mu + sigma[:, b] * rng.standard_normal(mu.shape)
    return xr.DataArray(y, dims=("sample", "cell"), coords={"cell": const["cell"].values})


def correlation_ppc(
    dt: xr.DataTree,
    *,
    group: str = "posterior_predictive",
    var_name: str = "score",
    ci_prob: float = DEFAULT_CI_PROB,
    max_draws: int | None = DEFAULT_MAX_DRAWS,
    min_pairs: int = MIN_PAIRS,
    seed: int | None = None,
) -> xr.Dataset:
    """Posterior predictive check of the benchmark correlation matrix.

    The statistic is the pairwise-complete Pearson correlation matrix of the standardised
    scores (LLMs x benchmarks, observed cells only). It is computed on the observed data and
    on every replicated dataset: the ``group`` of the fit if present (e.g. its
    ``posterior_predictive``), else replicates simulated from the posterior with
    :func:`replicate_scores`. Replicates keep the observed pattern of missing cells.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit.
    group, var_name : str
        Where the replicated scores are, when the fit has them.
    ci_prob : float
        Probability of the equal-tailed predictive interval of each correlation.
    max_draws : int, optional
        Use at most this many draws (evenly thinned).
    min_pairs : int
        Pairs of benchmarks sharing fewer LLMs are not checked.
    seed : int, optional
        Seed of simulated replicates.

    Returns
    -------
    xarray.Dataset
        Dims ``(benchmark_a, benchmark_b)``: ``observed``, ``replicated_mean``,
        ``replicated_low``, ``replicated_high``, ``p_greater`` = P(replicated >= observed),
        ``inside`` and ``checked`` (each pair once, a < b, with a defined observed value).
        Attrs ``share_inside`` (the share of checked pairs inside their interval),
        ``n_pairs``, ``n_draws``, ``ci_prob``, ``source``.
    """
    const = dt["constant_data"]
    b = const["benchmark_index"].values
    ll = const["llm_index"].values
    keys = const["benchmark"].values.astype(str)
    n_llm, n_bench = const.sizes["llm"], const.sizes["benchmark"]
    observed = np.zeros((n_llm, n_bench), dtype=bool)
    observed[ll, b] = True
    y_obs = np.zeros((n_llm, n_bench))
    y_obs[ll, b] = dt["observed_data"][var_name].values

    if group in dt.children and var_name in dt[group].data_vars:
        rep = dt[group][var_name].stack(sample=SAMPLE_DIMS).transpose("sample", "cell")
        rep = rep.isel(sample=_thin(rep.sizes["sample"], max_draws)).values
        source = group
    else:
        rep = replicate_scores(dt, max_draws=max_draws, seed=seed).values
        source = "simulated from the posterior"
    y_rep = np.zeros((rep.shape[0], n_llm, n_bench))
    y_rep[:, ll, b] = rep

    r_obs = pairwise_correlation(y_obs, observed, min_pairs=min_pairs)
    # In chunks of draws, to bound the temporaries (draws x benchmarks^2 each).
    r_rep = np.empty((len(y_rep), n_bench, n_bench))
    for start in range(0, len(y_rep), 100):
        chunk = y_rep[start : start + 100]
        r_rep[start : start + 100] = pairwise_correlation(chunk, observed, min_pairs=min_pairs)
    tail = (1 - ci_prob) / 2
    with warnings.catch_warnings():  # pairs never defined (too few shared LLMs) give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(r_rep, [tail, 1 - tail], axis=0)
        mean = np.nanmean(r_rep, axis=0)
    p_greater = np.mean(r_rep >= r_obs, axis=0)
    upper = np.triu(np.ones((n_bench, n_bench), dtype=bool), k=1)
    checked = upper & np.isfinite(r_obs) & np.isfinite(low)
    inside = (r_obs >= low) & (r_obs <= high)
    n_pairs = int(checked.sum())
    share = float(inside[checked].mean()) if n_pairs else float("nan")
    dims = ("benchmark_a", "benchmark_b")
    return xr.Dataset(
        {
            "observed": (dims, r_obs),
            "replicated_mean": (dims, mean),
            "replicated_low": (dims, low),
            "replicated_high": (dims, high),
            "p_greater": (dims, p_greater),
            "inside": (dims, inside & checked),
            "checked": (dims, checked),
        },
        coords={"benchmark_a": keys, "benchmark_b": keys},
        attrs={
            "share_inside": share,
            "n_pairs": n_pairs,
            "n_draws": int(rep.shape[0]),
            "ci_prob": ci_prob,
            "source": source,
            "min_pairs": min_pairs,
            "study_name": str(dt.attrs.get("study_name", "fit")),
        },
    )


# --------------------------------------------------------------------------- documents


@dataclass
class Heading:
    """A section heading."""

    text: str
    level: int = 2
    area: str | None = None


@dataclass
class Paragraph:
    """A paragraph of plain text; ``style`` is ``"plain"``, ``"strong"`` or ``"warning"``."""

    text: str
    style: str = "plain"


@dataclass
class Table:
    """A table of plain-text cells; non-empty cells of ``flag_column`` are highlighted."""

    header: list[str]
    rows: list[list[str]]
    flag_column: int | None = None
    align: str = ""


@dataclass
class FigureBlock:
    """A figure saved as PNG (embedded in HTML) and SVG."""

    png: Path
    svg: Path
    caption: str


@dataclass
class Report:
    """A rendered report and what it was made from."""

    markdown: str
    html: str
    figures: dict[str, tuple[Path, Path]]
    table: pd.DataFrame
    ppc: xr.Dataset
    blocks: list = field(default_factory=list, repr=False)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def render_markdown(blocks: Sequence, *, base: str | Path = ".") -> str:
    """Markdown of report blocks; figure links are relative to ``base``."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            if block.style == "warning":
                out.append(f"> ⚠ **{block.text}**")
            elif block.style == "strong":
                out.append(f"**{block.text}**")
            else:
                out.append(block.text)
        elif isinstance(block, Table):
            align = block.align or "l" + "r" * (len(block.header) - 1)
            rule = ["---:" if a == "r" else "---" for a in align]
            lines = [
                "| " + " | ".join(_md_escape(h) for h in block.header) + " |",
                "| " + " | ".join(rule) + " |",
            ]
            for row in block.rows:
                cells = [_md_escape(c) for c in row]
                if block.flag_column is not None and cells[block.flag_column]:
                    cells[block.flag_column] = f"**{cells[block.flag_column]}**"
                lines.append("| " + " | ".join(cells) + " |")
            out.append("\n".join(lines))
        elif isinstance(block, FigureBlock):
            rel = Path(os.path.relpath(block.png, base)).as_posix()
            rel_svg = Path(os.path.relpath(block.svg, base)).as_posix()
            out.append(f"![{block.caption}]({rel})\n\n*{block.caption}* ([SVG]({rel_svg}))")
    return "\n\n".join(out) + "\n"


HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       line-height: 1.45; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; }
th { background: #f3f3f3; text-align: left; }
td.r { text-align: right; font-variant-numeric: tabular-nums; }
td.flag { color: #b00020; font-weight: bold; }
.warning { background: #fde8e8; border: 2px solid #b00020; color: #8a0016; padding: 0.8em;
           font-weight: bold; }
.ok { background: #eaf5ea; border: 1px solid #4a8a4a; padding: 0.8em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
h3 { border-left: 6px solid #999; padding-left: 0.4em; }
"""


def render_html(blocks: Sequence, *, title: str) -> str:
    """Self-contained HTML of report blocks (PNG figures embedded as base64 data URIs)."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            style = ""
            if block.area is not None:
                style = f' style="border-left-color: {area_color(block.area)}"'
            body.append(f"<h{block.level}{style}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            text = html.escape(block.text)
            if block.style == "warning":
                body.append(f'<p class="warning">⚠ {text}</p>')
            elif block.style == "strong":
                body.append(f'<p class="ok"><strong>{text}</strong></p>')
            else:
                body.append(f"<p>{text}</p>")
        elif isinstance(block, Table):
            align = block.align or "l" + "r" * (len(block.header) - 1)
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = []
            for row in block.rows:
                cells = []
                for j, cell in enumerate(row):
                    cls = "r" if align[j] == "r" else ""
                    if j == block.flag_column and cell:
                        cls = "flag"
                    attr = f' class="{cls}"' if cls else ""
                    cells.append(f"<td{attr}>{html.escape(cell)}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            body.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
        elif isinstance(block, FigureBlock):
            data = base64.b64encode(Path(block.png).read_bytes()).decode("ascii")
            caption = html.escape(block.caption)
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------- report


def _fmt(x: float, signed: bool = True) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def separability_rows(table: pd.DataFrame) -> list[list[str]]:
    """Report rows of :func:`report_table`: name, rho, HDI, P(sep.), unexplained, paper, flag."""
    return [
        [
            str(r.display_name),
            _fmt(r.rho_median),
            f"[{_fmt(r.rho_hdi_low)}, {_fmt(r.rho_hdi_high)}]",
            _fmt(r.p_separable, signed=False),
            _fmt(r.unexplained_median, signed=False),
            _fmt(r.baseline_correlation),
            "disagrees" if r.disagrees else "",
        ]
        for r in table.itertuples()
    ]


def _fit_facts(dt: xr.DataTree) -> str:
    meta = benchmark_metadata(dt)
    llms = llm_metadata(dt)
    pops = ", ".join(f"{n} {p}" for p, n in llms["population"].value_counts().sort_index().items())
    config = fit_config(dt)
    settings = json.loads(dt.attrs.get("sampler_settings", "{}"))
    factors = ", ".join(area_label(f) for f in config.factors) or "none (capability only)"
    excluded = len(json.loads(dt.attrs.get("excluded_benchmarks", "[]")))
    n_cells = dt["observed_data"].sizes["cell"]
    n_cap = int((meta["role"] == "capability").sum())
    n_safe = int((meta["role"] == "safety").sum())
    return (
        f"Study {dt.attrs.get('study_name', '?')}: {len(llms)} LLMs ({pops}), "
        f"{n_cap} capability and {n_safe} safety benchmarks ({excluded} excluded), "
        f"{n_cells} observed scores of {len(llms) * len(meta)} cells. "
        f"Model: area factors {factors}; transform {config.transform}; level {config.level}. "
        f"Sampler: {settings.get('sampler', '?')}, {settings.get('chains', '?')} chains x "
        f"{settings.get('draws', '?')} draws, seed {dt.attrs.get('seed', '?')}; "
        f"safetywash {dt.attrs.get('safetywash_version', '?')}."
    )


def _baseline_basis(baseline, caps: tuple[str, ...], meta: pd.DataFrame) -> str:
    """Which capability benchmarks the recomputed baseline rests on, in words."""
    if baseline is None:
        return "capability benchmarks (not computable for this study)"
    if tuple(caps) == PAPER_CAPABILITY_BENCHMARKS:
        return "the paper's 12 capability benchmarks"
    missing = [k for k in PAPER_CAPABILITY_BENCHMARKS if k not in meta.index]
    return (
        f"all {len(caps)} capability benchmarks of the fit (the paper's 12 are not all in "
        f"the fitted study; missing: {', '.join(missing)}), so it can differ from the "
        "paper's numbers"
    )


def fit_label(dt: xr.DataTree) -> str:
    """The study name, plus the model choices that differ from the defaults.

    ``"safetywashing-chat"`` for a default fit, ``"safetywashing-chat_factors-bias"`` with
    a bias factor: the prefix of figure file names, so that fits of one study with
    different models do not overwrite each other's figures.
    """
    config = fit_config(dt)
    parts = [str(dt.attrs.get("study_name", "fit"))]
    if config.factors:
        parts.append("factors-" + "-".join(config.factors))
    if config.transform != "standardize":
        parts.append(config.transform)
    if config.level != "aggregate":
        parts.append(config.level)
    if config.prior_scale != 1.0:
        parts.append(f"prior{config.prior_scale:g}")
    return "_".join(parts)


SEPARABILITY_HEADER = (
    "Benchmark",
    "ρ median",
    "{ci:.0%} HDI",
    "P(|ρ| < {tau:g})",
    "unexplained 1 − ρ²",
    "paper baseline",
    "baseline vs HDI",
)


def build_report(
    dt: xr.DataTree,
    *,
    figures_dir: str | Path = "figures",
    report_dir: str | Path = ".",
    tau: float = DEFAULT_TAU,
    ci_prob: float = DEFAULT_CI_PROB,
    benchmarks: Sequence[str] | None = None,
    max_draws: int | None = DEFAULT_MAX_DRAWS,
) -> Report:
    """Make every figure of a fit and the report text.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit (:func:`safetywash.inference.fitfile.load_fit`).
    figures_dir : str or pathlib.Path
        Where the figures go, as ``<study name>_<what>.png`` and ``.svg``.
    report_dir : str or pathlib.Path
        Where the Markdown will live (its figure links are relative to it).
    tau, ci_prob : float
        Separability threshold and interval probability.
    benchmarks : sequence of str, optional
        Benchmark keys for the scores-vs-capability panels; default
        :func:`default_benchmarks`.
    max_draws : int, optional
        Draws used by the correlation PPC.

    Returns
    -------
    Report
    """
    figures_dir = Path(figures_dir)
    name = str(dt.attrs.get("study_name", "fit"))
    stem = fit_label(dt)
    meta = benchmark_metadata(dt)
    benchmarks = list(benchmarks) if benchmarks else default_benchmarks(dt)
    unknown = [b for b in benchmarks if b not in meta.index]
    if unknown:
        raise KeyError(f"benchmark(s) {unknown} are not in this fit; known: {list(meta.index)}")
    baseline, baseline_caps = paper_baseline_of(dt)
    table = report_table(dt, tau=tau, ci_prob=ci_prob, baseline=baseline)
    figures: dict[str, tuple[Path, Path]] = {}

    def save(fig, what: str) -> tuple[Path, Path]:
        figures[what] = save_figure(fig, figures_dir / f"{stem}_{what}")
        return figures[what]

    diagnostics = diagnostics_of(dt)
    blocks: list = [Heading(f"Safetywashing report: {name}", 1)]
    if diagnostics.trustworthy:
        blocks.append(Paragraph(f"Diagnostics: {diagnostics.verdict()}", "strong"))
    else:
        blocks.append(Paragraph(f"Diagnostics: {diagnostics.verdict()}", "warning"))
    blocks.append(Paragraph(_fit_facts(dt)))

    # Separability.
    safety = table[table["role"] == "safety"]
    n_base = int(safety["baseline_correlation"].notna().sum())
    blocks += [
        Heading("Separability by safety area"),
        Paragraph(
            "ρ is a benchmark's correlation with latent capability on the standardised, "
            "oriented scale (higher = safer); P(separable) = P(|ρ| < "
            f"{tau:g} | data); unexplained = 1 − ρ², the share of variance capability does "
            f"not explain (posterior median). Intervals are {ci_prob:.0%} highest-density "
            "intervals. The paper baseline is the oriented Spearman correlation with the "
            "first principal component of "
            + _baseline_basis(baseline, baseline_caps, meta)
            + "; 'disagrees' marks a baseline outside the HDI."
        ),
        Paragraph(
            f"{len(safety)} safety benchmarks: {int((safety['p_separable'] > 0.5).sum())} "
            f"more likely separable than not, {int((safety['p_separable'] < 0.05).sum())} "
            f"confidently entangled with capability (P(separable) < 0.05); the baseline "
            f"disagrees with the posterior for {int(safety['disagrees'].sum())} of {n_base}."
        ),
    ]
    header = [h.format(ci=ci_prob, tau=tau) if "{" in h else h for h in SEPARABILITY_HEADER]
    areas = area_loadings(dt, ci_prob=ci_prob)
    for area, part in table.groupby("area", sort=False):
        capability = bool((part["role"] == "capability").all())
        label = "Capability benchmarks (reference)" if capability else area_label(area)
        blocks.append(Heading(label, 3, area=str(area)))
        facts = [f"{len(part)} benchmarks"]
        if areas.data_vars and str(area) in areas["area"].values:
            a = areas.sel(area=str(area))
            facts.append(
                f"area mean capability loading {_fmt(float(a.mean_loading_median))} "
                f"[{_fmt(float(a.mean_loading_hdi_low))}, "
                f"{_fmt(float(a.mean_loading_hdi_high))}]"
            )
        facts.append(f"{int((part['p_separable'] > 0.5).sum())} with P(separable) > 0.5")
        blocks.append(Paragraph("; ".join(facts) + "."))
        blocks.append(Table(header, separability_rows(part), flag_column=6, align="lrrrrrl"))

    forest = plot_rho_forest(dt, tau=tau, ci_prob=ci_prob, baseline=baseline)
    png, svg = save(forest, "rho_forest_by_area")
    blocks.append(
        FigureBlock(
            png,
            svg,
            f"Capability correlation ρ of every safety benchmark by area (median, 50% and "
            f"{ci_prob:.0%} HDI); grey band: separable region |ρ| < {tau:g}; crosses: paper "
            "baseline.",
        )
    )

    # Capability.
    blocks.append(Heading("LLM capability"))
    png, svg = save(plot_capability_ranking(dt, ci_prob=ci_prob), "capability_ranking")
    blocks.append(
        FigureBlock(
            png, svg, f"LLMs by posterior capability θ (median, {ci_prob:.0%} HDI), by population."
        )
    )
    cap = capability_summary(dt, ci_prob=ci_prob).to_dataframe()
    rows = []
    for pop, part in cap.groupby("population", sort=True):
        part = part.sort_values("capability_median", ascending=False)
        for rank, r in enumerate(part.itertuples(), start=1):
            rows.append(
                [
                    str(pop),
                    str(rank),
                    str(r.display_name),
                    _fmt(r.capability_median),
                    f"[{_fmt(r.capability_hdi_low)}, {_fmt(r.capability_hdi_high)}]",
                ]
            )
    blocks.append(
        Table(["population", "rank", "LLM", "θ median", f"{ci_prob:.0%} HDI"], rows, align="lrlrr")
    )

    # Scores against capability.
    blocks.append(Heading("Scores against capability"))
    png, svg = save(
        plot_scores_vs_capability(dt, benchmarks, ci_prob=ci_prob), "scores_vs_capability"
    )
    names = ", ".join(str(meta.loc[b, "display_name"]) for b in benchmarks)
    blocks.append(
        FigureBlock(
            png,
            svg,
            f"Standardised oriented scores against posterior capability for {names}, with the "
            f"posterior median and {ci_prob:.0%} band of intercept + loading × θ.",
        )
    )

    # PPC.
    ppc = correlation_ppc(dt, ci_prob=ci_prob, max_draws=max_draws)
    blocks += [
        Heading("Posterior predictive check: benchmark correlations"),
        Paragraph(
            f"{ppc.attrs['share_inside']:.1%} of {ppc.attrs['n_pairs']} pairwise benchmark "
            f"correlations (pairs sharing at least {ppc.attrs['min_pairs']} LLMs) lie inside "
            f"their {ci_prob:.0%} posterior predictive interval (a model that reproduces the "
            f"correlation structure puts about {ci_prob:.0%} or more inside); replicates "
            f"{ppc.attrs['source']}, {ppc.attrs['n_draws']} draws.",
            "strong",
        ),
    ]
    png, svg = save(plot_correlation_ppc(ppc, dt), "correlation_ppc")
    blocks.append(
        FigureBlock(
            png,
            svg,
            "Observed pairwise correlations of the standardised scores against their "
            "replicated distribution; right: per-pair posterior predictive p-values.",
        )
    )

    # Loadings.
    blocks.append(Heading("Loadings"))
    if fit_config(dt).factors and "factor_loading" in dt["posterior"].data_vars:
        png, svg = save(plot_loadings_heatmap(dt), "loadings_heatmap")
        blocks.append(
            FigureBlock(
                png,
                svg,
                "Posterior median loadings on capability and on each area factor (blank: "
                "fixed at zero).",
            )
        )
    else:
        blocks.append(
            Paragraph(
                "One-factor fit (capability only): no loadings heatmap. Fit with area factors "
                "(scripts/fit.py --factors AREA ...) to see capability and area loadings side "
                "by side."
            )
        )

    markdown = render_markdown(blocks, base=report_dir)
    page = render_html(blocks, title=f"Safetywashing report: {name}")
    return Report(markdown, page, figures, table, ppc, blocks)


def write_report(
    dt: xr.DataTree, out_dir: str | Path, *, figures_dir: str | Path = "figures", **kwargs
) -> tuple[Path, Path, Report]:
    """Build the report of a fit and write ``report.md`` and ``report.html`` into ``out_dir``.

    Keyword arguments go to :func:`build_report`.

    Returns
    -------
    markdown_path, html_path, report
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(dt, figures_dir=figures_dir, report_dir=out_dir, **kwargs)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(report.markdown, encoding="utf-8")
    html_path.write_text(report.html, encoding="utf-8")
    return md_path, html_path, report


__all__ = [
    "AREA_COLORS",
    "Report",
    "baseline_disagrees",
    "build_report",
    "correlation_ppc",
    "default_benchmarks",
    "fit_label",
    "pairwise_correlation",
    "paper_baseline_of",
    "replicate_scores",
    "report_table",
    "write_report",
]
