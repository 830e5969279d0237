"""The report as blocks (headings, paragraphs, tables, figures) and its Markdown and HTML.

:func:`render_markdown` links the figures relative to the Markdown file's folder;
:func:`render_html` is self-contained (PNG figures embedded as base64 data URIs).
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from safetywash.report.style import area_color


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

    @property
    def alignment(self) -> str:
        """One letter per column: ``l`` (left) or ``r`` (right; default after the first)."""
        return self.align or "l" + "r" * (len(self.header) - 1)


@dataclass
class FigureBlock:
    """A figure saved as PNG (embedded in HTML) and SVG."""

    png: Path
    svg: Path
    caption: str


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _markdown_table(block: Table) -> str:
    rule = ["---:" if a == "r" else "---" for a in block.alignment]
    lines = [
        "| " + " | ".join(_md_escape(h) for h in block.header) + " |",
        "| " + " | ".join(rule) + " |",
    ]
    for row in block.rows:
        cells = [_md_escape(c) for c in row]
        if block.flag_column is not None and cells[block.flag_column]:
            cells[block.flag_column] = f"**{cells[block.flag_column]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown_block(block, base: str | Path) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Paragraph):
        if block.style == "warning":
            return f"> ⚠ **{block.text}**"
        if block.style == "strong":
            return f"**{block.text}**"
        return block.text
    if isinstance(block, Table):
        return _markdown_table(block)
    if isinstance(block, FigureBlock):
        rel = Path(os.path.relpath(block.png, base)).as_posix()
        rel_svg = Path(os.path.relpath(block.svg, base)).as_posix()
        return f"![{block.caption}]({rel})\n\n*{block.caption}* ([SVG]({rel_svg}))"
    raise TypeError(f"not a report block: {block!r}")


def render_markdown(blocks: Sequence, *, base: str | Path = ".") -> str:
    """Markdown of report blocks; figure links are relative to ``base``."""
    return "\n\n".join(_markdown_block(block, base) for block in blocks) + "\n"


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


def _html_table(block: Table) -> str:
    align = block.alignment
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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _html_block(block) -> str:
    if isinstance(block, Heading):
        style = ""
        if block.area is not None:
            style = f' style="border-left-color: {area_color(block.area)}"'
        return f"<h{block.level}{style}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        text = html.escape(block.text)
        if block.style == "warning":
            return f'<p class="warning">⚠ {text}</p>'
        if block.style == "strong":
            return f'<p class="ok"><strong>{text}</strong></p>'
        return f"<p>{text}</p>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, FigureBlock):
        data = base64.b64encode(Path(block.png).read_bytes()).decode("ascii")
        caption = html.escape(block.caption)
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    raise TypeError(f"not a report block: {block!r}")


def render_html(blocks: Sequence, *, title: str) -> str:
    """Self-contained HTML of report blocks (PNG figures embedded as base64 data URIs)."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(_html_block(block) for block in blocks)
        + "\n</body>\n</html>\n"
    )
