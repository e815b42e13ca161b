"""The README: its set-up commands, its library example (runs as written and beats chance) and its benchmark
table and the figures its reading of the tests quotes (the committed report's numbers)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MNIST_REPORT = README.parent / "results" / "mnist" / "report" / "report.md"  # the committed evidence report


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_two_setup_commands_first() -> None:
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]


def test_readme_example_runs_and_beats_chance() -> None:
    from gflowout.data.datasets import load_split
    from gflowout.data.sources import dataset_status  # noqa: F401  (the data layer is importable)
    from gflowout.errors import DataError

    try:
        load_split("mnist", "test")
    except DataError as error:
        pytest.skip(f"real MNIST not fetched ({error}); `make test` fetches it")
    blocks = readme_python_blocks()
    assert blocks, "the README lost its python example"
    result = subprocess.run([sys.executable, "-c", blocks[0]], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    match = re.search(r"accuracy ([0-9.]+), mean mutual information ([0-9.]+)", result.stdout)
    assert match, result.stdout
    accuracy, mutual_information = float(match.group(1)), float(match.group(2))
    assert accuracy > 0.6  # chance is 0.1
    assert mutual_information > 0.0  # stochastic masks disagree somewhere


def _markdown_table(text: str, header_start: str) -> tuple[list[str], list[list[str]]]:
    """The header and body rows of the first Markdown table whose header line starts with `header_start`."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(header_start)), None)
    assert start is not None, f"no table whose header starts with {header_start!r}"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().replace("**", "") for cell in line.strip().strip("|").split("|")])
    header = [cell.strip() for cell in lines[start].strip().strip("|").split("|")]
    return header, rows


def test_readme_benchmark_table_is_the_committed_reports() -> None:
    """Every cell of the README's evidence table equals the committed MNIST report's summary cell, so the README
    cannot keep numbers the report no longer shows (regenerate the report, then copy its summary)."""
    readme_header, readme_rows = _markdown_table(
        README.read_text(), "| method | seeds | accuracy | NLL | ECE | rotated"
    )
    report_header, report_rows = _markdown_table(MNIST_REPORT.read_text(), "| method | seeds | accuracy ↑")
    names = {"GFlowOut": "gflowout", "ID-GFlowOut": "id_gflowout", "MC dropout": "mc_dropout"}
    names |= {"Concrete": "concrete", "Contextual": "contextual", "none": "none", "deep ensemble": "ensemble"}
    column_of = {  # the README's column: the report's
        "seeds": "seeds",
        "accuracy": "accuracy ↑",
        "NLL": "NLL ↓",
        "ECE": "ECE (15 bins) ↓",
        "rotated accuracy": "rotated accuracy ↑",
        "rotated NLL": "rotated NLL ↓",
        "corrupted accuracy": "corrupted accuracy (mean) ↑",
        "AUROC Fashion-MNIST": "AUROC fashion-mnist ↑",
    }
    assert readme_header[0] == "method" and set(readme_header[1:]) <= set(column_of), readme_header
    columns = [column_of[name] for name in readme_header[1:]]
    report = {row[0]: dict(zip(report_header, row)) for row in report_rows}
    assert readme_rows, "the README lost its benchmark table"
    for row in readme_rows:
        assert row[0] in names, f"README method {row[0]!r} has no report name here"
        method = names[row[0]]
        assert row[1:] == [report[method][column] for column in columns], f"README row {row[0]!r} is stale"
    assert {names[row[0]] for row in readme_rows} == {m for m in report if not m.endswith("+ TS")}


def test_readme_test_count_is_the_committed_reports() -> None:
    """The README's tests-over-seeds paragraph names the size of the report's family of tests: a report with more
    seeds or methods has another count, and the README's reading must be redone with it."""
    report = MNIST_REPORT.read_text()
    in_report = re.search(r"Corrected for all (\d+) tests of this table", report)
    in_readme = re.search(r"Corrected for the table's (\d+) tests", README.read_text())
    assert in_report and in_readme, "the report's or the README's Holm sentence is gone"
    assert in_readme.group(1) == in_report.group(1)


def _main_significance_block(report: str) -> str:
    """The report's first significance table (GFlowOut against the baselines) with its note and "In words"."""
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|") and "; p = " in line), None)
    assert start is not None, "the report lost its significance table"
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("Each cell:")), None)
    assert end is not None, 'the report\'s significance table lost its note ("Each cell: ...")'
    return "\n".join(lines[start : end + 1])


def test_readme_test_figures_are_the_committed_reports() -> None:
    """Every difference and p-value the README's tests-over-seeds section quotes is a cell of the committed report's
    significance table (the difference rounded as the README writes it), and its smallest Holm-adjusted p is the
    report's: a regenerated report with other numbers makes the hand-written reading fail here."""
    readme = README.read_text()
    section = readme.split("### Tests over seeds", 1)[1].split("\n### ", 1)[0]
    section = " ".join(section.split())
    quoted = re.findall(r"([+-]\d+\.\d+),? \(?p = (\d\.\d+)", section)
    assert len(quoted) >= 5, f"the README's tests-over-seeds section quotes few figures: {quoted}"
    block = _main_significance_block(MNIST_REPORT.read_text())
    cells = re.findall(r"\(([+-]\d+\.\d+); p = (\d\.\d+)", block)
    for difference, p_value in quoted:
        decimals = len(difference.split(".")[1])
        assert any(p == p_value and f"{float(d):+.{decimals}f}" == difference for d, p in cells), (
            f"the README quotes ({difference}, p = {p_value}), which no cell of the report's significance table shows"
        )
    smallest = re.search(r"smallest adjusted p is (\d\.\d+)", section)
    adjusted = re.findall(r"Holm-adjusted p = (\d\.\d+)", block)
    if smallest:
        assert adjusted and smallest.group(1) == min(adjusted, key=float), (smallest.group(1), adjusted)
