"""A deep ensemble in the harness: killed (SIGKILL) in the middle of an epoch and resumed, it ends bit-identical to
an uninterrupted run (one checkpoint holds every member and the optimiser state of all of them); under 2-process
DDP (gloo) the same code runs, the ranks agree, and it matches one process with the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import torch

from tests.helpers.train import REPO, assert_runs_end_identical, fit_command, run_fit, subprocess_env, wait_for_stall

OVERRIDES = ("method.name=ensemble", "method.options={members: 3}")


def test_ensemble_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path, tiny_config: Path) -> None:
    reference, interrupted, marker = tmp_path / "reference", tmp_path / "interrupted", tmp_path / "stalled"
    run_fit(tiny_config, reference, overrides=OVERRIDES)
    # 9 batches an epoch, a checkpoint every 2 batches: stalling at the 14th batch leaves the step-12 file (mid-epoch 1)
    env = subprocess_env(GFLOWOUT_TEST_STALL_AT="14", GFLOWOUT_TEST_STALL_MARKER=str(marker))
    process = subprocess.Popen(
        fit_command(tiny_config, interrupted, overrides=OVERRIDES),
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
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


def test_ensemble_two_process_ddp_matches_one_process(tmp_path: Path, tiny_config: Path) -> None:
    """As test_ddp_gloo for "none": SGD, every rank half of each global batch, so only summation order differs."""
    common = (*OVERRIDES, "optim.backbone.optimizer=sgd", "optim.backbone.lr=0.2", "trainer.checkpoint_every_n_steps=0")
    one, two = tmp_path / "one", tmp_path / "two"
    run_fit(tiny_config, one, overrides=(*common, "data.batch_size=64"))
    run_fit(
        tiny_config,
        two,
        overrides=(*common, "data.batch_size=32", "trainer.devices=2", "trainer.strategy=ddp"),
        timeout=180,
    )
    results_one = json.loads((one / "results.json").read_text())
    results_two = json.loads((two / "results.json").read_text())
    assert results_two["world_size"] == 2 and results_two["val_samples"] == 3
    assert results_two["rank_weight_digests"][0] == results_two["rank_weight_digests"][1]
    weights_one = torch.load(one / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    weights_two = torch.load(two / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert any(key.startswith("method.others.1.") for key in weights_two)
    worst = max(float((weights_one[k] - weights_two[k]).abs().max()) for k in weights_one)
    assert worst <= 1e-5, f"DDP weights differ from one process by {worst:.3g}"
    assert abs(results_one["test"]["nll"] - results_two["test"]["nll"]) <= 1e-5
