"""Packaging: the version is written once (`gflowout.__version__`) and everything that reports it agrees."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

import gflowout
from gflowout.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_reads_the_version_from_the_package() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^dynamic = \["version"\]', project, flags=re.M), "pyproject must not hold a version of its own"
    assert not re.search(r"^version\s*=", project, flags=re.M)
    assert re.search(r'^version = \{ attr = "gflowout.__version__" \}', text, flags=re.M)
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", gflowout.__version__)


def test_installed_metadata_agrees_with_the_package() -> None:
    try:
        installed = importlib.metadata.version("gflowout")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gflowout is not installed (run from a source tree on PYTHONPATH)")
    assert installed == gflowout.__version__


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gflowout {gflowout.__version__}"


def test_ci_lints_before_testing() -> None:
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make ")]
    assert commands == ["make lint", "make test", "make docs"]
