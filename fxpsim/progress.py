"""Training progress: a rich bar with elapsed time and ETA on a terminal, plain log lines
otherwise (a pipe, a CI log, a notebook), so a long run is never silent until the end."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def _clock_text(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class PlainProgress:
    """Log lines ``training: step 30/60 (50%), loss 1.234, elapsed 0:12, ETA 0:12`` at most
    every ``every_s`` seconds and at the end. Same interface as the subset of
    ``rich.progress.Progress`` the training loop uses (``task_ids``, ``update``, ``stop``)."""

    def __init__(self, total: int, stream: TextIO | None = None, every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, label: str = "training") -> None:
        self.total, self.stream, self.every_s, self.clock = total, stream or sys.stdout, \
            every_s, clock
        self.label = label
        self.task_ids = [0]
        self.done = 0
        self.loss = "-"
        self.start = clock()
        self.last = self.start
        self._printed_at = -1

    def line(self) -> str:
        elapsed = self.clock() - self.start
        pct = f" ({self.done / self.total:.0%})" if self.total else ""
        eta = (f", ETA {_clock_text(elapsed / self.done * (self.total - self.done))}"
               if self.done and self.total else "")
        return (f"{self.label}: step {self.done}/{self.total}{pct}, loss {self.loss}, "
                f"elapsed {_clock_text(elapsed)}{eta}")

    def update(self, task_id: int = 0, advance: int = 1, loss: Any = None) -> None:
        self.done += advance
        if loss is not None:
            self.loss = str(loss)
        now = self.clock()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            self._printed_at = self.done
            print(self.line(), file=self.stream, flush=True)

    def stop(self) -> None:
        if self.done and self._printed_at != self.done:
            print(self.line(), file=self.stream, flush=True)


def training_progress(enabled: bool, total: int, stream: TextIO | None = None) -> Any:
    """A started progress display for ``total`` steps, or None when disabled."""
    if not enabled:
        return None
    stream = stream or sys.stdout
    if not stream.isatty():
        return PlainProgress(total, stream)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    prog = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    TextColumn("loss {task.fields[loss]}"), transient=True)
    prog.start()
    prog.add_task("train", total=total, loss="-")
    return prog
