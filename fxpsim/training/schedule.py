"""Learning-rate schedules of a training run (``lr_schedule=``, ``warmup=``).

The factor multiplies the run's learning rate at 0-based step ``t`` of ``total`` steps:

* ``constant``: 1;
* ``step``: ×0.1 from 50 % of the steps and ×0.01 from 75 % (the milestones of LBT's
  ResNet recipe, epochs 80 and 120 of 160, scaled to the run's length);
* ``cosine``: ``½·(1 + cos(π·t/total))``;
* ``warmup = W`` > 0 additionally ramps linearly, ``(t + 1)/W`` for t < W.

Only the main optimizer follows it (MetaGrad's hypernetwork keeps its own rate).
"""

from __future__ import annotations

import math

SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine")


def lr_factor(schedule: str, step: int, total: int, warmup: int = 0) -> float:
    """The learning-rate multiplier at ``step`` (see the module docstring)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
    total = max(int(total), 1)
    f = 1.0
    if schedule == "step":
        f = 0.1 ** ((step >= 0.5 * total) + (step >= 0.75 * total))
    elif schedule == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    if warmup > 0 and step < warmup:
        f *= (step + 1) / warmup
    return f
