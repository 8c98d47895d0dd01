"""The SimPy schedule: DMA engine -> double-buffered on-chip buffers -> MAC array, and the
vector unit, with one SimPy event batch per tile *group*, never per MAC.

Model of one GEMM (a sequence of :class:`TileGroup` s of identical tiles)
-------------------------------------------------------------------------
Two processes share a two-slot input buffer (double buffering; compute says what it wants,
memory decides when it gets it, as in SCALE-Sim):

* the **DMA engine** takes a free slot, spends ``dma_cycles`` (burst latency + bytes / DRAM
  bytes per cycle, computed by the caller) filling it, and hands the tile to the array;
* the **MAC array** takes the next filled slot once its previous tile is done, spends
  ``array_cycles`` and frees the slot.

With per-tile times ``d`` and ``c`` this is the recurrence ``s_i = max(eD_{i-1}, eC_{i-2})``,
``eD_i = s_i + d``, ``eC_i = max(eD_i, eC_{i-1}) + c``. Inside a group, from the third
tile on the schedule is periodic with period ``P = max(d, c)`` (``s_{i+1} = s_i + P``), so
a group of ``n >= 4`` tiles is run as two single tiles plus one *macro item* of ``n - 2``
tiles whose DMA holds both slots and whose array time is ``(n - 3) P + c``, releasing the
slots at the exact times the per-tile recurrence would. :func:`reference_pipeline` is the
per-tile recurrence in plain Python (the oracle tests compare against).

Ops (GEMMs and vector ops) run one after another in lowering order (each consumes the
previous one's result). A vector op streams its DRAM bytes while the vector unit works:
``cycles = max(vector_cycles, dma_cycles)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fxpsim.timing.trace import TraceEvent


@dataclass(frozen=True)
class TileGroup:
    """``count`` identical tiles: DMA cycles and array occupancy cycles per tile."""

    count: int
    dma_cycles: int
    array_cycles: int
    requant: bool = False  # the tiles emit final outputs (requantizer busy alongside)


@dataclass(frozen=True)
class OpWork:
    """One op to schedule: a GEMM (``groups``) or a vector op (``vector_cycles``)."""

    layer: str
    pass_name: str
    groups: tuple[TileGroup, ...] = ()
    vector_cycles: int = 0
    vector_dma_cycles: int = 0

    @property
    def is_gemm(self) -> bool:
        return bool(self.groups)


def reference_pipeline(groups: Sequence[TileGroup]) -> int:
    """Total cycles of the double-buffered pipeline, tile by tile (the oracle; O(tiles))."""
    e_dma, e_c, e_c_prev = 0, 0, 0  # last DMA end, last compute end, compute end before it
    for g in groups:
        for _ in range(g.count):
            s = max(e_dma, e_c_prev)
            e_dma = s + g.dma_cycles
            e_c_prev, e_c = e_c, max(e_dma, e_c) + g.array_cycles
    return max(e_c, e_dma)


def _items(groups: Sequence[TileGroup]) -> list[tuple[TileGroup, int]]:
    out: list[tuple[TileGroup, int]] = []
    for g in groups:
        if g.count <= 3:
            out.extend((g, 1) for _ in range(g.count))
        else:
            out.extend(((g, 1), (g, 1), (g, g.count - 2)))
    return out


def _name(m: int) -> str:
    return "tile" if m == 1 else f"{m} tiles"


def run_schedule(
    works: Sequence[OpWork], *, trace: bool = False
) -> tuple[tuple[int, ...], tuple[TraceEvent, ...]]:
    """Simulate ``works`` in order; returns (cycles per op, trace events or ())."""
    import simpy

    env = simpy.Environment()
    events: list[TraceEvent] = []
    spans: list[int] = []

    def ev(track: str, name: str, start: int, w: OpWork) -> None:
        if trace and env.now > start:
            events.append(TraceEvent(track, name, int(start), int(env.now), w.layer, w.pass_name))

    def dma(w: OpWork, items: list[tuple[TileGroup, int]], free, ready):  # noqa: ANN001
        for g, m in items:
            period = max(g.dma_cycles, g.array_cycles)
            yield free.get(1)
            t0 = env.now
            if g.dma_cycles:
                yield env.timeout(g.dma_cycles)
            ready.put((g, m))
            if m > 1:
                yield free.get(1)  # the slot of the previous tile: free at t0 + period
                rest = (m - 2) * period + g.dma_cycles
                if rest:
                    yield env.timeout(rest)
            ev("dma", _name(m), t0, w)

    def array(w: OpWork, n_items: int, free, ready):  # noqa: ANN001
        for _ in range(n_items):
            g, m = yield ready.get()
            period = max(g.dma_cycles, g.array_cycles)
            t0 = env.now
            if m == 1:
                if g.array_cycles:
                    yield env.timeout(g.array_cycles)
                free.put(1)
            else:
                first = (m - 2) * period + g.array_cycles
                if first:
                    yield env.timeout(first)
                free.put(1)
                if period:
                    yield env.timeout(period)
                free.put(1)
            ev("mac_array", _name(m), t0, w)
            if g.requant:
                ev("requantizer", _name(m), t0, w)

    def main():  # noqa: ANN202
        for w in works:
            start = env.now
            if w.is_gemm:
                items = _items(w.groups)
                free = simpy.Container(env, capacity=2, init=2)
                ready = simpy.Store(env)
                p_dma = env.process(dma(w, items, free, ready))
                p_arr = env.process(array(w, len(items), free, ready))
                yield p_dma & p_arr
            else:
                total = max(w.vector_cycles, w.vector_dma_cycles)
                if w.vector_dma_cycles:
                    yield env.timeout(w.vector_dma_cycles)
                    ev("dma", "stream", start, w)
                if trace and w.vector_cycles:
                    events.append(TraceEvent("vector_unit", "vector", int(start),
                                             int(start + w.vector_cycles), w.layer, w.pass_name))
                rest = start + total - env.now
                if rest:
                    yield env.timeout(rest)
            spans.append(int(env.now - start))

    env.process(main())
    env.run()
    events.sort(key=lambda e: (e.start, e.track, e.end))
    return tuple(spans), tuple(events)
