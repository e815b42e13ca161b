"""A TensorBoard logger that never overwrites its own event file.

Lightning closes the TensorBoard writer when `fit` ends; the `test` that `gflowout train` runs next opens a new
one in the same folder. tensorboardX names an event file after the current second and the host name and opens it
for writing from scratch, so a writer opened within the same second as the last one (a short run, or a quick
start of the test) truncated the training's events. This logger gives every writer after the first its own
file-name suffix, so each phase keeps its own file.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger

__all__ = ["PhaseTensorBoardLogger"]


class PhaseTensorBoardLogger(TensorBoardLogger):
    """`TensorBoardLogger` whose writer, once finalized, reopens under a new file name (".1", ".2", ...)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writers_closed = 0

    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._experiment is not None:
            self._experiment = None  # the closed writer is dropped; the next log opens a new one
            self._writers_closed += 1
            self._kwargs["filename_suffix"] = f".{self._writers_closed}"
