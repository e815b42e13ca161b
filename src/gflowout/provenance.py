"""Which code made a result: the gflowout version and, when it runs from a git checkout, the commit (with
"+dirty" when tracked files of the package differ from it), recorded in every result file so that a report can
say what produced its numbers."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def code_provenance() -> dict[str, str | None]:
    """{"gflowout_version": the package version, "commit": the source tree's git commit or None (an installed
    wheel, no git, or git refusing the folder)}; computed once per process."""
    from gflowout import __version__

    return {"gflowout_version": __version__, "commit": _git_commit(PACKAGE_DIR)}


def _git_commit(folder: Path) -> str | None:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return commit + ("+dirty" if status else "")
