"""A run folder reached by another path on resume (moved, a symlink, scratch mounted elsewhere) keeps its best
validation score: Lightning dropped it when the recorded folder differed, and the next validation replaced
best.ckpt whatever its score."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from tests.helpers.train import TINY_CONFIG, run_fit


def test_a_moved_run_keeps_its_best_score_on_resume(tmp_path: Path) -> None:
    first = tmp_path / "first"
    sparse = ("trainer.val_every_n_epochs=1",)
    run_fit(TINY_CONFIG, first, overrides=(*sparse, "trainer.max_epochs=2"))
    state = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    (best_state,) = [v for k, v in state["callbacks"].items() if k.startswith("ModelCheckpoint")]
    score = float(best_state["best_model_score"])
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    shutil.move(str(first), str(moved))
    run_fit(TINY_CONFIG, moved, resume=True, overrides=(*sparse, "trainer.max_epochs=3"))
    after = torch.load(moved / "checkpoints" / "last.ckpt", weights_only=True)
    (best_after,) = [v for k, v in after["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert float(best_after["best_model_score"]) <= score  # the old best still counts (it was None: lost)
    assert best_after["dirpath"] == str(moved / "checkpoints")
    assert Path(best_after["best_model_path"]).parent == moved / "checkpoints"


def test_the_recorded_paths_are_rewritten_into_the_current_folder(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    from gflowout.train import BestCheckpoint

    old = "/old/place/run/checkpoints"
    state = {
        "monitor": "val/nll",
        "best_model_score": torch.tensor(0.25),
        "best_model_path": f"{old}/best.ckpt",
        "current_score": torch.tensor(0.3),
        "dirpath": old,
        "best_k_models": {f"{old}/best.ckpt": torch.tensor(0.25)},
        "kth_best_model_path": f"{old}/best.ckpt",
        "kth_value": torch.tensor(0.25),
        "last_model_path": "",
    }
    new = str(tmp_path / "checkpoints")
    plain = ModelCheckpoint(dirpath=new, filename="best", monitor="val/nll")
    plain.load_state_dict(dict(state))
    assert plain.best_model_score is None  # Lightning's own behaviour: the score is lost
    ours = BestCheckpoint(dirpath=new, filename="best", monitor="val/nll")
    ours.load_state_dict(dict(state))
    assert float(ours.best_model_score) == 0.25 and float(ours.kth_value) == 0.25
    assert ours.best_model_path == f"{new}/best.ckpt" and list(ours.best_k_models) == [f"{new}/best.ckpt"]
    assert ours.state_key == plain.state_key  # files written with either class resume with the other
