"""DDP over gloo with 2 CPU processes: it runs, the ranks end with identical weights, and it matches one process.

Method "none" (no dropout) makes the comparison deterministic: with rank r taking every second index
of the epoch's permutation, the two ranks' j-th batches (32 each) are exactly the one process's
j-th batch (64), and DDP's average of the two per-rank mean gradients equals the one process's mean
gradient. The only difference left is float summation order, so after 15 SGD steps the weights
agree to 1e-5 (absolute) and the validation/test metrics to 1e-5; measured max weight difference
is ~1e-7.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.helpers.train import run_fit

COMMON = (
    "method.name=none",
    "method.options={}",
    "optim.backbone.optimizer=sgd",
    "optim.backbone.lr=0.2",
    "optim.backbone.momentum=0.9",
    "trainer.checkpoint_every_n_steps=0",
)
WEIGHT_TOLERANCE = 1e-5
METRIC_TOLERANCE = 1e-5


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path: Path, tiny_config: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    run_fit(tiny_config, one, overrides=COMMON + ("data.batch_size=64",))
    run_fit(
        tiny_config,
        two,
        overrides=COMMON + ("data.batch_size=32", "trainer.devices=2", "trainer.strategy=ddp"),
        timeout=180,
    )

    results_one = json.loads((one / "results.json").read_text())
    results_two = json.loads((two / "results.json").read_text())
    assert results_two["world_size"] == 2 and results_one["world_size"] == 1
    digests = results_two["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1], "the ranks ended with different weights"
    assert results_one["global_step"] == results_two["global_step"] == 15  # 5 global batches x 3 epochs

    weights_one = torch.load(one / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    weights_two = torch.load(two / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    worst = max(float((weights_one[k] - weights_two[k]).abs().max()) for k in weights_one)
    assert worst <= WEIGHT_TOLERANCE, f"DDP weights differ from one process by {worst:.3g}"
    moved = max(float((weights_one[k] - w0).abs().max()) for k, w0 in _initial_weights(tiny_config).items())
    assert moved > 100 * WEIGHT_TOLERANCE, "training did not move the weights: the comparison would be vacuous"

    # every test example counted once (not once per rank), and the same metrics
    assert results_one["test"]["count"] == results_two["test"]["count"] == 120
    for name in ("accuracy", "nll", "ece", "brier"):
        assert abs(results_one["test"][name] - results_two["test"][name]) <= METRIC_TOLERANCE, name
    assert abs(results_one["best_val_nll"] - results_two["best_val_nll"]) <= METRIC_TOLERANCE


def _initial_weights(config: Path) -> dict[str, torch.Tensor]:
    """The seeded initial weights of the same model (seed_everything + build), for the 'weights moved' check."""
    import lightning.pytorch as pl
    from train_standins import SyntheticDataModule

    from gflowout.config import load_config
    from gflowout.training.build import build_method_for

    cfg = load_config(config, list(COMMON))
    pl.seed_everything(cfg.seed, verbose=False)
    method = build_method_for(cfg, SyntheticDataModule.num_classes, SyntheticDataModule.input_shape, dataset_size=280)
    return {f"method.{k}": v for k, v in method.state_dict().items()}


def test_a_nan_on_one_rank_stops_every_rank_promptly(tmp_path: Path, tiny_config: Path) -> None:
    """Rank 1 alone gets a NaN loss: both ranks raise (no rank left waiting in a collective until a timeout)."""
    import subprocess

    from tests.helpers.train import REPO, fit_command, subprocess_env

    overrides = (
        "method.name=train_standins:TinyMC",
        "method.options={nan_at_call: 3, nan_rank: 1}",
        "trainer.devices=2",
        "trainer.strategy=ddp",
    )
    done = subprocess.run(
        fit_command(tiny_config, tmp_path / "run", overrides=overrides),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "another rank got a non-finite loss at step 2" in output  # rank 0
    assert "non-finite loss in group(s) ['backbone']" in output  # rank 1, with the values


def test_an_evaluation_split_smaller_than_the_process_count_is_a_clear_error(tmp_path: Path, tiny_config: Path) -> None:
    """One validation example for two processes left rank 1 an empty loader: Lightning stopped with 'zero length'
    and rank 0 with a gloo 'connection closed'; now both say what to change."""
    import subprocess

    from tests.helpers.train import REPO, fit_command, subprocess_env

    overrides = ("data.val_fraction=0.0025", "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=1")
    done = subprocess.run(
        fit_command(tiny_config, tmp_path / "run", overrides=overrides),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode != 0
    assert "an evaluation split has 1 example(s) for 2 processes" in done.stdout + done.stderr
