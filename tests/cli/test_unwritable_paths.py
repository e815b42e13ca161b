"""Unwritable output and data paths fail up front with one line naming the path and the fix, never a traceback
(a new user's read-only --root / --out / --json got a raw OSError, some of them after the work was done)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gflowout.cli.main import main
from gflowout.errors import OutputError
from gflowout.writable import writable_file, writable_folder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def under_a_file(tmp_path: Path) -> Path:
    """A path that cannot be created: its parent is a plain file (root ignores chmod, not this)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "inside"


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "fetch", "fashion-mnist", "--root", "{path}"],
        ["train", "--config", str(REPO / "configs" / "tiny_mnist.yaml"), "--out", "{path}/run"],
        ["report", str(REPO / "configs"), "--out", "{path}"],
        ["benchmark", "--config", str(REPO / "configs" / "bench_tiny.yaml"), "--out", "{path}"],
        ["evaluate", "{path}/run", "--json", "{path}/x.json"],
        ["active-learning", "--config", str(REPO / "configs" / "active_tiny.yaml"), "--out", "{path}"],
        ["transfer", "--config", str(REPO / "configs" / "transfer_tiny.yaml"), "--out", "{path}"],
    ],
)
def test_every_command_refuses_an_unwritable_path_in_one_line(
    argv: list[str], under_a_file: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main([part.replace("{path}", str(under_a_file)) for part in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(under_a_file) in err and ("a file, not a folder" in err or "is a file" in err)


def test_the_probe_names_the_reason_and_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = writable_folder(tmp_path / "new" / "deep", "run folder", "--out")
    assert folder.is_dir() and list(folder.iterdir()) == []
    with pytest.raises(OutputError, match="is a file, not a folder; choose another --out"):
        writable_folder(Path(__file__), "run folder", "--out")
    with pytest.raises(OutputError, match="is a folder; give --json a file name"):
        writable_file(tmp_path, "JSON file", "--json")


def test_a_read_only_file_system_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match="the file system is read-only; choose a writable --root"):
        writable_folder(tmp_path, "data folder", "--root")


def test_any_other_os_error_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import gflowout.eval.report as report

    def fails(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/some/where/report.md")

    monkeypatch.setattr(report, "write_report", fails)
    code = main(["report", str(tmp_path), "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 2
    assert "/some/where/report.md: Permission denied" in err and err.count("\n") == 1
