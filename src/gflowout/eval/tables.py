"""Report tables and their rendering as Markdown and HTML.

A `Table` is plain text cells plus the positions of the cells to set in bold; `table_markdown` and
`table_html` render it. Text written for the report (notes, captions) may hold `code` spans and
**bold** spans; `inline_html` turns those into <code> / <strong>, so no Markdown is left in the page.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
STACK_ABOVE = 130  # characters in the widest cells of all columns together: wider tables stack their cells
_MEAN_SE = re.compile(r"^(\S+) (± \S+)(.*)$")
_VERDICT = re.compile(r"^(better|worse|indistinguishable|n/a) (\(.*\))$")
_NUMBER = re.compile(r"^([-+−<]\s?)?[0-9.]|^-$")


@dataclass
class Table:
    """One report table: a title, a header row, body rows of text cells and a note printed under it.

    bold: (row, column) positions of body cells to set in bold (e.g. the best mean of a column).
    """

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    bold: set[tuple[int, int]] = field(default_factory=set)


def inline_html(text: str) -> str:
    """Escape `text` for HTML, rendering its `code` spans as <code> and **bold** spans as <strong>."""
    escaped = html.escape(text)
    escaped = _CODE.sub(r"<code>\1</code>", escaped)
    return _BOLD.sub(r"<strong>\1</strong>", escaped)


def table_markdown(table: Table) -> str:
    """The table as a Markdown section: a level-3 title, a pipe table and the note."""

    def escaped(text: str) -> str:  # a literal "|" (as in P(accurate | certain)) would split the cell
        return text.replace("|", "\\|")

    def cell(row: int, column: int, text: str) -> str:
        text_md = escaped(text)
        return f"**{text_md}**" if (row, column) in table.bold and text not in ("", "-") else text_md

    lines = [
        f"### {table.title}",
        "",
        "| " + " | ".join(escaped(h) for h in table.header) + " |",
        "|" + "|".join("---" for _ in table.header) + "|",
    ]
    lines += [
        "| " + " | ".join(cell(r, c, text) for c, text in enumerate(row)) + " |" for r, row in enumerate(table.rows)
    ]
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines) + "\n"


def width(table: Table) -> int:
    """The characters of a table's widest cell in each column, added up: how wide it renders on one line."""
    return sum(max(len(text) for text in column) for column in zip(table.header, *table.rows))


def table_html(table: Table) -> str:
    """The table as an HTML section: <h3> title, <table> (bold cells as <strong>) and the note as <p>.

    A wide table (its widest cells, column by column, adding up to more than `STACK_ABOVE` characters) puts
    each standard error under its mean and each verdict over its numbers, so it fits a page.
    """
    stacked = width(table) > STACK_ABOVE

    def cell(row: int, column: int, text: str) -> str:
        content = inline_html(text)
        if stacked:  # two short lines instead of one wide one: "mean" over "± SE", a verdict over its numbers
            content = _MEAN_SE.sub(r'\1<br><span class="se">\2</span>\3', content)
            content = _VERDICT.sub(r'\1<br><span class="se">\2</span>', content)
        if (row, column) in table.bold and text not in ("", "-"):
            content = f"<strong>{content}</strong>"
        return f"<td>{content}</td>" if _NUMBER.match(text) else f'<td class="text">{content}</td>'

    head = "".join(f"<th>{inline_html(h)}</th>" for h in table.header)
    body = "".join(
        "<tr>" + "".join(cell(r, c, text) for c, text in enumerate(row)) + "</tr>" for r, row in enumerate(table.rows)
    )
    note = f'<p class="note">{inline_html(table.note)}</p>' if table.note else ""
    return (
        f'<h3>{inline_html(table.title)}</h3><div class="wide"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>{note}"
    )
