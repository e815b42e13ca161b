"""A deep ensemble killed (SIGKILL) in the middle of an epoch and resumed ends bit-identical to an uninterrupted
run: one checkpoint holds every member and the optimiser state of all of them."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import torch
from train_helpers import REPO, assert_runs_end_identical, fit_command, run_fit, subprocess_env, wait_for_stall

OVERRIDES = ("method.name=ensemble", "method.options={members: 3}")


def test_ensemble_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path, tiny_config: Path) -> None:
    reference, interrupted, marker = tmp_path / "reference", tmp_path / "interrupted", tmp_path / "stalled"
    run_fit(tiny_config, reference, overrides=OVERRIDES)
    # 9 batches an epoch, a checkpoint every 2 batches: stalling at the 14th batch leaves the step-12 file (mid-epoch 1)
    env = subprocess_env(GFLOWOUT_TEST_STALL_AT="14", GFLOWOUT_TEST_STALL_MARKER=str(marker))
    process = subprocess.Popen(fit_command(tiny_config, interrupted, overrides=OVERRIDES), env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_stall(process, marker)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    at_kill = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)
    assert (at_kill["global_step"], at_kill["epoch"]) == (12, 1)
    assert any(key.startswith("method.others.1.") for key in at_kill["state_dict"]), "not every member is saved"

    run_fit(tiny_config, interrupted, resume=True, overrides=OVERRIDES)

    assert_runs_end_identical(reference, interrupted, global_step=27)
