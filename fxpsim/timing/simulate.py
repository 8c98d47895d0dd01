"""Time-plane entry point: lowered ops -> mapping -> SimPy schedule -> records with energy.

Data residency policy (simple and explicit)
-------------------------------------------
* A tensor kind lives in the first SRAM whose ``holds`` lists it (``weight_gradients`` ->
  ``gradients``). One buffer of a double-buffered SRAM (half its size) is the capacity.
* Per GEMM the operands are placed in that capacity in this order: an input carried on chip
  from the previous op, then inputs by how often the loop nest sweeps them (most first),
  then the output if the next op consumes it. A tensor that fits is *resident*: read from
  DRAM once (during its first sweep; a carried input not at all). One that does not fit is
  re-fetched from DRAM on every sweep, tile by tile.
* The output stays on chip iff it is resident and the next op consumes it (a vector op, or a
  GEMM reading that tensor kind); otherwise each tile writes its final outputs to DRAM.
* Vector ops whose DRAM bytes the lowering left at 0: the input (``read_bytes``) comes from
  the chip if the previous op left its output there (and it fits), else from DRAM; the output
  (``write_bytes``) stays on chip (carried on) if it fits and another op follows, else it is
  written to DRAM. A reduction (no output) leaves the carried tensor as it was.
* Training: if the activations the forward GEMMs read (largest forward pass) do not all fit
  in the activation buffer, a forward GEMM whose input came from the chip also writes that
  input to DRAM once (saved for backward, counted as DRAM write bytes).
* ``*_update`` vector ops without DRAM bytes from the lowering read their state (master
  weights, optimizer state: ``read_bytes``) from DRAM and write it back (``write_bytes``)
  unless it fits in the SRAM holding ``optimizer_state``.

Each tile's DMA slot carries its input reads and the write-back of its outputs: ``latency +
ceil(bytes / DRAM bytes per cycle)`` cycles (0 without bytes). The array's time per tile is
the mapping's cycles, stretched if an SRAM port (``buffer`` stall) or the requantizer
(``lanes`` outputs per cycle, ``requant`` stall) is slower; the remaining wait is ``dram``.
Classes of identical tiles are merged (first appearance order) into tile groups.

``timing=scalesim``: each GEMM's cycles are SCALE-Sim's compute cycles
(:mod:`fxpsim.timing.scalesim_timing`), with no DRAM or other stalls; action counts and
energy are the native ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from fxpsim.config.hw import HwConfig, Memory
from fxpsim.errors import ConfigError
from fxpsim.graph.ir import Graph
from fxpsim.results import LayerPassResult, Metrics, Tally
from fxpsim.timing import scalesim_timing
from fxpsim.timing.energy import energy_components, is_stochastic
from fxpsim.timing.mapping import ceil_div, hw_source, map_gemm, nbytes, widest_mode
from fxpsim.timing.ops import GemmOp, Op, TimingRequest, VectorOp
from fxpsim.timing.schedule import OpWork, TileGroup, run_schedule
from fxpsim.timing.trace import TraceEvent

_OPS_CYCLES_ALIAS = {"cmp": "max", "min": "max", "sub": "add"}


@dataclass(frozen=True)
class TimingResult:
    records: tuple[LayerPassResult, ...]
    events: tuple[TraceEvent, ...]
    energy_table: str
    notes: tuple[str, ...] = ()  # caveats the reports must show (e.g. float baseline timing)


def simulate(graph: Graph, hw: HwConfig, req: TimingRequest, *,
             trace: bool = False) -> TimingResult:
    """Cycles, action counts and energy of one step of ``graph`` on ``hw`` (see module doc)."""
    from fxpsim.timing.lowering import lower

    bits = hw.mac_array.stochastic_rounding.random_bits_per_rounding
    ops = lower(graph, req, random_bits=bits)
    result = simulate_ops(ops, hw, req, trace=trace)
    if any(isinstance(op, GemmOp) and op.float_operands for op in ops):
        widest = widest_mode(hw)
        note = (f"float operands: {hw.name} has no float MAC; GEMMs with a float operand are "
                f"timed in its widest integer mode ({widest.name}) when no mode covers them")
        result = replace(result, notes=(*result.notes, note))
    return result


def dram_rate(hw: HwConfig) -> Fraction:
    """Achievable DRAM bytes per cycle as an exact fraction."""
    f = Fraction(str(hw.clock.freq_mhz)) * 10**6
    return Fraction(str(hw.dram.bandwidth_gb_s)) * 10**9 * Fraction(str(hw.dram.efficiency)) / f


def dram_latency_cycles(hw: HwConfig) -> int:
    lat = Fraction(str(hw.dram.latency_ns)) * Fraction(str(hw.clock.freq_mhz)) / 1000
    return ceil_div(lat.numerator, lat.denominator)


def _norm(kind: str) -> str:
    return "gradients" if kind == "weight_gradients" else kind


def _mem(hw: HwConfig, kind: str) -> Memory | None:
    found = hw.memories_holding(_norm(kind))
    return found[0] if found else None


def _cap(mem: Memory | None) -> int:
    if mem is None:
        return 0
    return mem.size_bytes // 2 if mem.double_buffered else mem.size_bytes


class _Ctx:
    def __init__(self, hw: HwConfig, req: TimingRequest) -> None:
        self.hw, self.req = hw, req
        self.bw = dram_rate(hw)
        self.lat = dram_latency_cycles(hw)

    def dma(self, nbytes_: int) -> int:
        if nbytes_ <= 0:
            return 0
        return self.lat + ceil_div(nbytes_ * self.bw.denominator, self.bw.numerator)

    def dram_bound(self, nbytes_: int) -> int:
        return ceil_div(nbytes_ * self.bw.denominator, self.bw.numerator)


@dataclass
class _Acc:
    """Mutable per-op accumulator (local to this module)."""

    macs: int = 0
    compute: int = 0
    buffer: int = 0
    requant_stall: int = 0
    busy: int = 0
    rd: int = 0
    wr: int = 0
    requant: int = 0
    rng: int = 0

    def __post_init__(self) -> None:
        self.sram: dict[str, int] = {}

    def access(self, mem: Memory | None, rw: str, n: int) -> None:
        if mem is not None and n:
            key = f"{mem.name}.{rw}"
            self.sram[key] = self.sram.get(key, 0) + n


def _acc_n(mem: Memory | None, elems: int, bits: int) -> int:
    return 0 if mem is None or not elems else ceil_div(elems * bits, mem.width_bits or 1)


def _port_cycles(mem: Memory | None, reads: int, writes: int) -> int:
    if mem is None:
        return 0
    return max(ceil_div(reads, mem.banks * mem.ports.read),
               ceil_div(writes, mem.banks * mem.ports.write))


def _saved_fit(ops: Sequence[Op], hw: HwConfig, req: TimingRequest) -> bool:
    if req.phase != "train":
        return True
    per_pass: dict[str, int] = {}
    for op in ops:
        if isinstance(op, GemmOp) and op.a_kind == "activations" and op.out_kind == "activations":
            per_pass[op.pass_name] = (per_pass.get(op.pass_name, 0)
                                      + nbytes(op.groups * op.m * op.k, op.a_bits))
    return max(per_pass.values(), default=0) <= _cap(_mem(hw, "activations"))


def _consumes(nxt: Op | None, kind: str) -> bool:
    if nxt is None:
        return False
    if isinstance(nxt, VectorOp):
        return True
    return _norm(kind) in (_norm(nxt.a_kind), _norm(nxt.b_kind))


def _gemm(ctx: _Ctx, op: GemmOp, carry: tuple[str, int] | None, nxt: Op | None,
          saved_fit: bool) -> tuple[_Acc, tuple[TileGroup, ...], object, tuple[str, int] | None]:
    hw = ctx.hw
    mp = map_gemm(hw, op)
    g = op.groups
    kinds = {"A": op.a_kind, "B": op.b_kind, "O": op.out_kind}
    bits = {"A": op.a_bits, "B": op.b_bits, "O": op.out_bits}
    total = {"A": nbytes(g * op.m * op.k, op.a_bits), "B": nbytes(g * op.k * op.n, op.b_bits),
             "O": nbytes(g * op.m * op.n, op.out_bits)}
    mems = {x: _mem(hw, kinds[x]) for x in kinds}
    carried = {x: False for x in kinds}
    if carry is not None:
        for x in ("A", "B"):
            if _norm(kinds[x]) == carry[0]:
                carried[x] = True
                break
    consumed = _consumes(nxt, op.out_kind)
    order = [x for x in ("A", "B") if carried[x]]
    order += sorted((x for x in ("A", "B") if not carried[x]), key=lambda x: -mp.sweeps(x))
    order += ["O"] if consumed else []
    left = {m.name: _cap(m) for m in hw.memory if m.is_sram}
    resident = {x: False for x in kinds}
    for x in order:
        mem = mems[x]
        if mem is not None and total[x] <= left[mem.name]:
            resident[x] = True
            left[mem.name] -= total[x]
    keep_out = resident["O"] and consumed
    save_a = (ctx.req.phase == "train" and mp.kind == "forward" and carried["A"]
              and not saved_fit and op.a_kind == "activations")
    acc_cfg = hw.mac_array.accumulator
    pbits = acc_cfg.psum_bits or acc_cfg.bits
    pmem = next((m for m in hw.memory if m.is_sram and "psums" in m.holds), None)
    requantized = op.out_bits < acc_cfg.bits
    lanes = hw.mac_array.requantizer.lanes
    rbits = hw.mac_array.stochastic_rounding.random_bits_per_rounding
    a = _Acc()
    merged: dict[tuple[int, int, bool], int] = {}
    for tc in mp.tiles:
        n = tc.count
        rd = wr = 0
        reads: dict[str, int] = {}
        writes: dict[str, int] = {}

        def add(mem: Memory | None, rw: str, cnt: int, reads=reads, writes=writes,
                n=n) -> None:
            if mem is not None and cnt:
                d = reads if rw == "read" else writes
                d[mem.name] = d.get(mem.name, 0) + cnt
                a.access(mem, rw, cnt * n)

        for x in ("A", "B"):
            tb = nbytes(tc.tile_elems(x), bits[x])
            fetch = 0 if (carried[x] and resident[x]) else (
                tb if (not resident[x] or tc.is_first(x)) else 0)
            rd += fetch
            add(mems[x], "write", _acc_n(mems[x], fetch * 8, 1))  # DMA fills the buffer
            add(mems[x], "read", _acc_n(mems[x], tc.tile_elems(x), bits[x]))
            if x == "A" and save_a and tc.is_first("A"):
                wr += tb
        final = tc.tile_elems("O") if tc.red_last else 0
        if mp.reduction_spatial:
            p = _acc_n(pmem, tc.tile_elems("O"), pbits)
            add(pmem, "write", p)
            add(pmem, "read", p * ((0 if tc.red_first else 1) + (1 if tc.red_last else 0)))
        add(mems["O"], "write", _acc_n(mems["O"], final, bits["O"]))
        if not keep_out and final:
            wr += nbytes(final, bits["O"])
            add(mems["O"], "read", _acc_n(mems["O"], final, bits["O"]))
        q = ceil_div(final, lanes) if (requantized and final) else 0
        port = max((_port_cycles(m, reads.get(m.name, 0), writes.get(m.name, 0))
                    for m in hw.memory if m.is_sram), default=0)
        c = tc.array_cycles
        s = max(c, port)
        c_eff = max(s, q)
        a.macs += n * tc.macs
        a.compute += n * c
        a.buffer += n * (s - c)
        a.requant_stall += n * (c_eff - s)
        a.busy += n * c_eff
        a.rd += n * rd
        a.wr += n * wr
        if requantized:
            a.requant += n * final
            if is_stochastic(op.rounding):
                a.rng += n * final * (op.random_bits or rbits)
        key = (ctx.dma(rd + wr), c_eff, bool(requantized and final))
        merged[key] = merged.get(key, 0) + n
    groups = tuple(TileGroup(n, d, c, rq) for (d, c, rq), n in merged.items())
    new_carry = (_norm(op.out_kind), total["O"]) if keep_out else None
    return a, groups, mp, new_carry


def _vector(ctx: _Ctx, vo: VectorOp, carry: tuple[str, int] | None, nxt: Op | None
            ) -> tuple[int, int, int, int, Memory | None, tuple[str, int] | None]:
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
    cycles = ceil_div(vo.elems, vu.lanes) * per_elem
    rd, wr = vo.dram_read_bytes, vo.dram_write_bytes
    upd = vo.kind.endswith("_update")
    mem = _mem(hw, "optimizer_state" if upd else "activations") or next(
        m for m in hw.memory if m.is_sram)
    if upd:
        if rd == 0 and wr == 0 and vo.read_bytes > _cap(_mem(hw, "optimizer_state")):
            rd, wr = vo.read_bytes, vo.write_bytes
        return cycles, rd, wr, ctx.dma(rd + wr), mem, None
    if rd or wr:  # the lowering decided the DRAM traffic itself
        return cycles, rd, wr, ctx.dma(rd + wr), mem, None
    kind = carry[0] if carry is not None else "activations"
    cap = _cap(_mem(hw, kind))
    if carry is None or vo.read_bytes > cap:
        rd = vo.read_bytes
    if vo.write_bytes == 0:  # a reduction: the tensor it read stays where it was
        return cycles, rd, 0, ctx.dma(rd), mem, carry
    if nxt is not None and vo.write_bytes <= cap:
        return cycles, rd, 0, ctx.dma(rd), mem, (kind, vo.write_bytes)
    return cycles, rd, vo.write_bytes, ctx.dma(rd + vo.write_bytes), mem, None


def _gemm_memo(memo: dict[tuple, tuple], ctx: _Ctx, op: GemmOp, carry: tuple[str, int] | None,
               nxt: Op | None, saved_fit: bool
               ) -> tuple[_Acc, tuple[TileGroup, ...], object, tuple[str, int] | None]:
    """:func:`_gemm`, computed once per distinct op: its result depends on the op's shape,
    kinds and widths, never on the layer's name, so the repeated layers of big models (and
    10,000-row topologies) are mapped once. The mapping keeps the op it was made for."""
    key = (replace(op, layer=""), carry, _consumes(nxt, op.out_kind), saved_fit)
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = _gemm(ctx, op, carry, nxt, saved_fit)
        return hit  # type: ignore[return-value]
    a, groups, mp, new_carry = hit
    return a, groups, replace(mp, op=op), new_carry


def simulate_ops(ops: Sequence[Op], hw: HwConfig, req: TimingRequest, *,
                 trace: bool = False) -> TimingResult:
    """:func:`simulate` on an already lowered op list (used by tests with hand-built ops)."""
    ctx = _Ctx(hw, req)
    ma = hw.mac_array
    saved_fit = _saved_fit(ops, hw, req)
    memo: dict[tuple, tuple] = {}
    works: list[OpWork] = []
    parts: list[tuple] = []
    carry: tuple[str, int] | None = None
    for i, op in enumerate(ops):
        nxt = ops[i + 1] if i + 1 < len(ops) else None
        if isinstance(op, GemmOp):
            a, groups, mp, carry = _gemm_memo(memo, ctx, op, carry, nxt, saved_fit)
            if req.timing == "scalesim":
                cyc = scalesim_timing.gemm_cycles(ma.dataflow, ma.rows, ma.cols,
                                                  op.m, op.k, op.n, op.groups)
                groups = (TileGroup(1, 0, cyc, a.requant > 0),)
            works.append(OpWork(op.layer, op.pass_name, groups=groups))
            parts.append(("gemm", op, a, mp))
        else:
            cyc, rd, wr, dcyc, mem, carry = _vector(ctx, op, carry, nxt)
            works.append(OpWork(op.layer, op.pass_name, vector_cycles=cyc,
                                vector_dma_cycles=dcyc))
            parts.append(("vector", op, (cyc, rd, wr, mem), None))
    spans, events = run_schedule(works, trace=trace)
    records = tuple(_record(ctx, p, cyc) for p, cyc in zip(parts, spans, strict=True))
    t = hw.technology
    table = f"{t.energy_reference} scaled x{t.node_scale_from_45nm:g} to {t.node_nm:g} nm"
    return TimingResult(records, events, table)


def _record(ctx: _Ctx, part: tuple, cycles: int) -> LayerPassResult:
    hw = ctx.hw
    ma = hw.mac_array
    tag, op, a, mp = part
    if tag == "gemm":
        rate = mp.rate
        peak = ma.rows * ma.cols * rate
        if ctx.req.timing == "scalesim":
            compute, stalls = cycles, Tally()
        else:
            compute = a.compute
            stalls = Tally.of({"buffer": a.buffer, "requant": a.requant_stall,
                               "dram": cycles - a.busy})
        sram = Tally.of(a.sram)
        idle = cycles * ma.rows * ma.cols - Fraction(a.macs) / rate
        energy = energy_components(
            hw, cycles=cycles, mode=mp.mode.name, macs=a.macs, idle_pe_cycles=idle,
            sram_accesses=sram, dram_read_bytes=a.rd, dram_write_bytes=a.wr,
            requant_events=a.requant, rounding=op.rounding, rng_bits=a.rng)
        bound_c = Fraction(a.macs) / peak
        m = Metrics(
            cycles=cycles, compute_cycles=compute, stall_cycles=cycles - compute,
            macs=a.macs, dram_read_bytes=a.rd, dram_write_bytes=a.wr,
            requant_events=a.requant, rng_bits=a.rng,
            bound_compute_cycles=ceil_div(bound_c.numerator, bound_c.denominator),
            bound_dram_cycles=ctx.dram_bound(a.rd + a.wr), energy_pj=energy.total,
            stalls=stalls, macs_by_mode=Tally.of({mp.mode.name: a.macs}), sram_accesses=sram,
            energy_by_component=energy)
        util = float(Fraction(a.macs) / (cycles * peak)) if cycles else 0.0
        return LayerPassResult(op.layer, op.op, op.pass_name, m, gemm=(op.m, op.k, op.n),
                               precision=mp.mode.name, utilization=util)
    vcyc, rd, wr, mem = a
    sram = Tally.of({f"{mem.name}.read": _acc_n(mem, op.read_bytes * 8, 1),
                     f"{mem.name}.write": _acc_n(mem, op.write_bytes * 8, 1)})
    n_ops = sum(op.elems * cnt for _, cnt in op.alu)
    rq = op.elems * sum(cnt for alu, cnt in op.alu if alu == "requant")
    energy = energy_components(
        hw, cycles=cycles, sram_accesses=sram, dram_read_bytes=rd, dram_write_bytes=wr,
        requant_events=rq, rounding=op.rounding, rng_bits=op.rng_bits,
        vector_alu=[(alu, op.bits, op.elems * cnt) for alu, cnt in op.alu if alu != "requant"])
    m = Metrics(
        cycles=cycles, compute_cycles=vcyc, stall_cycles=cycles - vcyc,
        dram_read_bytes=rd, dram_write_bytes=wr, vector_ops=n_ops,
        requant_events=rq, rng_bits=op.rng_bits,
        bound_compute_cycles=vcyc, bound_dram_cycles=ctx.dram_bound(rd + wr),
        energy_pj=energy.total, stalls=Tally.of({"dram": cycles - vcyc}), sram_accesses=sram,
        energy_by_component=energy)
    return LayerPassResult(op.layer, op.op, op.pass_name, m, precision=f"int{op.bits}")
