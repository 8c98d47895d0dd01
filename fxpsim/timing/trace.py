"""Event records of the schedule timeline (for Chrome/Perfetto traces and tests).

Tracks: ``dma_read`` / ``dma_write`` (the two DMA channels; ``dma`` in the sequential
schedule, where an op's stream is one slice), ``mac_array``, ``requantizer``,
``vector_unit``. One event per op and track (the DMA stream, the array's tiles, the vector
op), never per MAC; with overlap on, an engine's idle gaps are events too (``stall``), named
by what the engine waited for (``wait_input``: an earlier op's output; ``wait_dram``: its
first tile; ``wait_buffer``: buffer space for its tiles; ``wait_engine``; ``preempted``;
``idle``; inside the array's own op, drawn after its work: ``weight_load``,
``fill_drain``, ``wait_sram``, ``wait_requant``).
Counters (:class:`Counter`) sample DRAM bandwidth in use and each buffer's occupancy. Times
are integer cycles from the start of the simulated step; ``end`` is exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

TRACKS: tuple[str, ...] = ("dma", "dma_read", "dma_write", "mac_array", "requantizer",
                           "vector_unit")


@dataclass(frozen=True)
class TraceEvent:
    track: str
    name: str
    start: int
    end: int
    layer: str
    pass_name: str
    op: int = -1  # index of the op in lowering order (-1: not recorded)
    stall: bool = False  # an engine waiting, not working

    @property
    def duration(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Counter:
    """A counter track's value from cycle ``at`` on (DRAM: percent of its bandwidth in
    use; a buffer: bytes held)."""

    name: str
    at: int
    value: int
