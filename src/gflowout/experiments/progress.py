"""A dependency-free progress bar for long commands (benchmark, demo): one line, redrawn in place."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """`total` units of work; `advance(message)` moves one unit, `note(message)` only updates the text.

    On a terminal the line is redrawn with a carriage return; otherwise (logs, pipes) each update is a
    new line, so a log file stays readable. The ETA is elapsed / done * left.
    """

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(int(total), 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.perf_counter()
        self.message = ""
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())

    @staticmethod
    def _clock(seconds: float) -> str:
        seconds = int(seconds)
        return f"{seconds // 60}m{seconds % 60:02d}s"

    def line(self) -> str:
        filled = int(self.width * self.done / self.total)
        elapsed = time.perf_counter() - self.started
        eta = f", ~{self._clock(elapsed / self.done * (self.total - self.done))} left" if self.done else ""
        bar = "#" * filled + "." * (self.width - filled)
        return f"[{bar}] {100 * self.done // self.total:3d}% {self.message} ({self._clock(elapsed)} elapsed{eta})"

    def _draw(self) -> None:
        if self.interactive:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        self.message = message
        self._draw()

    def advance(self, message: str | None = None, units: int = 1) -> None:
        self.done = min(self.done + units, self.total)
        if message is not None:
            self.message = message
        self._draw()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
