"""`AtomicCheckpointIO`: Lightning's checkpoint I/O with atomic saves and weights-only loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

from gflowout.atomic import atomic_torch_save
from gflowout.checkpoint import read_checkpoint


class AtomicCheckpointIO(CheckpointIO):
    """Lightning CheckpointIO plugin: atomic saves, `weights_only=True` loads with clear errors."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return read_checkpoint(path, map_location=map_location if map_location is not None else "cpu")

    def remove_checkpoint(self, path: str | Path) -> None:
        Path(path).unlink(missing_ok=True)
