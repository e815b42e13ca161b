"""A run stopped mid-epoch by trainer.max_steps and resumed ends bit-identical to an uninterrupted one,
on one process and on 2 DDP processes (gloo).

GFlowOut (stochastic masks, three optimisers) on the synthetic stand-in, global batch 64: 5 batches per
epoch, 3 epochs, with a random augmentation in the collate drawn from torch's global RNG (as CIFAR's
crop+flip). The interrupted run stops after 7 batches (mid-epoch 1) with no periodic checkpoints, so its
last.ckpt is the one written after the stopping batch, then resumes to the end. Under DDP each rank's
masks come from a stream seeded by (seed, step, rank) at every step and each batch's augmentation from
one seeded by (seed, epoch, batch, rank); the shard order is a function of the epoch; the model and
optimiser states come from the checkpoint. So every tensor of the final checkpoint must be equal
(torch.equal). This once failed twice over: the epoch-end checkpoint of the cut-short epoch made the
resume skip its remaining 3 batches, and rank 1 resumed its augmentation draws from an RNG state that
no checkpoint held.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers.train import assert_runs_end_identical, run_fit

GROUPS = 3  # GFlowOut's optimisers: Lightning's global step counts 3 per batch
COMMON = (
    "method.name=gflowout",
    "method.options={generator_hidden: [8]}",
    "trainer.max_epochs=3",
    "trainer.checkpoint_every_n_steps=0",
)
AUGMENT = {
    "GFLOWOUT_TEST_AUGMENT": "1"
}  # the stand-in's collate adds noise from torch's global RNG, as CIFAR's crop+flip
LAYOUTS = {
    "one_process": ("data.batch_size=64",),
    "ddp_two_processes": ("data.batch_size=32", "trainer.devices=2", "trainer.strategy=ddp"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_run_stopped_mid_epoch_by_max_steps_and_resumed_matches_uninterrupted(
    tmp_path: Path, tiny_config: Path, layout: str
) -> None:
    overrides = COMMON + LAYOUTS[layout]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    run_fit(tiny_config, reference, overrides=overrides, timeout=180, **AUGMENT)
    run_fit(tiny_config, interrupted, overrides=overrides + ("trainer.max_steps=7",), timeout=180, **AUGMENT)
    stopped = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)
    assert (stopped["global_step"], stopped["epoch"]) == (GROUPS * 7, 1), "not the planned mid-epoch stop"

    run_fit(tiny_config, interrupted, resume=True, overrides=overrides, timeout=180, **AUGMENT)

    assert_runs_end_identical(reference, interrupted, global_step=GROUPS * 15)
