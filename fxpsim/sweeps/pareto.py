"""Pareto fronts of a sweep's results (plain code: a few hundred points, O(n²) is fine)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fxpsim.sweeps.spec import METRICS


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` dominates ``b`` when it is no worse in every (minimised) value and better in one."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True))


def front(vectors: Sequence[Sequence[float]]) -> list[bool]:
    """Which vectors (all values to be minimised) no other vector dominates."""
    return [not any(dominates(o, v) for j, o in enumerate(vectors) if j != i)
            for i, v in enumerate(vectors)]


def pareto_mask(frame: Any, objectives: Sequence[tuple[str, str]], eligible: Any) -> list[bool]:
    """Per row of ``frame``: on the Pareto front of ``objectives`` among eligible rows whose
    objective values are all present (a ``max`` objective is negated)."""
    import pandas as pd

    if not objectives or frame.empty:
        return [False] * len(frame)
    cols = []
    for metric, direction in objectives:
        col = pd.to_numeric(frame[METRICS[metric][0]], errors="coerce") \
            if METRICS[metric][0] in frame else pd.Series([float("nan")] * len(frame))
        cols.append(-col if direction == "max" else col)
    mat = pd.concat(cols, axis=1)
    ok = [bool(e) and not mat.iloc[i].isna().any() for i, e in enumerate(eligible)]
    idx = [i for i, good in enumerate(ok) if good]
    on = front([list(mat.iloc[i]) for i in idx])
    out = [False] * len(frame)
    for i, flag in zip(idx, on, strict=True):
        out[i] = flag
    return out
