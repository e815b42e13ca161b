"""Wall time per training epoch, read back from a run folder's TensorBoard event files.

Lightning's TensorBoard logger writes every logged value with its wall-clock time, and the harness logs the
current epoch beside them, so the events already hold when each epoch ended, even for runs whose result
files record only the total training time of their last start. An epoch's duration is the time between the
last event of the previous epoch and its own last event, taken only when both are in the same event file: a
run stopped and resumed starts a new file, so the hours it spent stopped never count as an epoch.

The event files are TFRecord files of `Event` protocol buffers (the format tensorboardX writes); records are
decoded with tensorboardX's own message classes. A record cut short at the end of a file (a run killed while
writing) ends the reading of that file.
"""

from __future__ import annotations

import statistics
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EpochTiming", "epoch_durations", "epoch_timing", "read_scalars"]

_HEADER = struct.Struct("<QI")  # record length, masked CRC of the length
_FOOTER_BYTES = 4  # masked CRC of the data


def read_scalars(path: str | Path) -> list[tuple[float, int, str, float]]:
    """Every scalar in one event file as (wall time in seconds, step, tag, value), in file order."""
    from tensorboardX.proto import event_pb2

    data = Path(path).read_bytes()
    scalars: list[tuple[float, int, str, float]] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, _ = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        end = start + length
        if end + _FOOTER_BYTES > len(data):
            break  # a record cut short: the writer was stopped mid-record
        event = event_pb2.Event.FromString(data[start:end])
        for value in event.summary.value:
            if value.WhichOneof("value") == "simple_value":
                scalars.append((event.wall_time, int(event.step), value.tag, float(value.simple_value)))
        offset = end + _FOOTER_BYTES
    return scalars


def epoch_durations(run_folder: str | Path) -> dict[int, float]:
    """Seconds each epoch took (epoch index -> seconds), from the event files under `run_folder` (any depth).

    Epochs whose start is not in the same event file as their end (the first epoch of each file) are left out.
    """
    durations: dict[int, float] = {}
    for path in sorted(Path(run_folder).rglob("events.out.tfevents.*")):
        last_time: dict[int, float] = {}
        for wall_time, _step, tag, value in read_scalars(path):
            if tag == "epoch":
                epoch = int(value)
                last_time[epoch] = max(wall_time, last_time.get(epoch, wall_time))
        for epoch, end in last_time.items():
            if epoch - 1 in last_time:
                durations[epoch] = end - last_time[epoch - 1]
    return durations


@dataclass(frozen=True)
class EpochTiming:
    """Summary of a run's epoch durations: how many were measured, their median, mean and total (seconds)."""

    epochs: int
    median_s: float
    mean_s: float
    total_s: float

    def to_dict(self) -> dict[str, float]:
        return {"epochs": self.epochs, "median_s": self.median_s, "mean_s": self.mean_s, "total_s": self.total_s}


def epoch_timing(run_folder: str | Path) -> EpochTiming | None:
    """The run's epoch durations summarised, or None when its folder holds no epoch events."""
    durations = list(epoch_durations(run_folder).values())
    if not durations:
        return None
    return EpochTiming(
        epochs=len(durations),
        median_s=statistics.median(durations),
        mean_s=statistics.fmean(durations),
        total_s=sum(durations),
    )
