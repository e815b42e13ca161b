"""The training's TensorBoard events survive the test phase's writer, even within the same second."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch.loggers import TensorBoardLogger

from gflowout.eval.run_timing import read_scalars
from gflowout.training.loggers import PhaseTensorBoardLogger


@pytest.fixture
def one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event file is named within the same second (tensorboardX names files by the second)."""
    import tensorboardX.event_file_writer as event_file_writer

    monkeypatch.setattr(event_file_writer.time, "time", lambda: 1_800_000_000.25)


def fit_then_test(logger: TensorBoardLogger) -> None:
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.finalize("success")  # what Lightning does when fit ends
    logger.log_metrics({"test/accuracy": 0.5}, step=1)  # the test phase, at once
    logger.finalize("success")


def scalars(folder: Path) -> list[tuple[str, float]]:
    events = folder.rglob("events.out.tfevents.*")
    return sorted((tag, value) for path in events for _, _, tag, value in read_scalars(path))


def test_a_writer_reopened_within_the_same_second_keeps_the_first_ones_events(tmp_path: Path, one_second) -> None:
    fit_then_test(PhaseTensorBoardLogger(tmp_path, name="tb", default_hp_metric=False))
    assert scalars(tmp_path) == [("test/accuracy", 0.5), ("train/loss", 1.0)]
    assert len(list(tmp_path.rglob("events.out.tfevents.*"))) == 2


def test_the_plain_logger_loses_them(tmp_path: Path, one_second) -> None:
    """The failure PhaseTensorBoardLogger exists for: the second writer truncates the first one's file."""
    fit_then_test(TensorBoardLogger(tmp_path, name="tb", default_hp_metric=False))
    assert scalars(tmp_path) == [("test/accuracy", 0.5)]
