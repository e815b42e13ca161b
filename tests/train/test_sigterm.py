"""SIGTERM (SLURM preemption and time limits, `kill`) stops `gflowout train` with status 143, not 0.

Lightning turns SIGTERM into a SystemExit without a code at the next batch boundary, so the shell and a
job scheduler used to see success, with no results.json. The command must say how to continue, and
continuing with --resume must finish the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.train import REPO, run_fit, subprocess_env, wait_for_stall


def test_sigterm_exits_143_with_the_way_to_resume(tmp_path: Path, tiny_config: Path) -> None:
    out, marker, release = tmp_path / "run", tmp_path / "stalled", tmp_path / "release"
    env = subprocess_env(
        GFLOWOUT_TEST_STALL_AT="5", GFLOWOUT_TEST_STALL_MARKER=str(marker), GFLOWOUT_TEST_STALL_RELEASE=str(release)
    )
    command = [sys.executable, "-m", "gflowout.cli.main", "train", "--config", str(tiny_config), "--out", str(out)]
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_stall(process, marker)
        os.kill(process.pid, signal.SIGTERM)
        time.sleep(0.5)
        release.write_text("go")  # the stalled batch finishes; Lightning raises at the batch boundary
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, f"exit status {process.returncode}:\n{stderr[-3000:]}"
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    assert not (out / "results.json").exists() and (out / "checkpoints" / "last.ckpt").exists()

    run_fit(tiny_config, out, resume=True)
    assert json.loads((out / "results.json").read_text())["epochs"] == 3
