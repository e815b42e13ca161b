"""A run killed with SIGKILL in the middle of an epoch and resumed ends exactly like an uninterrupted run.

GFlowOut on the synthetic stand-in: three optimisers (log Z with its own lr), a beta schedule that
changes every epoch and a multistep lr schedule on the backbone, stochastic masks, shuffled batches.
Equality is exact (torch.equal), on one CPU thread.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from tests.helpers.train import REPO, assert_runs_end_identical, fit_command, run_fit, subprocess_env, wait_for_stall

# 9 batches per epoch, a step checkpoint every 2 batches. Stalling at the 14th training batch (13 done)
# leaves the step-12 checkpoint (mid-epoch 1: batches 10..18); at the 10th (9 done), the end-of-epoch-0 one.
# "in_validation": a step checkpoint every 3 batches, which falls on the epoch's last batch, and a kill in
# epoch 0's validation: the last file must be the step-6 one (mid-epoch), not one written after the last
# batch but before the validation (Lightning resumes such a file as "epoch done" and skips that validation).
CASES = {
    "mid_epoch": (14, 12, 1, "train", 2),
    "epoch_end": (10, 9, 0, "train", 2),
    "in_validation": (1, 6, 0, "val", 3),
}
GROUPS = 3  # GFlowOut's optimisers: Lightning's global_step counts 3 per batch
OVERRIDES = (
    "method.name=gflowout",
    "method.options={beta: {initial: 0.01, factor: 10.0, every: 1}, generator_hidden: [8]}",
    "optim.backbone.schedule={kind: multistep, milestones: [1, 2], gamma: 0.5}",
)


def _kill_at(config: Path, out: Path, marker: Path, stall_at: int, loader: str, overrides: tuple[str, ...]) -> None:
    variable = "GFLOWOUT_TEST_STALL_AT" if loader == "train" else "GFLOWOUT_TEST_STALL_VAL_AT"
    env = subprocess_env(**{variable: str(stall_at)}, GFLOWOUT_TEST_STALL_MARKER=str(marker))
    process = subprocess.Popen(
        fit_command(config, out, overrides=overrides),
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


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reference = tmp_path_factory.mktemp("reference") / "run"
    run_fit(Path(__file__).resolve().parents[2] / "configs" / "tiny_synthetic.yaml", reference, overrides=OVERRIDES)
    return reference


@pytest.mark.parametrize("case", sorted(CASES))
def test_sigkill_then_resume_matches_uninterrupted(
    tmp_path: Path, tiny_config: Path, reference_run: Path, case: str
) -> None:
    stall_at, step_at_kill, epoch_at_kill, loader, every = CASES[case]
    overrides = (*OVERRIDES, f"trainer.checkpoint_every_n_steps={every}")  # saving more or less often changes no value
    reference, interrupted = reference_run, tmp_path / "interrupted"
    _kill_at(tiny_config, interrupted, tmp_path / "stalled", stall_at, loader, overrides)
    assert not (interrupted / "results.json").exists()
    at_kill = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)
    assert (at_kill["global_step"], at_kill["epoch"]) == (GROUPS * step_at_kill, epoch_at_kill), (
        "not the planned checkpoint"
    )
    done_in_epoch = at_kill["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"]
    assert (done_in_epoch < 9) == (case != "epoch_end")

    run_fit(tiny_config, interrupted, resume=True, overrides=overrides)

    assert_runs_end_identical(reference, interrupted, global_step=GROUPS * 27)
    final_res = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)
    assert float(final_res["state_dict"]["method.beta"]) == pytest.approx(1.0)  # 0.01 x 10^2 at epoch 2
