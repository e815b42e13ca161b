"""fit() guards: a NaN loss stops training, per-group gradient clipping holds, another model's folder is refused."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from train_standins import SyntheticDataModule

from gflowout.atomic import atomic_torch_save
from gflowout.checkpoint import checkpoint_metadata
from gflowout.config import load_config
from gflowout.errors import CheckpointError, NonFiniteLossError
from gflowout.train import fit
from gflowout.training.build import build_method_for
from tests.helpers.train import TINY_CONFIG

QUIET = ("trainer.enable_progress_bar=false", "trainer.max_epochs=1")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs on one torch thread (the fixture is in tests/conftest.py)."""


def test_nan_loss_raises_naming_the_group(tmp_path: Path) -> None:
    config = load_config(TINY_CONFIG, [*QUIET, "method.name=train_standins:TinyMC", "method.options={nan_at_call: 3}"])
    with pytest.raises(NonFiniteLossError, match=r"group\(s\) \['backbone'\]"):
        fit(config, tmp_path / "run")
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 2  # the steps before the NaN were checkpointed; the NaN step was not taken
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())


def _first_step_change(tmp_path: Path, clip: str) -> float:
    overrides = [
        *QUIET,
        "method.name=none",
        "method.options={}",
        "optim.backbone.optimizer=sgd",
        "optim.backbone.lr=1.0",
        "optim.backbone.momentum=0.0",
        f"optim.backbone.clip_norm={clip}",
        "trainer.max_steps=1",
        "trainer.checkpoint_every_n_steps=1",
    ]
    config = load_config(TINY_CONFIG, overrides)
    pl.seed_everything(config.seed, verbose=False)
    initial = build_method_for(
        config, SyntheticDataModule.num_classes, SyntheticDataModule.input_shape, 280
    ).state_dict()
    out = fit(config, tmp_path / f"clip-{clip}")
    after = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert after.keys() == {f"method.{k}" for k in initial}
    return float(torch.sqrt(sum(((after[f"method.{k}"] - v) ** 2).sum() for k, v in initial.items())))


@pytest.mark.filterwarnings("ignore:.*could not find the monitored key")  # max_steps=1 stops before validation
def test_group_gradient_clipping_bounds_the_sgd_step(tmp_path: Path) -> None:
    # plain SGD with lr 1: the update is the (clipped) gradient, so its norm is at most clip_norm
    unclipped = _first_step_change(tmp_path, "null")
    clipped = _first_step_change(tmp_path, "0.001")
    assert unclipped > 0.01
    assert clipped == pytest.approx(0.001, rel=1e-3)


def test_resume_of_another_models_folder_is_refused(tmp_path: Path) -> None:
    config = load_config(TINY_CONFIG, QUIET)
    other = load_config(TINY_CONFIG, [*QUIET, "method.name=none"])
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    atomic_torch_save({"state_dict": {}, "gflowout": checkpoint_metadata(other, 4, (1, 6, 6), 280)}, last)
    with pytest.raises(CheckpointError, match=r"holds method='none'.*method='mc_dropout' was asked"):
        fit(config, tmp_path / "run", resume=True)


def test_an_out_path_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    from gflowout.errors import ConfigError

    path = tmp_path / "a-file"
    path.write_text("keep me")
    with pytest.raises(ConfigError, match="is a file, not a run folder"):
        fit(load_config(TINY_CONFIG, []), path)
    assert path.read_text() == "keep me"
