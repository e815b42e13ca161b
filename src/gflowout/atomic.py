"""Atomic file writes: a file either exists complete, in its new version, or keeps its previous content.

Every write fills a temporary file `.tmp-<name>.*` in the target's folder, flushes and fsyncs it, renames it over
the target with `os.replace` (atomic on POSIX), then fsyncs the folder so that the rename itself survives a crash.
A write that raises removes its temporary; a process killed mid-write leaves the previous file intact plus, at
worst, a stray temporary, which the next write of the same file removes once it is an hour old.

Checkpoints, result files, data stamps and the shifted-split cache all go through this one module.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMPORARY_PREFIX = ".tmp-"
STALE_TEMPORARY_SECONDS = 3600  # a temporary untouched this long belongs to a write that was killed


def atomic_write(path: str | Path, write: Callable[[io.BufferedWriter], Any]) -> Path:
    """Write a file atomically: `write(handle)` fills a temporary file that then replaces `path`.

    Args:
        path: the file to write; its folder is created when missing.
        write: fills the binary handle it is given (its return value is ignored).

    Returns:
        `path` as a Path. The file gets the mode a plain `open()` would give it (0666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f"{TEMPORARY_PREFIX}{path.name}.", dir=path.parent)
    try:
        # mkstemp makes the file 0600 whatever the umask; give it the mode a plain open() would (results, checkpoints
        # and data files readable by the group on a shared cluster, as Lightning's own logs are)
        if hasattr(os, "fchmod"):
            os.fchmod(handle, 0o666 & ~_current_umask())
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(path.parent)
    _remove_stale_temporaries(path)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    return atomic_write(path, lambda stream: stream.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, payload: Any, indent: int = 2, trailing_newline: bool = True) -> Path:
    """Write JSON with sorted keys atomically; one-element tensors become numbers and Paths strings."""
    text = json.dumps(payload, indent=indent, sort_keys=True, default=_json_default)
    return atomic_write_text(path, text + ("\n" if trailing_newline else ""))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` to a temporary file, then rename it over `path`."""
    import torch

    return atomic_write(path, lambda stream: torch.save(obj, stream))


def atomic_save_npy(path: str | Path, array: Any) -> Path:
    """`numpy.save` (no pickled objects) to a temporary file, then rename it over `path`."""
    import numpy as np

    return atomic_write(path, lambda stream: np.save(stream, array, allow_pickle=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "numel") and hasattr(value, "item") and value.numel() == 1:  # a one-element torch tensor
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the `.tmp-<name>.*` files of killed writes of `path` (an hour old: a running write's are newer);
    a killed checkpoint write can leave hundreds of megabytes."""
    now = time.time()
    for temporary in path.parent.glob(f"{TEMPORARY_PREFIX}{path.name}.*"):
        try:
            if now - temporary.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                temporary.unlink()
        except OSError:
            pass


def _current_umask() -> int:
    """The process umask (read by setting and restoring it: POSIX has no call that only reads it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
