"""A progress bar on stderr, only when stderr is a terminal (never in cron mail or logs)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, stream=None, enabled: bool | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.width = width
        self._last = 0.0
        self._shown = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * self.width)
        self.stream.write(f"\r{phase:<16} [{bar:<{self.width}}] {done}/{total}\x1b[K")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
