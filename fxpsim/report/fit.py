"""Rich tables that fit the terminal: columns are dropped by priority, digits are never cut.

Rich shrinks a table that is wider than the console by truncating cells (``198,5…``). Here a
table is built with all its columns, measured, and rebuilt without the least important
column until it fits; numbers never wrap. The caption names what was left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def width_of(console: Console, table: Table) -> int:
    # measured unconstrained: Measurement.get clamps to the options' max width
    return Measurement.get(console, console.options.update_width(1 << 16), table).maximum


def fit_table(console: Console, build: Callable[[Sequence[str]], Table],
              columns: Sequence[str], drop_order: Sequence[str]) -> tuple[Table, list[str]]:
    """``build(kept columns)`` for the widest set of ``columns`` that fits ``console.width``,
    dropping ``drop_order`` left to right. Returns (table, dropped columns)."""
    kept = list(columns)
    dropped: list[str] = []
    table = build(kept)
    for name in drop_order:
        if width_of(console, table) <= console.width:
            break
        if name in kept:
            kept.remove(name)
            dropped.append(name)
            table = build(kept)
    return table, dropped


def dropped_note(dropped: Sequence[str], where: str) -> str:
    if not dropped:
        return ""
    return f"; left out to fit the terminal: {', '.join(dropped)} (see {where})"
