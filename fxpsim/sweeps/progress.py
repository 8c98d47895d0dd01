"""Sweep progress: points done / failed / running, elapsed and ETA.

On a terminal one status line is redrawn in place; otherwise (CI logs, pipes) plain lines
are printed, one per finished point for small sweeps and about every 5% for large ones.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _secs(s: float) -> str:
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class Progress:
    def __init__(self, total: int, skipped: int = 0, stream: TextIO | None = None,
                 quiet: bool = False) -> None:
        self.total, self.skipped = total, skipped
        self.done = self.failed = self.running = 0
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._every = 1 if total <= 40 else max(1, total // 20)

    def announce(self, where: str) -> None:
        """One line before the first point: how many points, how many kept, where."""
        if not self.quiet:
            kept = f", {self.skipped} from an earlier run" if self.skipped else ""
            self._emit(f"sweep: {self.total} points{kept}; "
                       f"{self.total - self.skipped} to run {where}\n")

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        finished = self.done + self.failed
        todo = self.total - self.skipped
        eta = (elapsed / finished * (todo - finished)) if finished else None
        parts = [f"sweep: {self.skipped + finished}/{self.total} points",
                 f"{self.done} done", f"{self.failed} failed", f"{self.running} running"]
        if self.skipped:
            parts.append(f"{self.skipped} from an earlier run")
        parts.append(f"elapsed {_secs(elapsed)}")
        parts.append(f"ETA {_secs(eta)}" if eta is not None else "ETA -")
        return ", ".join(parts)

    def update(self, *, running: int, finished_ok: bool | None = None) -> None:
        self.running = running
        if finished_ok is True:
            self.done += 1
        elif finished_ok is False:
            self.failed += 1
        if self.quiet:
            return
        if self.tty:
            self._emit("\r\033[K" + self.line())
        elif finished_ok is not None and (
                (self.done + self.failed) % self._every == 0
                or self.done + self.failed + self.skipped == self.total):
            self._emit(self.line() + "\n")

    def close(self) -> None:
        if self.tty and not self.quiet:
            self._emit("\n")

    def _emit(self, text: str) -> None:
        # progress is a courtesy: a closed pipe or a full stdout must not stop the sweep
        # (its points and report are written whatever happens to the terminal)
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.quiet = True
