"""trainer.val_every_n_epochs: validation (and so the best checkpoint) only after every k-th epoch, training untouched;
a run stopped between validations and resumed ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from gflowout.config import load_config
from gflowout.training.resume import settings_digest
from tests.helpers.train import TINY_CONFIG, assert_runs_end_identical, run_fit


def _validated_epochs(run: Path) -> list[int]:
    rows = [row for path in sorted((run / "logs").glob("version_*/metrics.csv")) for row in csv.DictReader(path.open())]
    return sorted({int(row["epoch"]) for row in rows if row.get("val/nll")})


def test_validation_every_second_epoch_leaves_training_unchanged(tmp_path: Path) -> None:
    every, sparse = tmp_path / "every", tmp_path / "sparse"
    run_fit(TINY_CONFIG, every, overrides=("trainer.max_epochs=4",))
    run_fit(TINY_CONFIG, sparse, overrides=("trainer.max_epochs=4", "trainer.val_every_n_epochs=2"))
    assert _validated_epochs(every) == [0, 1, 2, 3]
    assert _validated_epochs(sparse) == [1, 3]
    digests = [json.loads((run / "results.json").read_text())["rank_weight_digests"] for run in (every, sparse)]
    assert digests[0] == digests[1]  # validation draws from a private stream: the training is the same


def test_a_run_resumed_between_validations_is_bit_identical(tmp_path: Path) -> None:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    sparse = ("trainer.val_every_n_epochs=2",)
    run_fit(TINY_CONFIG, whole, overrides=(*sparse, "trainer.max_epochs=4"))
    run_fit(TINY_CONFIG, resumed, overrides=(*sparse, "trainer.max_epochs=3"))  # stops after an unvalidated epoch
    run_fit(TINY_CONFIG, resumed, resume=True, overrides=(*sparse, "trainer.max_epochs=4"))
    steps = torch_load_step(whole)
    assert_runs_end_identical(whole, resumed, steps)


def torch_load_step(run: Path) -> int:
    import torch

    return int(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"])


def test_the_default_is_left_out_of_digests_so_older_results_stay_valid() -> None:
    base = load_config(TINY_CONFIG, [])
    plain = base.to_dict()
    without_key = json.loads(json.dumps(plain))
    del without_key["trainer"]["val_every_n_epochs"]  # a config written before the key existed
    assert settings_digest(config=plain) == settings_digest(config=without_key)
    sparse = load_config(TINY_CONFIG, ["trainer.val_every_n_epochs=5"]).to_dict()
    assert settings_digest(config=sparse) != settings_digest(config=plain)


def test_a_resumed_run_records_the_training_time_of_every_session(tmp_path: Path) -> None:
    import torch

    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run_fit(TINY_CONFIG, whole, overrides=("trainer.max_epochs=3",))
    first = json.loads((whole / "results.json").read_text())
    assert 0 < first["train_time_s"] <= first["fit_time_s"]  # training, without the test pass and the set-up
    assert first["train_time_all_sessions"] is True
    assert first["train_peak_rss_mb"] > 50  # the training process's resident memory: interpreter, torch, data
    run_fit(TINY_CONFIG, resumed, overrides=("trainer.max_epochs=3",))
    saved = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]["Timer"]
    three = saved["time_elapsed"]["train"]  # what the checkpoint carries into the next session
    run_fit(TINY_CONFIG, resumed, resume=True, overrides=("trainer.max_epochs=4",))  # one more epoch
    four = json.loads((resumed / "results.json").read_text())
    assert four["train_time_all_sessions"] is True
    assert three < four["train_time_s"] < three + four["fit_time_s"]  # the saved time plus this session's


def test_a_run_resumed_from_a_checkpoint_without_the_timer_says_its_time_is_partial(tmp_path: Path) -> None:
    import torch

    run = tmp_path / "old"
    run_fit(TINY_CONFIG, run, overrides=("trainer.max_epochs=2",))
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    del checkpoint["callbacks"]["Timer"]  # as gflowout wrote checkpoints before it kept the time in them
    torch.save(checkpoint, last)
    run_fit(TINY_CONFIG, run, resume=True, overrides=("trainer.max_epochs=3",))
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 3 and results["train_time_all_sessions"] is False


def test_max_time_limits_the_run_through_our_timer(tmp_path: Path) -> None:
    from datetime import timedelta

    from lightning.pytorch.callbacks import Timer

    from gflowout.train import build_trainer

    trainer = build_trainer(load_config(TINY_CONFIG), tmp_path, max_time="00:00:02:00")
    timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
    assert len(timers) == 1 and timers[0]._duration == timedelta(minutes=2).total_seconds()
