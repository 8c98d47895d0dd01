"""Shared benchmark plumbing: best-of-N timing and result rows (ratios against a reference
measured in the same process, since the machine is shared and noisy)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BenchRow:
    """One measured case: ``seconds`` is the best of ``repeats`` runs; ``rate`` is work/second
    in ``unit`` (e.g. GMAC/s, Melem/s); ``ratio`` = our rate / the reference's rate measured
    in the same run (None for a row that is itself a reference)."""

    group: str
    case: str
    seconds: float
    rate: float
    unit: str
    reference: str | None = None
    ratio: float | None = None
    target: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def best_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Best wall time of ``repeats`` calls after ``warmup`` calls (compilation, caches)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
