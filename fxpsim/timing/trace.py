"""Event records of the schedule timeline (for Chrome/Perfetto traces and tests).

Tracks: ``dma`` (DRAM transfers), ``mac_array``, ``requantizer``, ``vector_unit``. One event
per op and track (the DMA stream, the array's tiles, the vector op), never per MAC. Times are
integer cycles from the start of the simulated step; ``end`` is exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

TRACKS: tuple[str, ...] = ("dma", "mac_array", "requantizer", "vector_unit")


@dataclass(frozen=True)
class TraceEvent:
    track: str
    name: str
    start: int
    end: int
    layer: str
    pass_name: str

    @property
    def duration(self) -> int:
        return self.end - self.start
