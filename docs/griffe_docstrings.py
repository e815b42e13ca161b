"""Griffe extension of the documentation build (named in mkdocs.yml; not a page).

The package's docstrings describe parameters and fields as plain `name: what it is` lines (with indented
continuation lines), not as Google or numpy sections. Rendered as Markdown those lines would run together
into one paragraph, so this extension turns each run of them into a bullet list, `name` in code font.
Nothing else of a docstring changes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# "beta: ...", "posterior_lr, logz_lr, prior_lr: ...": lower-case identifiers at the start of an unindented line
FIELD = re.compile(r"^([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*): (\S.*)$")


def fields_as_lists(text: str) -> str:
    """Rewrite unindented `name: description` lines as Markdown list items (continuations stay indented)."""
    out: list[str] = []
    in_list = False
    for line in text.splitlines():
        match = FIELD.match(line)
        if match:
            if not in_list and out and out[-1].strip():
                out.append("")  # a list must follow a blank line
            names = ", ".join(f"`{name}`" for name in match.group(1).split(", "))
            out.append(f"- {names}: {match.group(2)}")
            in_list = True
            continue
        if in_list and line.strip() and not line.startswith(" "):
            out.append("")  # an unindented line after the list ends it
            in_list = False
        elif not line.strip():
            in_list = False
        out.append(line)
    return "\n".join(out)


class FieldLists(griffe.Extension):
    """Apply `fields_as_lists` to every docstring of the loaded package."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fields_as_lists(obj.docstring.value)
