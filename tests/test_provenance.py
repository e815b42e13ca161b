"""Result files say which code made them: the version, and the git commit of the source tree when there is one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import gflowout
from gflowout import provenance


def test_the_version_and_the_commit_of_this_checkout() -> None:
    recorded = provenance.code_provenance()
    assert recorded["gflowout_version"] == gflowout.__version__
    try:
        head = subprocess.run(
            ["git", "-C", str(provenance.PACKAGE_DIR), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an installed copy records no commit)")
    assert recorded["commit"] is not None and recorded["commit"].split("+")[0] == head


def test_a_folder_outside_git_records_no_commit_and_a_changed_file_is_dirty(tmp_path: Path) -> None:
    assert provenance._git_commit(tmp_path) is None
    run = lambda *args: subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)  # noqa: E731
    try:
        run("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / "a.py").write_text("x = 1\n")
    run("add", "a.py")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one")
    clean = provenance._git_commit(tmp_path)
    assert clean is not None and len(clean) == 40
    (tmp_path / "a.py").write_text("x = 2\n")
    assert provenance._git_commit(tmp_path) == clean + "+dirty"
