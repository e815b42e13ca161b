"""Exception families: each names the file, key or tensor at fault and says how to fix it."""

from __future__ import annotations


class GFlowOutError(Exception):
    """Base class of every error this package raises on purpose."""


class DataError(GFlowOutError):
    """A data file is missing, truncated, malformed or fails its checksum."""


class ConfigError(GFlowOutError):
    """A configuration key is unknown or a value has the wrong type."""


class CheckpointError(GFlowOutError):
    """A checkpoint is unreadable, unsafe, or holds another model than the one asked for."""


class NonFiniteLossError(GFlowOutError, FloatingPointError):
    """A training loss became NaN or infinite; training stops instead of going on."""


class OutputError(GFlowOutError, OSError):
    """An output or data folder cannot be created or written (read-only, not a folder, no permission)."""
