"""DDP over gloo with 2 CPU processes for a multi-optimiser method (GFlowOut: backbone, posterior + log Z, prior).

test_ddp_gloo.py covers method "none" (one optimiser). Here each rank samples its own masks, so
the per-rank losses differ; DDP must still average every group's gradients so that the three
optimisers take the same step on both ranks. The harness all-gathers a sha256 of every
parameter and buffer from each rank into results.json ("rank_weight_digests"): the two must be
equal. To keep that comparison from being vacuous, every group's weights must have moved from
their seeded initial values, and rank 0's digest must be the digest of the saved last.ckpt.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.helpers.train import run_fit

OVERRIDES = (
    "method.name=gflowout",
    "method.options={}",
    "trainer.checkpoint_every_n_steps=0",
    "trainer.max_epochs=2",
    "data.batch_size=32",
    "trainer.devices=2",
    "trainer.strategy=ddp",
)
GROUPS = ("backbone", "posterior", "prior")


def _initial_method(config: Path):
    """The seeded, untrained method of the same run (seed_everything + build, as fit does)."""
    import lightning.pytorch as pl
    from train_standins import SyntheticDataModule

    from gflowout.config import load_config
    from gflowout.training.build import build_method_for

    cfg = load_config(config, list(OVERRIDES))
    pl.seed_everything(cfg.seed, verbose=False)
    return build_method_for(cfg, SyntheticDataModule.num_classes, SyntheticDataModule.input_shape, dataset_size=280)


def test_gflowout_ddp_ranks_end_with_identical_weights(tmp_path: Path, tiny_config: Path) -> None:
    from gflowout.train import weight_digest

    out = tmp_path / "ddp"
    run_fit(tiny_config, out, overrides=OVERRIDES, timeout=180)
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "gflowout" and results["world_size"] == 2
    # 280 training examples, 140 per rank, 32 per rank-batch: 5 batches x 2 epochs, each stepping 3 optimisers
    assert results["batches"] == 10
    assert results["global_step"] == 10 * len(GROUPS)

    digests = results["rank_weight_digests"]
    assert len(digests) == 2 and len(set(digests)) == 1, f"the ranks ended with different weights: {digests}"

    method = _initial_method(tiny_config)
    assert sorted(name for name, params in method.param_groups().items() if params) == sorted(GROUPS)
    initial = {k: v.clone() for k, v in method.state_dict().items()}
    saved = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    method.load_state_dict({k.removeprefix("method."): v for k, v in saved.items()})
    assert weight_digest(method) == digests[0], "rank 0's digest is not that of the saved last.ckpt"

    names = {id(p): n for n, p in method.named_parameters()}
    for group, params in method.param_groups().items():
        moved = max(float((p.detach() - initial[names[id(p)]]).abs().max()) for p in params)
        assert moved > 1e-4, (
            f"group {group!r} did not train under DDP (max change {moved:.3g}): equal digests prove nothing"
        )
