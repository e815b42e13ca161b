"""MkDocs hooks of the gflowout site (named in mkdocs.yml; not a page).

* `<!-- gflowout-help: COMMAND ... -->` in a page becomes the `--help` text of that command, generated
  from the package's own argument parser at build time, so the command-line page cannot drift.
* `<!-- gflowout-reports -->` becomes the list of committed benchmark reports: every
  `results/<name>/report/` of the repository is copied into the site (its HTML page and figures) and
  linked; without one the page says so, and the build passes either way.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HELP_MARKER = re.compile(r"<!--\s*gflowout-help:?\s*([a-z \-]*?)\s*-->")
REPORTS_MARKER = "<!-- gflowout-reports -->"
HELP_WIDTH = "86"  # argparse wraps to $COLUMNS: fixed, so the page does not depend on the terminal


def _parser() -> argparse.ArgumentParser:
    src = str(REPO / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    from gflowout.cli.main import build_parser

    return build_parser()


def subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every command path, from () for `gflowout` itself to ("data", "fetch"), with its parser."""
    found = {prefix: parser}
    for action in parser._actions:  # argparse has no public accessor for sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.update(subcommands(child, prefix + (name,)))
    return found


def help_text(command: tuple[str, ...]) -> str:
    """The --help output of `gflowout COMMAND`, wrapped at a fixed width."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        parsers = subcommands(_parser())
        if command not in parsers:
            known = sorted(" ".join(path) for path in parsers)
            raise ValueError(f"docs: no command 'gflowout {' '.join(command)}'; known: {known}")
        return parsers[command].format_help().rstrip()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def report_folders() -> list[Path]:
    """The committed reports: results/<name>/report/ folders holding a report.html."""
    return sorted(path.parent for path in (REPO / "results").glob("*/report/report.html"))


def on_files(files: Any, config: Any) -> Any:
    """Copy each committed report's files (not its Markdown, which is no site page) under reports/<name>/."""
    from mkdocs.structure.files import File

    for folder in report_folders():
        name = folder.parent.name
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix != ".md":
                uri = f"reports/{name}/{path.relative_to(folder).as_posix()}"
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill the help and report markers of a page."""

    def help_block(match: re.Match[str]) -> str:
        command = tuple(match.group(1).split())
        return f"```text\n$ gflowout {' '.join(command + ('--help',))}\n{help_text(command)}\n```"

    markdown = HELP_MARKER.sub(help_block, markdown)
    if REPORTS_MARKER in markdown:
        markdown = markdown.replace(REPORTS_MARKER, reports_markdown(page))
    return markdown


def reports_markdown(page: Any) -> str:
    """A list of links to the copied reports, relative to `page`, or a note that there is none yet."""
    folders = report_folders()
    if not folders:
        return (
            "No benchmark report is committed in this version of the repository yet. When one is (under "
            "`results/<name>/report/`), the site build copies it here and links it."
        )
    depth = page.file.src_uri.count("/")
    up = "../" * depth
    lines = []
    for folder in folders:
        name = folder.parent.name
        lines.append(
            f"- [{report_title(folder) or name}]({up}reports/{name}/report.html): `results/{name}/report/` in the "
            "repository"
        )
    return "\n".join(lines)


def report_title(folder: Path) -> str | None:
    """The first heading of the report's Markdown (e.g. "gflowout: transfer from noisy pre-training"), if any."""
    markdown = folder / "report.md"
    if not markdown.is_file():
        return None
    for line in markdown.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip() or None
    return None
