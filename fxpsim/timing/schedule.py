"""The SimPy schedule: per op, a DMA engine and a compute unit run as concurrent processes.

Model of one op (:class:`OpWork`)
---------------------------------
* the **DMA engine** streams the op's DRAM reads and writes over one shared channel for
  ``dma_cycles`` (first-request latency + bytes / rate; requests stay in flight, so the
  latency is paid once per op, not per tile);
* the **compute unit** (MAC array or vector unit) starts once its first inputs are on chip
  (``array_start`` cycles: latency + the first tile's bytes), is busy ``array_cycles`` (the
  binding one of array, SRAM ports and requantizer) and then waits ``tail`` cycles for its
  last output vector to leave.

The op ends when both processes end: ``max(dma_cycles, array_start + array_cycles + tail)``.
Double-buffered SRAM tiles let the DMA run ahead of the array, so within an op neither
waits for the other except at the start and the end. Ops run one after another in
lowering order (each consumes the previous one's result; overlapping ops is not modeled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fxpsim.timing.trace import TraceEvent


@dataclass(frozen=True)
class OpWork:
    """One op to schedule (a GEMM on the MAC array or a vector op)."""

    layer: str
    pass_name: str
    dma_cycles: int = 0
    array_start: int = 0
    array_cycles: int = 0
    tail: int = 0
    requant: bool = False  # a GEMM whose outputs pass the requantizer
    vector: bool = False  # runs on the vector unit, not the MAC array

    @property
    def cycles(self) -> int:
        """The closed form the SimPy run reproduces (used by tests as the oracle)."""
        return max(self.dma_cycles, self.array_start + self.array_cycles + self.tail)


def run_schedule(
    works: Sequence[OpWork], *, trace: bool = False
) -> tuple[tuple[int, ...], tuple[TraceEvent, ...]]:
    """Simulate ``works`` in order; returns (cycles per op, trace events or ())."""
    import simpy

    env = simpy.Environment()
    events: list[TraceEvent] = []
    spans: list[int] = []

    def ev(track: str, name: str, start: float, end: float, w: OpWork) -> None:
        if trace and end > start:
            events.append(TraceEvent(track, name, int(start), int(end), w.layer, w.pass_name))

    def dma(w: OpWork):  # noqa: ANN202
        t0 = env.now
        if w.dma_cycles:
            yield env.timeout(w.dma_cycles)
        ev("dma", "stream", t0, env.now, w)

    def compute(w: OpWork):  # noqa: ANN202
        if w.array_start:
            yield env.timeout(w.array_start)
        t0 = env.now
        if w.array_cycles:
            yield env.timeout(w.array_cycles)
        track = "vector_unit" if w.vector else "mac_array"
        ev(track, "vector" if w.vector else "tiles", t0, env.now, w)
        if w.requant:
            ev("requantizer", "tiles", t0, env.now, w)
        if w.tail:
            yield env.timeout(w.tail)

    def main():  # noqa: ANN202
        for w in works:
            start = env.now
            yield env.process(dma(w)) & env.process(compute(w))
            spans.append(int(env.now - start))

    env.process(main())
    env.run()
    events.sort(key=lambda e: (e.start, e.track, e.end))
    return tuple(spans), tuple(events)
