"""Shared helpers of the harness tests: run the stand-in training in a fresh, single-threaded process.

A plain module (not conftest.py), so that test files import it by a name no other test folder uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent
TINY_CONFIG = REPO / "configs" / "tiny_synthetic.yaml"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment of a child run: the stand-ins importable, one thread (bitwise-reproducible CPU maths)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(STANDINS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.update(extra)
    return env


def fit_command(config: Path, out: Path, resume: bool = False, overrides: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, str(STANDINS / "fit_standin.py"), str(config), str(out), "resume" if resume else "fresh", *overrides]


def run_fit(config: Path, out: Path, resume: bool = False, overrides: tuple[str, ...] = (), timeout: float = 120) -> None:
    """Train in a child process; fail the test with its output when it fails."""
    done = subprocess.run(fit_command(config, out, resume, overrides), env=subprocess_env(), capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, f"training failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
