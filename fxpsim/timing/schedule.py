"""The SimPy schedule of one step: ``sequential`` (one op at a time) or ``overlap`` (default).

Cost of one op (:class:`OpWork`, from the mapping)
--------------------------------------------------
* its **DMA stream** moves the op's DRAM reads then writes for ``dma_cycles`` (first-request
  latency + bytes / rate; requests stay in flight, so the latency is paid once per op);
* its **engine** (MAC array or vector unit) starts once its first inputs are on chip
  (``array_start`` cycles after the stream starts: latency + the first tile's bytes), is busy
  ``array_cycles`` (the binding one of array, SRAM ports and requantizer) and its last output
  vector leaves ``tail`` cycles later.

Alone, an op takes ``max(dma_cycles, array_start + array_cycles + tail)`` (:attr:`OpWork.cycles`).

``sequential``: ops run one after another in lowering order, each alone (:func:`run_schedule`).

``overlap`` (:func:`run_overlapped`): the engines are SimPy resources that work at once:

* **DRAM**: the DMA read and write channels share its bandwidth (one transfer at a time, at
  the full configured rate). An op's stream is its reads, then its writes, which start
  once its engine has started (outputs leave as the engine makes them);
* **MAC array** and **vector unit**: one resource each; the requantizer sits on the array's
  output path and works while the array does;
* **on-chip buffers**: one ``Container`` per SRAM (capacity = its size). A GEMM takes one
  tile set (``footprint``) when its stream starts and gives it back when it ends; in a
  double-buffered SRAM its reads past the first tile set (``first_reads``) need a second
  tile set (the buffer being filled while the array reads the other one), held until its
  reads are in.

Rules. An op's engine starts when its inputs exist (every op of ``deps`` has produced its
output), its first tile has arrived (``array_start`` after its reads begin) and the engine
is free. A GEMM's stream (its weights and inputs: the prefetch) may start once the previous
GEMM's reads are in and the buffers can hold its tiles; a vector op streams its operands
once its inputs exist. An op ends when its output exists and its stream is done; consumers
wait only for the output, so write-back overlaps the next op's compute. Ops with no
dependency between them (a layer's weight update on the vector unit, the next layer's
backward GEMM on the array) run at once. Ties: the DRAM and each engine serve the waiting
op that comes first in lowering order, and take the resource from a later op, which resumes
where it stopped (priority at tile granularity); buffers are granted first come, first
served; SimPy processes events at equal times in the order they were scheduled, so the same
input gives the same events.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fxpsim.timing.trace import Counter, TraceEvent


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
    write_cycles: int = 0  # of dma_cycles: the writes (the stream's last part)
    deps: tuple[int, ...] = ()  # earlier ops (indices) whose outputs this op reads
    # (memory, bytes held from the stream's start to the op's end, bytes held in addition
    # while the stream runs): the GEMM's tile set and, double-buffered, the buffer it fills
    footprint: tuple[tuple[str, int, int], ...] = ()
    # of its reads, the cycles (latency included) that fill its first tile set: the part
    # of its stream that needs only one buffer (the rest waits for the second)
    first_reads: int = 0
    # of array_cycles, the cycles the array does not stream operands, by cause (exposed
    # weight loads, fill/drain, SRAM ports, the requantizer or an output-path stage
    # slower than it): shown after its work in the trace, left out of its work
    inner: tuple[tuple[str, int], ...] = ()

    @property
    def inner_stall(self) -> int:
        return sum(c for _, c in self.inner)

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


@dataclass(frozen=True)
class Slot:
    """Where one op ran on the overlapped timeline (integer cycles, ``end`` exclusive)."""

    dma_start: int  # its DMA stream began (prefetch: may be before its inputs exist)
    compute_start: int  # its engine began (MAC array or vector unit)
    ready: int  # its output exists on chip (engine done + output tail)
    end: int  # its DMA stream and its output are both done
    stall: str  # what the engine waited for last before this op ("" = it did not wait)


@dataclass(frozen=True)
class Overlapped:
    """The overlapped schedule of a step: one :class:`Slot` per op and the timeline's
    length (with ``trace``: its events, counter samples and producer -> consumer flows)."""

    slots: tuple[Slot, ...]
    makespan: int
    events: tuple[TraceEvent, ...] = ()
    counters: tuple[Counter, ...] = ()
    flows: tuple[tuple[int, int], ...] = ()  # (producer op, consumer op) indices


def run_overlapped(works: Sequence[OpWork], capacity: Mapping[str, int], *,
                   trace: bool = False) -> Overlapped:
    """Simulate ``works`` on concurrent engines (see the module doc for the rules)."""
    import simpy

    env = simpy.Environment()
    # priority at tile granularity: a waiting op earlier in lowering order takes the DRAM
    # or an engine from a later one (which resumes where it stopped)
    res = {k: simpy.PreemptiveResource(env, capacity=1)
           for k in ("dram", "mac_array", "vector_unit")}
    mems = {m: simpy.Container(env, capacity=c, init=c) for m, c in capacity.items() if c > 0}
    n = len(works)
    ready = [env.event() for _ in range(n)]
    started = [env.event() for _ in range(n)]  # the op's engine began
    streaming = [env.event() for _ in range(n)]  # the op's reads began (or it has none)
    loaded = [env.event() for _ in range(n)]  # the op's reads are in (or it has none)
    at = [0] * n  # when its reads began
    slots: list[Slot | None] = [None] * n
    events: list[TraceEvent] = []
    counters: list[Counter] = []
    level = {m: 0 for m in mems}
    buffer_wait = [False] * n

    def hold(mem: str, delta: int) -> None:
        level[mem] += delta
        if trace:
            counters.append(Counter(f"buffer {mem}", int(env.now), level[mem]))

    def unhold(w: OpWork, which: int):  # noqa: ANN202
        for mem, keep, extra in w.footprint:
            nbytes_ = extra if which == 2 else keep
            if mem in mems and nbytes_:
                yield mems[mem].put(nbytes_)
                hold(mem, -nbytes_)

    def mark(ev_: simpy.Event, i: int) -> None:
        if not ev_.triggered:
            if ev_ is streaming[i]:
                at[i] = int(env.now)
            ev_.succeed()

    def serve(i: int, w: OpWork, unit: str, track: str, prio: int, cycles: int,
              first: simpy.Event):  # noqa: ANN202
        """``cycles`` of service on ``unit``, possibly in several slices (preempted)."""
        left = cycles
        while left > 0:
            req = res[unit].request(priority=prio, preempt=True)
            try:
                yield req
            except simpy.Interrupt:  # granted and taken back at the same cycle
                res[unit].release(req)
                continue
            t0 = env.now
            mark(first, i)
            if unit == "dram" and trace:
                counters.append(Counter("dram_bw_in_use", int(t0), 100))
            try:
                yield env.timeout(left)
            except simpy.Interrupt:
                pass
            res[unit].release(req)
            left -= int(env.now - t0)
            if trace and env.now > t0:
                if unit == "dram":
                    counters.append(Counter("dram_bw_in_use", int(env.now), 0))
                name = {"dma_read": "read", "dma_write": "write", "mac_array": "tiles",
                        "vector_unit": "vector"}[track]
                events.append(TraceEvent(track, name, int(t0), int(env.now), w.layer,
                                         w.pass_name, i))
                if w.requant and unit == "mac_array":
                    events.append(TraceEvent("requantizer", "requant", int(t0), int(env.now),
                                             w.layer, w.pass_name, i))

    def dma(i: int, w: OpWork):  # noqa: ANN202
        reads = w.dma_cycles - w.write_cycles
        if not reads:
            mark(streaming[i], i)
        extra = [(m, x) for m, _, x in w.footprint if m in mems and x]
        first = min(reads, w.first_reads) if extra else reads
        yield from serve(i, w, "dram", "dma_read", i, first, streaming[i])
        for mem, nbytes_ in extra:  # the second buffer, for the rest of its tiles
            yield mems[mem].get(nbytes_)
            hold(mem, nbytes_)
        yield from serve(i, w, "dram", "dma_read", i, reads - first, streaming[i])
        loaded[i].succeed()
        yield from unhold(w, 2)  # the buffer it filled is free once its reads are in
        if w.write_cycles:  # outputs leave once the engine makes them
            yield started[i]
            yield from serve(i, w, "dram", "dma_write", i, w.write_cycles, env.event())

    def op(i: int, w: OpWork, after: int):  # noqa: ANN202
        engine = "vector_unit" if w.vector else "mac_array"
        stall = ""
        if w.vector:  # a vector op streams its operands once they exist: no prefetch
            waits = [ready[d] for d in w.deps if not ready[d].triggered]
            if waits:
                yield env.all_of(waits)
                stall = "wait_input"
        else:
            if after >= 0:  # one GEMM of lookahead: prefetch once the previous one's reads
                yield loaded[after]  # are in (its filling buffer is free)
            for mem, keep, _ in w.footprint:  # one buffer for its first tiles
                if mem in mems and keep:
                    t_ask = env.now
                    yield mems[mem].get(keep)
                    buffer_wait[i] = buffer_wait[i] or env.now > t_ask
                    hold(mem, keep)
        t_dma = env.now
        stream = env.process(dma(i, w)) if w.dma_cycles else None
        if stream is None:
            mark(streaming[i], i)
            loaded[i].succeed()
        # the engine waits for: its inputs (deps), its first tile (array_start after its
        # reads begin), its turn
        waits = [ready[d] for d in w.deps if not ready[d].triggered]
        if waits:
            yield env.all_of(waits)
            stall = "wait_input"
        if not streaming[i].triggered:
            yield streaming[i]
            stall = "wait_dram"
        if env.now < at[i] + w.array_start:
            yield env.timeout(at[i] + w.array_start - env.now)
            stall = "wait_buffer" if buffer_wait[i] else "wait_dram"
        t_want = env.now
        if w.array_cycles:
            yield from serve(i, w, engine, engine, i, w.array_cycles, started[i])
        else:
            started[i].succeed()
        if w.tail:
            yield env.timeout(w.tail)
        ready[i].succeed()
        t_ready = env.now
        if stream is not None:
            yield stream
        yield from unhold(w, 1)
        if first_start[i] > t_want and not stall:
            stall = "wait_engine"
        slots[i] = Slot(int(t_dma), first_start[i], int(t_ready), int(env.now), stall)

    first_start = [-1] * n

    def note_start(i: int) -> None:
        started[i].callbacks.append(lambda _: first_start.__setitem__(i, int(env.now)))

    prev_gemm = -1
    for i, w in enumerate(works):
        note_start(i)
        env.process(op(i, w, -1 if w.vector else prev_gemm))
        if not w.vector:
            prev_gemm = i
    # SimPy makes short-lived events by the hundred thousand and none form cycles: the
    # cyclic collector's passes over the big heap cost a third of the run
    enabled = gc.isenabled()
    gc.disable()
    try:
        env.run()
    finally:
        if enabled:
            gc.enable()
    done = tuple(s for s in slots if s is not None)
    if len(done) != n:  # a dependency cycle or a buffer no op can get: a bug, not a config
        raise RuntimeError("overlapped schedule did not finish every op")
    makespan = max((s.end for s in done), default=0)
    if trace:
        events = _inner_stalls(works, _merged(events))
        events.extend(_stall_slices(works, done, events))
    events.sort(key=lambda e: (e.start, e.track, e.end, e.op))
    flows = tuple((d, i) for i, w in enumerate(works) for d in w.deps) if trace else ()
    return Overlapped(done, makespan, tuple(events), tuple(counters), flows)


def _stall_slices(works: Sequence[OpWork], slots: Sequence[Slot],
                  events: Sequence[TraceEvent]) -> list[TraceEvent]:
    """Per engine, each idle gap before an op's work, named by what that op waited for
    (``idle``: nothing was asked of the engine)."""
    out: list[TraceEvent] = []
    for engine in ("mac_array", "vector_unit"):
        free, seen = 0, set()
        for e in sorted((e for e in events if e.track == engine), key=lambda e: e.start):
            if e.start > free:
                w = works[e.op]
                why = "preempted" if e.op in seen else slots[e.op].stall or "idle"
                out.append(TraceEvent(engine, why, free, e.start, w.layer, w.pass_name, e.op,
                                      stall=True))
            free = max(free, e.end)
            seen.add(e.op)
    return out


def _merged(events: list[TraceEvent]) -> list[TraceEvent]:
    """Back-to-back slices of one op on one track as one slice (an op's stream served in
    parts that nothing came between)."""
    out: list[TraceEvent] = []
    last: dict[tuple[str, int], int] = {}
    for e in sorted(events, key=lambda e: (e.track, e.op, e.start)):
        k = (e.track, e.op)
        j = last.get(k)
        if j is not None and out[j].end == e.start and not e.stall:
            out[j] = TraceEvent(e.track, e.name, out[j].start, e.end, e.layer, e.pass_name, e.op)
        else:
            last[k] = len(out)
            out.append(e)
    return out


def _inner_stalls(works: Sequence[OpWork], events: list[TraceEvent]) -> list[TraceEvent]:
    """An engine's slices of an op cut where its own work ends: the rest of its time (the
    array waiting on SRAM ports or the requantizer) becomes stall slices."""
    out: list[TraceEvent] = []
    done: dict[int, int] = {}
    for e in sorted(events, key=lambda e: (e.op, e.start)):
        w = works[e.op] if e.op >= 0 else None
        if w is None or not w.inner_stall or e.track not in ("mac_array", "vector_unit"):
            out.append(e)
            continue
        # the op's service time in order: its work, then each cause's cycles
        parts = [(e.name, w.array_cycles - w.inner_stall, False),
                 *((cause, c, True) for cause, c in w.inner)]
        skip, t = done.get(e.op, 0), e.start  # service drawn in its earlier slices
        for name, length, stall in parts:
            if skip >= length:
                skip -= length
                continue
            n = min(length - skip, e.end - t)
            skip = 0
            if n > 0:
                out.append(TraceEvent(e.track, name, t, t + n, e.layer, e.pass_name, e.op,
                                      stall=stall))
                t += n
            if t >= e.end:
                break
        done[e.op] = done.get(e.op, 0) + e.duration
    return out
