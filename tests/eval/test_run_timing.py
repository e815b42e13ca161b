"""Epoch wall times read back from TensorBoard event files (gflowout.eval.run_timing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gflowout.eval.run_timing import epoch_durations, epoch_timing, read_scalars


def write_events(folder: Path, epochs: dict[int, list[float]], start: float) -> Path:
    """An event file with an 'epoch' scalar (and a loss) at the given offsets from `start` for each epoch."""
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(logdir=str(folder))
    step = 0
    for epoch, offsets in epochs.items():
        for offset in offsets:
            writer.add_scalar("loss", 1.0 / (step + 1), global_step=step, walltime=start + offset)
            writer.add_scalar("epoch", float(epoch), global_step=step, walltime=start + offset)
            step += 1
    writer.close()
    (path,) = folder.glob("events.out.tfevents.*")
    return path


def test_scalars_come_back_with_their_times_steps_and_values(tmp_path: Path) -> None:
    path = write_events(tmp_path / "tb" / "version_0", {0: [1.0, 2.5]}, start=1000.0)
    scalars = read_scalars(path)
    assert [(t, s, tag) for t, s, tag, _ in scalars] == [
        (1001.0, 0, "loss"),
        (1001.0, 0, "epoch"),
        (1002.5, 1, "loss"),
        (1002.5, 1, "epoch"),
    ]
    assert scalars[2][3] == pytest.approx(0.5)


def test_epoch_durations_skip_the_time_a_run_spent_stopped(tmp_path: Path) -> None:
    write_events(tmp_path / "tb" / "version_0", {0: [5, 10], 1: [15, 20], 2: [28, 30]}, start=0.0)
    # resumed much later in a new file: epoch 3's start is not in this file, so it is not measured
    write_events(tmp_path / "tb" / "version_1", {3: [1, 4], 4: [10, 16]}, start=100_000.0)
    assert epoch_durations(tmp_path) == {1: 10.0, 2: 10.0, 4: 12.0}
    timing = epoch_timing(tmp_path)
    assert timing is not None and timing.epochs == 3 and timing.median_s == 10.0 and timing.total_s == 32.0


def test_a_record_cut_short_ends_the_file_without_an_error(tmp_path: Path) -> None:
    path = write_events(tmp_path / "tb", {0: [1.0], 1: [3.0], 2: [7.0]}, start=0.0)
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # the last record (epoch 2's 'epoch' scalar) loses its tail
    assert epoch_durations(tmp_path) == {1: 2.0}


def test_a_folder_without_events_has_no_timing(tmp_path: Path) -> None:
    assert epoch_timing(tmp_path) is None
