"""Time-plane entry point: lowered ops -> mapping search -> SimPy schedule -> records.

Data residency (which tensors cross the DRAM interface)
-------------------------------------------------------
* A tensor kind lives in the first SRAM whose ``holds`` lists it (``weight_gradients`` ->
  ``gradients``). One buffer of a double-buffered SRAM (half its size) is the capacity.
* Each GEMM's DRAM traffic comes from its mapping (:mod:`fxpsim.timing.search`): per tensor,
  tile footprint x fetches, inputs with their halo, partial sums when the reduction is tiled.
* Inter-layer: a GEMM's output stays on chip (``kept``, no DRAM write) when the next op
  consumes it and it takes at most half of its buffer (the other half holds the tiles of
  the producer and of the consumer; this keeps residency monotone: a buffer twice as big
  keeps everything the smaller one kept, with at least as much room for tiles). Vector ops
  pass such a tensor on under the same rule. The consumer takes it from the chip
  (``carried``, no DRAM read). A carried tensor that the consumer cannot hold after all is
  written back (charged to the consumer) and read through its mapping.
* Training: when the inputs of all forward GEMMs do not fit in the activation buffer
  together, a forward GEMM whose input came from the chip also writes it to DRAM once
  (``saved_activations``); backward GEMMs read activations as ``saved_activations``.
* Vector ops whose DRAM bytes the lowering left at 0: the input comes from the chip if the
  previous op left its output there (and it fits), else from DRAM; the output stays on chip
  if it fits and another op follows, else it is written to DRAM. A reduction (no output)
  leaves the carried tensor as it was. ``*_update`` ops read and write their state
  (optimizer_state) from DRAM unless it fits in the SRAM holding ``optimizer_state``.

DRAM bytes are also reported by kind (``Metrics.dram_by_kind``): weights, activations,
gradients, saved_activations, optimizer_state, psums.

``timing=scalesim``: each GEMM's cycles are the total cycles SCALE-Sim 3.0.0 reports for it
(:mod:`fxpsim.timing.scalesim_timing`): no stalls in CALC mode, its double-buffered
scratchpads' stalls (as ``dram`` stalls) in USER mode; action counts and energy are the
native ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction

from fxpsim.config.hw import HwConfig, Memory
from fxpsim.errors import ConfigError
from fxpsim.graph.ir import Graph
from fxpsim.results import LayerPassResult, Metrics, Tally
from fxpsim.timing import scalesim_timing
from fxpsim.timing.arraymap import buffer_bytes, mode_rate
from fxpsim.timing.energy import energy_components, is_stochastic, leakage_pj
from fxpsim.timing.loopnest import ceil_div, nbytes, op_shape
from fxpsim.timing.mapping import hw_source, pass_kind, widest_mode
from fxpsim.timing.ops import GemmOp, Op, TimingRequest, VectorOp
from fxpsim.timing.schedule import OpWork, Overlapped, run_overlapped, run_schedule
from fxpsim.timing.search import (
    Mapping,
    SearchCache,
    dram_latency_cycles,
    dram_rate,
    memory_of,
    norm_kind,
    port_cycles,
    search,
)
from fxpsim.timing.trace import Counter, TraceEvent

_OPS_CYCLES_ALIAS = {"cmp": "max", "min": "max", "sub": "add"}


@dataclass(frozen=True)
class SearchStats:
    """Mapping-search effort of one simulated step (seconds are not written to reports:
    they vary from run to run)."""

    searches: int = 0
    evaluated: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ScheduleStats:
    """How the step's ops were placed in time: ``cycles`` (the step, = the sum of the
    records' cycles) against ``sequential_cycles`` (one op at a time, = the sum of each op
    alone); ``work`` is each engine's busy cycles (utilisation = work / cycles)."""

    mode: str = "overlap"
    cycles: int = 0
    sequential_cycles: int = 0
    work: tuple[tuple[str, int], ...] = ()

    @property
    def saved_cycles(self) -> int:
        return self.sequential_cycles - self.cycles

    def utilization(self) -> dict[str, float]:
        return {k: (v / self.cycles if self.cycles else 0.0) for k, v in self.work}


@dataclass(frozen=True)
class TimingResult:
    records: tuple[LayerPassResult, ...]
    events: tuple[TraceEvent, ...]
    energy_table: str
    notes: tuple[str, ...] = ()  # caveats the reports must show (e.g. float baseline timing)
    search: SearchStats = field(default_factory=SearchStats)
    schedule: ScheduleStats = field(default_factory=ScheduleStats)
    counters: tuple[Counter, ...] = ()  # trace counter samples (overlap schedule, trace on)
    flows: tuple[tuple[int, int], ...] = ()  # (producer op, consumer op) for trace arrows


def simulate(graph: Graph, hw: HwConfig, req: TimingRequest, *,
             trace: bool = False) -> TimingResult:
    """Cycles, action counts and energy of one step of ``graph`` on ``hw`` (see module doc)."""
    from fxpsim.timing.lowering import lower

    bits = hw.mac_array.stochastic_rounding.random_bits_per_rounding
    ops = lower(graph, req, random_bits=bits)
    geometry = scalesim_timing.conv_geometries(graph) if req.timing == "scalesim" else None
    result = simulate_ops(ops, hw, req, trace=trace, scalesim_geometry=geometry)
    if any(isinstance(op, GemmOp) and op.float_operands for op in ops):
        widest = widest_mode(hw)
        note = (f"float operands: {hw.name} has no float MAC; GEMMs with a float operand are "
                f"timed in its widest integer mode ({widest.name}) when no mode covers them")
        result = replace(result, notes=(*result.notes, note))
    return result


def _cap(mem: Memory | None) -> int:
    return buffer_bytes(mem)


class _Ctx:
    def __init__(self, hw: HwConfig, req: TimingRequest) -> None:
        self.hw, self.req = hw, req
        self.scalesim_geometry: scalesim_timing.Geometries = {}
        self.bw = dram_rate(hw)
        self.lat = dram_latency_cycles(hw)
        self.cache = SearchCache(objective=req.objective)

    def transfer(self, nbytes_: int) -> int:
        return ceil_div(nbytes_ * self.bw.denominator, self.bw.numerator)

    def dma(self, nbytes_: int) -> int:
        return self.lat + self.transfer(nbytes_) if nbytes_ > 0 else 0

    def writes(self, read_bytes: int, write_bytes: int) -> int:
        """The cycles of a stream of ``read_bytes + write_bytes`` that the writes take."""
        return self.transfer(read_bytes + write_bytes) - self.transfer(read_bytes) \
            if write_bytes else 0


def _acc_n(mem: Memory | None, elems: int, bits: int) -> int:
    return 0 if mem is None or not elems else ceil_div(elems * bits, mem.width_bits or 1)


def _saved_fit(ops: Sequence[Op], hw: HwConfig, req: TimingRequest) -> bool:
    if req.phase != "train":
        return True
    per_pass: dict[str, int] = {}
    for op in ops:
        if isinstance(op, GemmOp) and op.a_kind == "activations" and op.out_kind == "activations":
            a = op_shape(op, "forward", 32)
            per_pass[op.pass_name] = per_pass.get(op.pass_name, 0) + nbytes(a.size("A"), op.a_bits)
    return max(per_pass.values(), default=0) <= _cap(memory_of(hw, "activations"))


def _stays(hw: HwConfig, kind: str, size: int) -> bool:
    """A tensor stays on chip between ops when it takes at most half of its buffer: the
    other half holds the tiles of the producer and of the consumer (so a buffer twice as
    big keeps every tensor the smaller one kept, with at least as much room beside it)."""
    return 0 < size <= _cap(memory_of(hw, kind)) // 2


def _consumes(nxt: Op | None, kind: str) -> bool:
    if nxt is None:
        return False
    if isinstance(nxt, VectorOp):
        return True
    return norm_kind(kind) in (norm_kind(nxt.a_kind), norm_kind(nxt.b_kind))


def _carried_role(op: GemmOp, carry: tuple[str, int] | None) -> str | None:
    """The operand of ``op`` that is the tensor left on chip (same kind and size), if any."""
    if carry is None:
        return None
    shape = op_shape(op, pass_kind(op), 32)
    for role, k, bits in (("A", op.a_kind, op.a_bits), ("B", op.b_kind, op.b_bits)):
        if norm_kind(k) == carry[0] and nbytes(shape.size(role), bits) == carry[1]:  # type: ignore[arg-type]
            return role
    return None


@dataclass(frozen=True)
class _Vec:
    op: VectorOp
    cycles: int  # vector-unit cycles
    rd: int
    wr: int
    mem: Memory
    kind: str  # DRAM tensor kind
    fused: bool = False  # runs on the array's output path (vector_unit.fused_ops)


@dataclass
class _Gemm:
    op: GemmOp
    mp: Mapping
    reads: Tally  # DRAM read bytes by kind
    writes: Tally
    accesses: Tally
    work: OpWork
    side: int
    ports: int


def _read_kind(ctx: _Ctx, op: GemmOp, kind: str) -> str:
    if (ctx.req.phase == "train" and kind == "activations"
            and pass_kind(op) != "forward"):
        return "saved_activations"
    return norm_kind(kind)


def _gemm(ctx: _Ctx, op: GemmOp, carry: tuple[str, int] | None, nxt: Op | None,
          saved_fit: bool, fused: Sequence[VectorOp] = ()
          ) -> tuple[_Gemm, tuple[str, int] | None]:
    """``fused``: the vector ops on the array's output path after ``op`` (their output,
    not the GEMM's, is what stays on chip or goes to DRAM)."""
    hw = ctx.hw
    role = _carried_role(op, carry)
    full = nbytes(op.groups * op.m * op.n, op.out_bits)
    out_bytes = fused[-1].write_bytes if fused else full
    # residency is decided on the GEMM's own output (the mapping search keeps that on
    # chip); what stays or is written is the output path's result
    keep = _consumes(nxt, op.out_kind) and _stays(hw, op.out_kind, full)
    spill = 0
    mp = None
    for r in ((role, None) if role else (None,)):
        for k in ((True, False) if keep else (False,)):
            mp = search(hw, op, ctx.cache, carried=r, keep_out=k)  # type: ignore[arg-type]
            if mp is not None:
                break
        if mp is not None:
            break
        if r is not None and carry is not None:
            spill = carry[1]  # the consumer cannot hold it: evict it to DRAM first
    if mp is None:
        mem = memory_of(hw, op.a_kind) or next(m for m in hw.memory if m.is_sram)
        idx = hw.memory.index(mem)
        raise ConfigError(hw_source(hw), f"memory[{idx}].size_kib",
                          f"no tile of {op.layer} ({op.pass_name}) fits the on-chip buffers")
    dp = mp.dram
    kinds = (op.a_kind, op.b_kind, op.out_kind)
    reads: dict[str, float] = {}
    writes: dict[str, float] = {}

    def put(d: dict[str, float], kind: str, n: int) -> None:
        if n:
            d[kind] = d.get(kind, 0) + n

    put(reads, _read_kind(ctx, op, kinds[0]), dp.reads[0])
    put(reads, _read_kind(ctx, op, kinds[1]), dp.reads[1])
    put(reads, "psums", dp.psum_bytes[0])
    put(writes, "psums", dp.psum_bytes[1])
    out_w = dp.writes[2] - dp.psum_bytes[1]
    put(writes, norm_kind(kinds[2]), min(out_w, out_bytes) if fused and out_w else out_w)
    extra = 0
    if spill:
        put(writes, carry[0] if carry else "activations", spill)
        extra += spill
    if (ctx.req.phase == "train" and mp.kind == "forward" and mp.carried == "A"
            and not saved_fit and op.a_kind == "activations"):
        saved = nbytes(mp.shape.size("A"), op.a_bits)
        put(writes, "saved_activations", saved)
        extra += saved
    accesses = dict(mp.cost.accesses)
    amem = memory_of(hw, op.a_kind)
    if extra and amem is not None:
        key = f"{amem.name}.read"
        accesses[key] = accesses.get(key, 0) + _acc_n(amem, extra * 8, 1)
    total = int(sum(v for _, v in reads.items()) + sum(v for _, v in writes.items()))
    c = mp.cost
    ports = max((port_cycles(m, accesses.get(f"{m.name}.read", 0),
                             accesses.get(f"{m.name}.write", 0))
                 for m in hw.memory if m.is_sram), default=0)
    # fused stages work beside the array, each at its own throughput
    side = max(c.side, ports, *(_vector_cycles(ctx, v) for v in fused))
    requant = op.out_bits < hw.mac_array.accumulator.bits
    if ctx.req.timing == "scalesim":
        cyc, _ = scalesim_timing.op_timing(hw, op, ctx.scalesim_geometry)
        work = OpWork(op.layer, op.pass_name, array_cycles=cyc, requant=requant)
    else:
        wr = int(sum(v for _, v in writes.items()))
        busy = max(c.array, ports)
        ap = mp.array
        inner = tuple((k, v) for k, v in (
            ("weight_load", ap.load_cycles), ("fill_drain", ap.fill_cycles),
            ("wait_sram", busy - c.array), ("wait_requant", side - busy)) if v > 0)
        work = OpWork(op.layer, op.pass_name, dma_cycles=ctx.dma(total),
                      array_start=ctx.lat + c.prologue if total else 0, array_cycles=side,
                      tail=c.epilogue if total else 0, requant=requant,
                      write_cycles=ctx.writes(total - wr, wr), inner=inner)
    g = _Gemm(op, mp, Tally.of(reads), Tally.of(writes), Tally.of(accesses), work, side, ports)
    new_carry = (norm_kind(op.out_kind), out_bytes) if mp.kept else None
    return g, new_carry


def _vector_cycles(ctx: _Ctx, vo: VectorOp) -> int:
    hw = ctx.hw
    vu = hw.vector_unit
    per_elem = 0
    for alu, cnt in vo.alu:
        key = alu if alu in vu.ops_cycles else _OPS_CYCLES_ALIAS.get(alu, alu)
        if key not in vu.ops_cycles:
            raise ConfigError(hw_source(hw), f"vector_unit.ops_cycles.{alu}",
                              f"no cycle count for ALU op {alu!r} needed by {vo.layer} "
                              f"({vo.kind})")
        per_elem += cnt * vu.ops_cycles[key]
    return ceil_div(vo.elems, vu.lanes) * per_elem


#: ``vector_unit.fused_ops`` names -> the lowering's vector-op kinds they cover
FUSED_KINDS: dict[str, tuple[str, ...]] = {
    "requant": ("quantize",), "relu": ("relu", "relu6"), "bn_infer": ("batchnorm_infer",),
    "maxpool": ("maxpool",), "avgpool": ("avgpool",)}


def fused_groups(ops: Sequence[Op], hw: HwConfig) -> dict[int, tuple[int, ...]]:
    """GEMM index -> the vector ops right after it (same pass) that its output path runs."""
    kinds = {k for name in hw.vector_unit.fused_ops for k in FUSED_KINDS[name]}
    out: dict[int, tuple[int, ...]] = {}
    if not kinds:
        return out
    for i, op in enumerate(ops):
        if not isinstance(op, GemmOp):
            continue
        j = i + 1
        while j < len(ops):
            v = ops[j]
            if not (isinstance(v, VectorOp) and v.kind in kinds
                    and v.pass_name == op.pass_name):
                break
            j += 1
        if j > i + 1:
            out[i] = tuple(range(i + 1, j))
    return out


def _vector(ctx: _Ctx, vo: VectorOp, carry: tuple[str, int] | None, nxt: Op | None
            ) -> tuple[int, int, int, Memory, str, tuple[str, int] | None]:
    """(cycles, DRAM read bytes, write bytes, memory, DRAM kind, carry after)."""
    hw = ctx.hw
    cycles = _vector_cycles(ctx, vo)
    rd, wr = vo.dram_read_bytes, vo.dram_write_bytes
    upd = vo.kind.endswith("_update")
    mem = memory_of(hw, "optimizer_state" if upd else "activations") or next(
        m for m in hw.memory if m.is_sram)
    if upd:
        if rd == 0 and wr == 0 and vo.read_bytes > _cap(memory_of(hw, "optimizer_state")):
            rd, wr = vo.read_bytes, vo.write_bytes
        return cycles, rd, wr, mem, "optimizer_state", None
    if "update" in vo.pass_name:  # quantizing the updated master weights
        kind = "weights"
    elif carry is not None:
        kind = carry[0]
    else:
        kind = "activations" if "forward" in vo.pass_name else "gradients"
    if rd or wr:  # the lowering decided the DRAM traffic itself
        return cycles, rd, wr, mem, kind, None
    if carry is None or not _stays(hw, kind, vo.read_bytes):
        rd = vo.read_bytes
    if vo.write_bytes == 0:  # a reduction: the tensor it read stays where it was
        return cycles, rd, 0, mem, kind, carry
    if nxt is not None and _stays(hw, kind, vo.write_bytes):
        return cycles, rd, 0, mem, kind, (kind, vo.write_bytes)
    return cycles, rd, vo.write_bytes, mem, kind, None


def simulate_ops(ops: Sequence[Op], hw: HwConfig, req: TimingRequest, *,
                 trace: bool = False,
                 scalesim_geometry: scalesim_timing.Geometries | None = None) -> TimingResult:
    """:func:`simulate` on an already lowered op list (used by tests with hand-built ops)."""
    ctx = _Ctx(hw, req)
    ctx.scalesim_geometry = scalesim_geometry or {}
    saved_fit = _saved_fit(ops, hw, req)
    works: list[OpWork] = []
    parts: list[_Gemm | _Vec] = []
    carry: tuple[str, int] | None = None
    groups = fused_groups(ops, hw)
    fused_in = {j for js in groups.values() for j in js}
    for i, op in enumerate(ops):
        fused = tuple(ops[j] for j in groups.get(i, ()))
        after = i + 1 + len(fused)
        nxt = ops[after] if after < len(ops) else None
        if isinstance(op, GemmOp):
            g, carry = _gemm(ctx, op, carry, nxt, saved_fit, fused)  # type: ignore[arg-type]
            works.append(g.work)
            parts.append(g)
        elif i in fused_in:  # on the output path of the GEMM before it: no pass of its own
            mem = memory_of(hw, "activations") or next(m for m in hw.memory if m.is_sram)
            works.append(OpWork(op.layer, op.pass_name, vector=True))
            parts.append(_Vec(op, _vector_cycles(ctx, op), 0, 0, mem, "activations", True))
        else:
            cyc, rd, wr, mem, kind, carry = _vector(ctx, op, carry, nxt)
            works.append(OpWork(op.layer, op.pass_name, dma_cycles=ctx.dma(rd + wr),
                                array_cycles=cyc, vector=True, write_cycles=ctx.writes(rd, wr)))
            parts.append(_Vec(op, cyc, rd, wr, mem, kind))
    t = hw.technology
    table = f"{t.energy_reference} scaled x{t.node_scale_from_45nm:g} to {t.node_nm:g} nm"
    stats = SearchStats(ctx.cache.searches, ctx.cache.evaluated, ctx.cache.seconds)
    work = engine_work(works)
    if req.schedule == "sequential":
        spans, events = run_schedule(works, trace=trace)
        records = tuple(_record(ctx, p, cyc) for p, cyc in zip(parts, spans, strict=True))
        sched = ScheduleStats("sequential", sum(spans), sum(spans), work)
        return TimingResult(records, events, table, search=stats, schedule=sched)
    works = [replace(w, deps=d, footprint=_footprint(hw, p), first_reads=_first_reads(ctx, p))
             for w, d, p in zip(works, dependencies(ops), parts, strict=True)]
    ov = run_overlapped(works, _capacities(hw), trace=trace)
    elapsed = _elapsed(ov)
    records = tuple(_overlapped(ctx, _record(ctx, p, w.cycles), e)
                    for p, w, e in zip(parts, works, elapsed, strict=True))
    sched = ScheduleStats("overlap", ov.makespan, sum(w.cycles for w in works), work)
    return TimingResult(records, ov.events, table, search=stats, schedule=sched,
                        counters=ov.counters, flows=ov.flows)


def engine_work(works: Sequence[OpWork]) -> tuple[tuple[str, int], ...]:
    """Busy cycles per engine (the same in both schedules: only the placement changes)."""
    acc = {"dma_read": 0, "dma_write": 0, "mac_array": 0, "requantizer": 0, "vector_unit": 0}
    for w in works:
        acc["dma_read"] += w.dma_cycles - w.write_cycles
        acc["dma_write"] += w.write_cycles
        acc["vector_unit" if w.vector else "mac_array"] += w.array_cycles - w.inner_stall
        if w.requant:
            acc["requantizer"] += w.array_cycles
    return tuple(acc.items())


def _is_update(op: Op) -> bool:
    return isinstance(op, VectorOp) and "update" in op.pass_name


def dependencies(ops: Sequence[Op]) -> list[tuple[int, ...]]:
    """The data dependencies of each op (earlier op indices), from the lowering's order.

    The step is one chain of activations then gradients (forward, loss, backward-data and
    the vector ops between them each read the chain's latest tensor). Off the chain:
    backward-weight ops read the chain's gradient but nothing on the chain reads their
    weight gradient; update ops (passes named ``*update``) read their layer's latest op
    (its weight gradient, or the previous update step of that layer), and a later GEMM of
    the layer (e.g. a trial forward) reads the updated weights.
    """
    deps: list[tuple[int, ...]] = []
    chain = -1
    last_of_layer: dict[str, int] = {}
    update_of_layer: dict[str, int] = {}
    for i, op in enumerate(ops):
        if _is_update(op):
            d = {last_of_layer.get(op.layer, -1)}
            update_of_layer[op.layer] = i
        else:
            d = {chain, update_of_layer.get(op.layer, -1)}
            if "backward_weight" not in op.pass_name:
                chain = i
        last_of_layer[op.layer] = i
        deps.append(tuple(sorted(x for x in d if x >= 0)))
    return deps


def _capacities(hw: HwConfig) -> dict[str, int]:
    return {m.name: m.size_bytes for m in hw.memory if m.is_sram}


def _footprint(hw: HwConfig, part: _Gemm | _Vec) -> tuple[tuple[str, int, int], ...]:
    """A GEMM's tile set per SRAM (and, double-buffered, the buffer its stream fills when a
    tensor moves in more than one tile). An
    operand carried on chip from the op before is not streamed and already has its place
    (the residency rule keeps it within half of its buffer): it is left out."""
    if not isinstance(part, _Gemm):
        return ()
    op, dp = part.op, part.mp.dram
    moved = (dp.reads[0], dp.reads[1], dp.writes[2])
    acc: dict[str, list[int]] = {}
    for role, kind, b, n in zip("ABO", (op.a_kind, op.b_kind, op.out_kind), dp.footprint,
                                moved, strict=True):
        mem = memory_of(hw, kind)
        if mem is not None and b and role != part.mp.carried:
            e = acc.setdefault(mem.name, [0, 0])
            e[0] += b
            # a second buffer only for a tensor that moves in more than one tile
            e[1] += b if mem.double_buffered and n > b else 0
    return tuple((k, v[0], v[1]) for k, v in acc.items())


def _first_reads(ctx: _Ctx, part: _Gemm | _Vec) -> int:
    """Cycles of a GEMM's stream that bring its first A and B tiles (latency included)."""
    if not isinstance(part, _Gemm):
        return 0
    fp, carried = part.mp.dram.footprint, part.mp.carried
    return ctx.dma(sum(b for role, b in zip("AB", fp[:2], strict=True) if role != carried))


def _elapsed(ov: Overlapped) -> list[int]:
    """Per op, the cycles it adds to the step: how far its end passes every earlier op's
    (so the ops' shares sum to the step's cycles)."""
    out, front = [], 0
    for s in ov.slots:
        out.append(max(0, s.end - front))
        front = max(front, s.end)
    return out


def _overlapped(ctx: _Ctx, r: LayerPassResult, elapsed: int) -> LayerPassResult:
    """``r`` (costed alone) placed on the overlapped timeline: ``cycles`` becomes its share
    of the step and ``overlap_cycles`` what overlap hid; leakage follows the step's time."""
    m = r.metrics
    energy = dict(m.energy_by_component.items)
    if "leakage" in energy:
        energy["leakage"] = leakage_pj(ctx.hw, elapsed)
    comp = Tally.of(energy)
    m = replace(m, cycles=elapsed, overlap_cycles=m.cycles - elapsed, energy_by_component=comp,
                energy_pj=comp.total)
    return replace(r, metrics=m)


def _binding(ctx: _Ctx, g: _Gemm, cycles: int) -> str:
    if ctx.req.timing == "scalesim":  # SCALE-Sim's memory stalls count as DRAM waits
        return "dram" if scalesim_timing.op_timing(ctx.hw, g.op, ctx.scalesim_geometry)[1] \
            else "compute"
    c = g.mp.cost
    if g.work.dma_cycles > g.work.array_start + g.side + g.work.tail:
        return "dram"
    if g.ports > c.side:
        return "sram"
    if c.binding == "dram":  # DRAM-bound alone, but not after the whole op's DMA
        return "weight_load" if 0 < g.mp.array.stream_cycles <= g.mp.array.load_cycles \
            else "compute"
    return c.binding


def _record(ctx: _Ctx, part: _Gemm | _Vec, cycles: int) -> LayerPassResult:
    hw = ctx.hw
    ma = hw.mac_array
    if isinstance(part, _Gemm):
        op, mp = part.op, part.mp
        rate = mode_rate(ma.mode(mp.mode))
        peak = ma.rows * ma.cols * rate
        arr = mp.cost.array
        if ctx.req.timing == "scalesim":  # SCALE-Sim's memory stalls count as DRAM stalls
            _, st = scalesim_timing.op_timing(hw, op, ctx.scalesim_geometry)
            compute, stalls = cycles - st, Tally.of({"dram": st})
        else:
            busy = max(arr, part.ports)
            stalls = Tally.of({"buffer": busy - arr, "requant": part.side - busy,
                               "dram": cycles - part.side})
            compute = arr
        sram = part.accesses
        rd, wr = int(part.reads.total), int(part.writes.total)
        macs = op.macs
        idle = cycles * ma.rows * ma.cols - Fraction(macs) / rate
        requant = op.groups * op.m * op.n if op.out_bits < ma.accumulator.bits else 0
        rng = requant * (op.random_bits or ma.stochastic_rounding.random_bits_per_rounding) \
            if is_stochastic(op.rounding) else 0
        energy = energy_components(
            hw, cycles=cycles, mode=mp.mode, macs=macs, idle_pe_cycles=max(idle, Fraction(0)),
            sram_accesses=sram, dram_read_bytes=rd, dram_write_bytes=wr,
            requant_events=requant, rounding=op.rounding, rng_bits=rng)
        bound_c = Fraction(macs) / peak
        m = Metrics(
            cycles=cycles, compute_cycles=compute, stall_cycles=cycles - compute,
            macs=macs, dram_read_bytes=rd, dram_write_bytes=wr,
            requant_events=requant, rng_bits=rng,
            bound_compute_cycles=ceil_div(bound_c.numerator, bound_c.denominator),
            bound_dram_cycles=ctx.transfer(rd + wr), energy_pj=energy.total,
            stalls=stalls, macs_by_mode=Tally.of({mp.mode: macs}), sram_accesses=sram,
            energy_by_component=energy, dram_by_kind=part.reads + part.writes)
        util = float(Fraction(macs) / (cycles * peak)) if cycles else 0.0
        return LayerPassResult(op.layer, op.op, op.pass_name, m, gemm=(op.m, op.k, op.n),
                               precision=mp.mode, utilization=util, mapping=mp.notation(),
                               binding=_binding(ctx, part, cycles), on_chip=mp.on_chip(),
                               search_evaluated=mp.evaluated)
    vo, vcyc, rd, wr, mem, kind = part.op, part.cycles, part.rd, part.wr, part.mem, part.kind
    if part.fused:  # its cycles are inside the GEMM's; its data never leaves the path
        vcyc = 0
        sram = Tally()
    else:
        sram = Tally.of({f"{mem.name}.read": _acc_n(mem, vo.read_bytes * 8, 1),
                         f"{mem.name}.write": _acc_n(mem, vo.write_bytes * 8, 1)})
    n_ops = sum(vo.elems * cnt for _, cnt in vo.alu)
    rq = vo.elems * sum(cnt for alu, cnt in vo.alu if alu == "requant")
    energy = energy_components(
        hw, cycles=cycles, sram_accesses=sram, dram_read_bytes=rd, dram_write_bytes=wr,
        requant_events=rq, rounding=vo.rounding, rng_bits=vo.rng_bits,
        vector_alu=[(alu, vo.bits, vo.elems * cnt) for alu, cnt in vo.alu if alu != "requant"])
    m = Metrics(
        cycles=cycles, compute_cycles=vcyc, stall_cycles=cycles - vcyc,
        dram_read_bytes=rd, dram_write_bytes=wr, vector_ops=n_ops,
        requant_events=rq, rng_bits=vo.rng_bits,
        bound_compute_cycles=vcyc, bound_dram_cycles=ctx.transfer(rd + wr),
        energy_pj=energy.total, stalls=Tally.of({"dram": cycles - vcyc}), sram_accesses=sram,
        energy_by_component=energy, dram_by_kind=Tally.of({kind: rd + wr}))
    binding = "fused" if part.fused else "dram" if cycles > vcyc else "vector"
    return LayerPassResult(vo.layer, vo.op, vo.pass_name, m, precision=f"int{vo.bits}",
                           binding=binding)
