"""Mapping search per unique (op shape, pass, precision mode, residency) and its cost model.

A :class:`Mapping` is the record the reports show per layer x pass: the DRAM-level loop nest
(:mod:`fxpsim.timing.loopnest`), the array-level unrolling (:mod:`fxpsim.timing.arraymap`)
and what each tensor moves. The search picks the DRAM tiling with the least DRAM energy
(it does not depend on the array), then the array candidate with the best objective
(``latency``, ``energy`` or ``edp``; ties keep the first candidate). Results are cached by
shape, so a training step searches each distinct layer shape once.

Cycles of one GEMM (the two concurrent processes of :mod:`fxpsim.timing.schedule`)::

    DMA:    L + D                      D = ceil(DRAM bytes / rate), reads and writes share it
    array:  L + P + max(C, ports, requant) + E

``L`` is the DRAM latency, paid once per op: the DMA keeps requests in flight, so only the
first one waits (with ``dram.max_outstanding`` set, the rate is at most ``max_outstanding x
burst_bytes / latency``, Little's law). ``P`` is the first tile's inputs (stationary tile
and first streamed vector) arriving, ``E`` the last output vector leaving. ``C`` is the
array's cycles, ``ports`` each SRAM's accesses over its banks x ports, ``requant`` the final
outputs over the requantizer lanes; the largest of them binds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from fxpsim.config.hw import HwConfig, Memory, PrecisionMode
from fxpsim.timing.arrayfast import HwConsts, best_array, hw_consts
from fxpsim.timing.arraymap import (
    ArrayPlan,
    array_candidates,
    buffer_bytes,
    mode_rate,
    plan_array,
    psum_memory,
)
from fxpsim.timing.loopnest import (
    ROLES,
    Capacity,
    DramPlan,
    OpShape,
    Role,
    best_dram_plan,
    ceil_div,
    op_shape,
)
from fxpsim.timing.mapping import pass_kind, select_mode, spatial_axes, stationary_tensor
from fxpsim.timing.ops import GemmOp

Objective = Literal["latency", "energy", "edp"]


def norm_kind(kind: str) -> str:
    return "gradients" if kind == "weight_gradients" else kind


def memory_of(hw: HwConfig, kind: str) -> Memory | None:
    found = hw.memories_holding(norm_kind(kind))
    return found[0] if found else None


def dram_rate(hw: HwConfig) -> Fraction:
    """Achievable DRAM bytes per cycle: bandwidth x efficiency, and at most
    ``max_outstanding x burst_bytes`` per latency when the requests in flight are limited."""
    f = Fraction(str(hw.clock.freq_mhz)) * 10**6
    rate = Fraction(str(hw.dram.bandwidth_gb_s)) * 10**9 * Fraction(str(hw.dram.efficiency)) / f
    lat = dram_latency_cycles(hw)
    if hw.dram.max_outstanding is not None and lat > 0:
        rate = min(rate, Fraction(hw.dram.max_outstanding * hw.dram.burst_bytes, lat))
    return rate


def dram_latency_cycles(hw: HwConfig) -> int:
    lat = Fraction(str(hw.dram.latency_ns)) * Fraction(str(hw.clock.freq_mhz)) / 1000
    return ceil_div(lat.numerator, lat.denominator)


def port_cycles(mem: Memory, reads: int, writes: int) -> int:
    return max(ceil_div(reads, mem.banks * mem.ports.read),
               ceil_div(writes, mem.banks * mem.ports.write))


@dataclass(frozen=True)
class OpCost:
    """Cycles and counted actions of one GEMM under one mapping."""

    cycles: int
    latency: int  # L
    dma: int  # D
    prologue: int  # P
    epilogue: int  # E
    array: int  # C
    side: int  # max(C, ports, requant)
    binding: str  # compute | weight_load | sram:<name> | requant | dram
    accesses: tuple[tuple[str, int], ...]  # "<mem>.read|write" -> accesses


@dataclass(frozen=True)
class Mapping:
    """One op's mapping: DRAM tiling + array unrolling + residency, and its cost."""

    kind: str  # forward | dgrad | wgrad
    mode: str
    array: ArrayPlan
    dram: DramPlan
    carried: str  # role whose tensor came from on chip ("" = none)
    kept: bool  # the output stays on chip for the next op
    cost: OpCost
    evaluated: int  # candidates evaluated by the search (DRAM tilings + array mappings)
    shape: OpShape = field(repr=False, compare=False)

    def notation(self) -> str:
        """Compact loop nest, e.g. ``dram[AO inner] C16 FX3 FY3 K4 OX16 OY1 | array k4xn4 T32
        int8 | tiles A:864Bx1 B:576Bx1 O:64Bx1``: DRAM-level tile per dim and the reuse group
        of the innermost loop; the array's used rows x cols (GEMM axis and extent), chunk and
        precision; each tensor's on-chip tile (bytes) and how many times it is streamed from
        DRAM in full (its refetch factor; 1 = read once)."""
        full = dict(self.shape.dims)
        tiles = " ".join(f"{d}{t}" for d, t in self.dram.tiles if full.get(d, 1) > 1 or t > 1)
        ap = self.array
        pk = "" if ap.packing == (1, 1) else f" pack{ap.packing[0]}x{ap.packing[1]}"
        per = " ".join(f"{r}:{fp}Bx{f}" for r, fp, f in
                       zip(("A", "B", "O"), self.dram.footprint, self.dram.fetches, strict=True))
        return (f"dram[{self.dram.innermost} inner] {tiles} | array {ap.rows_axis}{ap.used[0]}x"
                f"{ap.cols_axis}{ap.used[1]} T{ap.chunk} {self.mode}{pk} | tiles {per}")

    def on_chip(self) -> str:
        """Which tensors stay on chip: ``in`` (carried), ``out`` (kept), or ``-``."""
        parts = (["in"] if self.carried else []) + (["out"] if self.kept else [])
        return "+".join(parts) or "-"


def _capacity(hw: HwConfig, op: GemmOp) -> Capacity:
    found = [memory_of(hw, k) for k in (op.a_kind, op.b_kind, op.out_kind)]
    mems = tuple(m.name if m is not None else "" for m in found)
    caps = tuple((m.name, buffer_bytes(m)) for m in hw.memory if m.is_sram)
    return Capacity(mems, caps, buffer_bytes(psum_memory(hw)))  # type: ignore[arg-type]


def op_cost(hw: HwConfig, op: GemmOp, ap: ArrayPlan, dp: DramPlan, requantized: bool,
            rate: Fraction | None = None, lat: int | None = None) -> OpCost:
    """Cycles of ``op`` under one mapping (``rate``/``lat``: precomputed
    :func:`dram_rate` / :func:`dram_latency_cycles`)."""
    rate = dram_rate(hw) if rate is None else rate
    kinds = {"A": op.a_kind, "B": op.b_kind, "O": op.out_kind}
    acc = dict(ap.accesses)
    for i, r in enumerate(ROLES):
        mem = memory_of(hw, kinds[r])
        if mem is None:
            continue
        for rw, nb in (("write", dp.reads[i]), ("read", dp.writes[i])):
            if nb:  # the DMA fills the buffer / drains it
                key = f"{mem.name}.{rw}"
                acc[key] = acc.get(key, 0) + ceil_div(nb * 8, mem.width_bits or 1)
    # the array's own time is bound by streaming, or by loading the stationary operand
    # when the loads take at least as long as the streams they feed
    side = ap.array_cycles
    binding = "weight_load" if 0 < ap.stream_cycles <= ap.load_cycles else "compute"
    for mem in hw.memory:
        if not mem.is_sram:
            continue
        pc = port_cycles(mem, acc.get(f"{mem.name}.read", 0), acc.get(f"{mem.name}.write", 0))
        if pc > side:
            side, binding = pc, f"sram:{mem.name}"
    if requantized:
        rq = ceil_div(ap.finals, hw.mac_array.requantizer.lanes)
        if rq > side:
            side, binding = rq, "requant"
    total = dp.dram_bytes
    if total == 0:
        return OpCost(side, 0, 0, 0, 0, ap.array_cycles, side, binding,
                      tuple(sorted(acc.items())))
    lat = dram_latency_cycles(hw) if lat is None else lat
    d = ceil_div(total * rate.denominator, rate.numerator)
    pro = ceil_div(ap.prologue_bytes * rate.denominator, rate.numerator) if sum(dp.reads) else 0
    epi = ceil_div(ap.epilogue_bytes * rate.denominator, rate.numerator) if dp.writes[2] else 0
    cycles = lat + max(pro + side + epi, d)
    if d > pro + side + epi:
        binding = "dram"
    return OpCost(cycles, lat, d, pro, epi, ap.array_cycles, side, binding,
                  tuple(sorted(acc.items())))


def _energy_proxy(hw: HwConfig, cost: OpCost, macs_rate: Fraction, macs: int,
                  mode: str, prices: dict[str, float]) -> float:
    """The part of the energy an array mapping changes: SRAM accesses, idle PEs, leakage.
    ``prices``: pJ per ``"<memory>.read|write"`` access."""
    e = 0.0
    for key, n in cost.accesses:
        e += n * prices[key]
    pes = hw.mac_array.rows * hw.mac_array.cols
    idle = cost.cycles * pes - macs / float(macs_rate)
    e += idle * hw.energy.idle_pe_fraction * hw.energy.mac[mode]
    e += hw.leakage_mw_total * cost.cycles / hw.freq_hz * 1e9
    return e


@dataclass
class SearchCache:
    """Per-run cache of mappings by op shape, with the search effort it took."""

    objective: Objective = "latency"
    entries: dict[tuple[object, ...], Mapping | None] = field(default_factory=dict)
    searches: int = 0
    evaluated: int = 0
    seconds: float = 0.0
    #: the config the constants below belong to, and its constants for the array scan
    consts: tuple[HwConfig, HwConsts, Fraction] | None = field(default=None, repr=False)

    def hw_consts(self, hw: HwConfig) -> HwConsts:
        return self._consts(hw)[1]

    def dram_rate(self, hw: HwConfig) -> Fraction:
        """:func:`dram_rate` of ``hw``, computed once."""
        return self._consts(hw)[2]

    def _consts(self, hw: HwConfig) -> tuple[HwConfig, HwConsts, Fraction]:
        if self.consts is None or self.consts[0] is not hw:
            rate = dram_rate(hw)
            self.consts = (hw, hw_consts(hw, rate.numerator, rate.denominator,
                                         dram_latency_cycles(hw)), rate)
        return self.consts


def _key(op: GemmOp, carried: str, keep: bool) -> tuple[object, ...]:
    return (op.m, op.k, op.n, op.groups, op.loop_dims, op.stride, op.in_hw, op.a_kind,
            op.b_kind, op.out_kind, op.a_bits, op.b_bits, op.out_bits, op.float_operands,
            carried, keep)


def best_array_reference(hw: HwConfig, op: GemmOp, axes: tuple[str, str, str],
                         mode: PrecisionMode, dp: DramPlan, objective: Objective,
                         cands: list[tuple[tuple[int, int], tuple[int, int]]]
                         ) -> tuple[int | None, tuple[float, ...] | None]:
    """The plain twin of :func:`fxpsim.timing.arrayfast.best_array`: plan and cost every
    candidate (:func:`plan_array`, :func:`op_cost`, the energy proxy) and keep the first best
    score; (index, score), None when no candidate fits."""
    mems = _mems(hw, op)
    requantized = op.out_bits < hw.mac_array.accumulator.bits
    rate = mode_rate(mode)
    d_rate, d_lat = dram_rate(hw), dram_latency_cycles(hw)
    prices = {f"{m.name}.{rw}": (p or 0.0) for m in hw.memory
              for rw, p in (("read", m.read_energy_pj), ("write", m.write_energy_pj))}
    best: tuple[float, ...] | None = None
    pick = None
    for idx, (packing, used) in enumerate(cands):
        ap = plan_array(hw, op, axes, mode, packing, used, mems)
        if ap is None:
            continue
        cost = op_cost(hw, op, ap, dp, requantized, d_rate, d_lat)
        e = _energy_proxy(hw, cost, rate, op.macs, mode.name, prices)
        if objective == "latency":
            score: tuple[float, ...] = (cost.cycles, e)
        else:
            score = (e, cost.cycles) if objective == "energy" else (e * cost.cycles,
                                                                     cost.cycles)
        if best is None or score < best:
            best, pick = score, idx
    return pick, best


def _mems(hw: HwConfig, op: GemmOp) -> dict[str, Memory | None]:
    return {r: memory_of(hw, k) for r, k in zip(ROLES, (op.a_kind, op.b_kind, op.out_kind),
                                                strict=True)}


def search(hw: HwConfig, op: GemmOp, cache: SearchCache, *, carried: Role | None = None,
           keep_out: bool = False) -> Mapping | None:
    """The best mapping of ``op`` (None when nothing fits with this residency)."""
    key = _key(op, carried or "", keep_out)
    if key in cache.entries:
        return cache.entries[key]
    t0 = time.perf_counter()
    kind = pass_kind(op)
    axes = spatial_axes(hw, op)
    mode = select_mode(hw, op, stationary_tensor(axes[0], axes[1]))
    acc = hw.mac_array.accumulator
    shape = op_shape(op, kind, acc.psum_bits or acc.bits)
    dp = best_dram_plan(shape, _capacity(hw, op), carried=carried, keep_out=keep_out,
                        read_pj=hw.dram.read_energy_pj_per_byte or 1.0,
                        write_pj=hw.dram.write_energy_pj_per_byte or 1.0,
                        bytes_first=cache.objective == "latency")
    result: Mapping | None = None
    evaluated = dp.evaluated if dp is not None else 0
    if dp is not None:
        mems = _mems(hw, op)
        cands = array_candidates(hw, op, axes, mode)
        evaluated += len(cands)
        pick, _ = best_array(cache.hw_consts(hw), hw, op, axes, mode, dp, mems, cands,
                             cache.objective)
        if pick is not None:
            packing, used = cands[pick]
            ap = plan_array(hw, op, axes, mode, packing, used, mems)
            assert ap is not None
            cost = op_cost(hw, op, ap, dp, op.out_bits < acc.bits, cache.dram_rate(hw),
                           cache.hw_consts(hw).lat)
            result = Mapping(kind, mode.name, ap, dp, carried or "", keep_out, cost,
                             evaluated, shape)
    cache.searches += 1
    cache.evaluated += evaluated
    cache.seconds += time.perf_counter() - t0
    cache.entries[key] = result
    return result
