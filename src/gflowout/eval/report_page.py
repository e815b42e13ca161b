"""The two faces of a report, written side by side: report.md and report.html, each figure embedded or linked.

Every report (`gflowout.eval.report`, the downstream reports) builds its parts once, a Markdown line list and
an HTML part list, and writes them here. The HTML page embeds each figure as base64 by default, so that the one
file can be sent or attached on its own; with `embed=False` it links `figures/*.png` instead (as report.md
does), a page a tenth the size that must stay beside its figures/ folder, which keeps a report committed to a
repository from storing every figure twice. Both files are written atomically.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from gflowout.atomic import atomic_write_text
from gflowout.eval.tables import inline_html

PAGE_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1400px;margin:auto;padding:1em 1.5em;color:#222;"
    "line-height:1.4}"
    "h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;margin-top:1.6em}h3{font-size:1.05em;margin-bottom:0.3em}"
    "table{border-collapse:collapse;margin:0.4em 0;font-size:0.8em}"
    "td,th{border:1px solid #bbb;padding:3px 5px;text-align:right;white-space:nowrap}"
    "th{background:#eee;white-space:normal;vertical-align:bottom}td.text{text-align:left}"
    "span.se{font-size:0.85em;color:#555}"
    "th:first-child{text-align:left}div.wide{overflow-x:auto}tbody tr:nth-child(even){background:#f7f7f7}"
    "table.settings td{text-align:left}p.note{font-size:0.85em;color:#444;max-width:60em}"
    "code{background:#f0f0f0;padding:0 3px;border-radius:3px}"
    "figure{margin:1.2em 0}figcaption{font-size:0.85em;color:#444;max-width:60em}"
    "img{max-width:100%;border:1px solid #ddd}"
)


def figure_markdown(caption: str, path: Path, out_dir: Path) -> list[str]:
    """The Markdown lines of one figure: the image, linked relative to the report folder, and its caption."""
    return [f"![{caption}]({path.relative_to(out_dir).as_posix()})", "", f"*{caption}*", ""]


def figure_html(caption: str, path: Path, out_dir: Path, embed: bool = True) -> str:
    """One figure as an HTML <figure>: the PNG inline as base64 (`embed`) or linked relative to `out_dir`."""
    if embed:
        source = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    else:
        source = html.escape(path.relative_to(out_dir).as_posix())
    return (
        f'<figure><img alt="{html.escape(caption)}" src="{source}">'
        f"<figcaption>{inline_html(caption)}</figcaption></figure>"
    )


def write_page(out_dir: Path, title: str, markdown: list[str], page: list[str]) -> Path:
    """Write report.md (the lines joined) and report.html (the parts in one styled page) to `out_dir`, each
    atomically; returns the HTML page's path."""
    atomic_write_text(out_dir / "report.md", "\n".join(markdown))
    return atomic_write_text(
        out_dir / "report.html",
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{PAGE_CSS}</style></head><body>{''.join(page)}</body></html>",
    )
