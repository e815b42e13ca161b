"""The peak resident memory of this process over a stretch of work, where the OS lets us measure it.

Linux keeps the high-water mark of a process's resident set (VmHWM in /proc/self/status) and resets it to the
current size when "5" is written to /proc/self/clear_refs, so a run's training can be measured on its own even
when one process trains several runs in a row (a benchmark worker). Elsewhere both calls return None.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["peak_rss_mb", "reset_peak_rss"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Start a new measurement: the high-water mark drops to the current resident size. False where unsupported."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float | None:
    """The resident-set high-water mark in MiB since the last reset (or the process start); None where unknown."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), flags=re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None
