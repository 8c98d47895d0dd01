"""The array level of a mapping: spatial unrolling, precision packing and the temporal chunk.

A GEMM ``out[m, n] = sum_k A[m, k] B[k, n]`` runs with two axes unrolled on the array
(:func:`fxpsim.timing.mapping.spatial_axes`) and the third streamed, ``T`` elements per tile
(a *chunk*). The tensor indexed by both spatial axes is stationary.

Precision packing. A mode with ``p`` MACs per PE per cycle (an integer > 1, e.g. INT4 = 4 on
an 8x8 multiplier split four ways) makes the array a *virtual* array of ``rows x a`` by
``cols x b`` PEs with ``a x b = p``: a PE holds ``a x b`` stationary operands and sums ``a``
products per output in its adder tree. ``(a, b)`` is searched: ``b > 1`` multiplies the psums
leaving the array per cycle, ``a > 1`` does not, so the psum SRAM port decides. A mode with
``p <= 1`` (or a non-integer ``p``) streams each element in ``ceil(q / p)`` cycles
(INT16 = 1/4: four passes).

Cycles of one op (integers):

* per tile ``stream = ceil(t x q / p)`` cycles for ``t`` streamed elements, plus the load of
  the stationary operand when it is an input: ``weight_load_cycles_per_tile`` (default
  ``rows``) scaled by the stationary bits of the tile over a full INT8 tile's
  (``ceil(load x used_rows x used_cols x bits / (rows x cols x base_bits))``), hidden behind
  the stream with ``weight_double_buffered`` (exposed ``max(0, load - stream)``);
* one systolic fill/drain per op, ``used physical rows + cols - 2``: consecutive tiles enter
  the array back to back, so only the first fill and the last drain are exposed (SCALE-Sim
  charges one per fold; ``timing=scalesim`` still does);
* a chunk holds at most ``psum buffer bits // (other spatial extent x psum bits)`` elements
  when the reduction is unrolled and spans more than one fold (its partial sums wait in the
  psum SRAM for the next fold); otherwise the whole temporal axis is one chunk.

Candidates for the used rows and cols are near-divisors ``ceil(extent / f)`` next to the
fewest folds on the virtual extent and on its halves: an array twice as big admits every
sub-array a smaller one used, so more PEs are never slower.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

from fxpsim.config.hw import HwConfig, Memory, PrecisionMode
from fxpsim.timing.loopnest import ceil_div, nbytes
from fxpsim.timing.ops import GemmOp

AXES = ("m", "k", "n")
#: axes each GEMM tensor is indexed by
TENSOR_AXES: dict[str, frozenset[str]] = {
    "A": frozenset("mk"), "B": frozenset("kn"), "O": frozenset("mn")}


@dataclass(frozen=True)
class ArrayPlan:
    """One array-level mapping and what it costs on the array and its SRAM ports."""

    rows_axis: str
    cols_axis: str
    temporal_axis: str
    stationary: str  # A, B or O
    packing: tuple[int, int]  # (a, b): virtual rows = rows x a, cols = cols x b
    used: tuple[int, int]  # virtual rows / cols used by a full tile
    chunk: int  # streamed elements per tile
    folds: tuple[int, int, int]  # row folds, col folds, chunks (per group)
    stream_cycles: int
    load_cycles: int  # exposed weight-load cycles
    fill_cycles: int
    # SRAM accesses of the array side, per (memory, "read"|"write"), all groups
    accesses: tuple[tuple[str, int], ...]
    finals: int  # output elements leaving the array (all groups)
    prologue_bytes: int  # first stationary tile + first streamed vector
    epilogue_bytes: int  # last output vector
    psum_elems: tuple[int, int]  # psum SRAM reads / writes (elements)

    @property
    def array_cycles(self) -> int:
        return self.stream_cycles + self.load_cycles + self.fill_cycles

    @property
    def n_tiles(self) -> int:
        return math.prod(self.folds)


@functools.lru_cache(maxsize=64)
def _rate(value: float) -> Fraction:
    return Fraction(str(value))


def mode_rate(mode: PrecisionMode) -> Fraction:
    """MACs per PE per cycle as an exact fraction (0.25 -> 1/4)."""
    return _rate(mode.macs_per_pe_per_cycle)


def packings(rate: Fraction) -> tuple[tuple[int, int], ...]:
    """Virtual-array factorizations ``(a, b)`` of an integer rate > 1 (else ``(1, 1)``)."""
    if rate.denominator != 1 or rate <= 1:
        return ((1, 1),)
    p = rate.numerator
    return tuple((a, p // a) for a in range(p, 0, -1) if p % a == 0)


@functools.lru_cache(maxsize=4096)
def _sizes(extent: int, limit: int) -> tuple[int, ...]:
    """Used-extent candidates: the balanced sizes next to the fewest folds on ``limit`` PEs,
    and (recursively) those of ``limit // 2`` PEs, so twice the PEs admit every candidate of
    the smaller array."""
    out: set[int] = set()
    lim = limit
    while lim >= 1:
        f0 = ceil_div(extent, lim)
        for f in range(f0, f0 + 3):
            out.add(ceil_div(extent, f))
        lim //= 2
    return tuple(sorted(out, reverse=True))


def _classes(extent: int, block: int) -> list[tuple[int, int]]:
    n = ceil_div(extent, block)
    last = extent - (n - 1) * block
    return [(n - 1, block), (1, last)] if n > 1 else [(1, last)]


def base_bits(hw: HwConfig) -> int:
    """Stationary-operand bits a full weight load moves per PE (the rate-1 mode's w_bits)."""
    ones = [m.w_bits for m in hw.mac_array.precision_modes if m.macs_per_pe_per_cycle == 1]
    return ones[0] if ones else max(m.w_bits for m in hw.mac_array.precision_modes)


def psum_memory(hw: HwConfig) -> Memory | None:
    return next((m for m in hw.memory if m.is_sram and "psums" in m.holds), None)


def buffer_bytes(mem: Memory | None) -> int:
    if mem is None:
        return 0
    return mem.size_bytes // 2 if mem.double_buffered else mem.size_bytes


def plan_array(hw: HwConfig, op: GemmOp, axes: tuple[str, str, str], mode: PrecisionMode,
               packing: tuple[int, int], used: tuple[int, int],
               mems: dict[str, Memory | None]) -> ArrayPlan | None:
    """Cost of one array-level candidate; None when its chunk cannot fit the psum SRAM."""
    ma = hw.mac_array
    rows_ax, cols_ax, t_ax = axes
    ext = {"m": op.m, "k": op.k, "n": op.n}
    ur, uc = used
    a, b = packing
    if a * b > 1:
        pe_num, pe_den = 1, 1
    else:
        rate = mode_rate(mode)
        pe_num, pe_den = rate.denominator, rate.numerator
    stat = next(x for x, ax in TENSOR_AXES.items() if ax == frozenset((rows_ax, cols_ax)))
    acc = ma.accumulator
    pbits = acc.psum_bits or acc.bits
    red_spatial = t_ax != "k"
    red_used = ur if rows_ax == "k" else uc
    other_used = uc if rows_ax == "k" else ur
    chunk = ext[t_ax]
    pmem = psum_memory(hw)
    if red_spatial and ceil_div(ext["k"], red_used) > 1 and pmem is not None:
        lim = buffer_bytes(pmem) * 8 // (other_used * pbits)
        if lim < 1:
            return None
        chunk = ceil_div(ext[t_ax], ceil_div(ext[t_ax], min(chunk, lim)))
    g = op.groups
    rc, cc, tc = (_classes(ext[rows_ax], ur), _classes(ext[cols_ax], uc),
                  _classes(ext[t_ax], chunk))
    nr, nc, nt = (ceil_div(ext[rows_ax], ur), ceil_div(ext[cols_ax], uc),
                  ceil_div(ext[t_ax], chunk))
    wl = ma.weight_load_cycles_per_tile
    wl = ma.rows if wl is None else wl
    sbits = {"A": op.a_bits, "B": op.b_bits}.get(stat, 0)
    full_bits = ma.rows * ma.cols * base_bits(hw)
    stream = load = 0
    for ct, t in tc:
        s = ceil_div(t * pe_num, pe_den)
        stream += ct * s * nr * nc
        if stat == "O":
            continue
        for cr, r in rc:
            for ccnt, c in cc:
                ld = ceil_div(wl * r * c * sbits, full_bits)
                if ma.weight_double_buffered:
                    ld = max(0, ld - s)
                load += ct * cr * ccnt * ld
    fill = 0
    if ma.systolic:
        fill = ceil_div(min(ur, ext[rows_ax]), a) + ceil_div(min(uc, ext[cols_ax]), b) - 2
    # array-side SRAM traffic (elements, all groups); a streamed tensor is re-read per
    # fold of the spatial axis it does not use, the stationary one once per chunk
    elems = {"A": op.m * op.k, "B": op.k * op.n, "O": op.m * op.n}
    folds_of = {rows_ax: nr, cols_ax: nc, t_ax: nt}
    reads: dict[str, int] = {}
    for x in ("A", "B"):
        other = next(ax for ax in AXES if ax not in TENSOR_AXES[x])
        reads[x] = g * elems[x] * folds_of[other]
    psum_rd = psum_wr = 0
    finals = g * elems["O"]
    if red_spatial and pmem is not None:
        red_folds = folds_of["k"]
        psum_wr = finals * red_folds
        psum_rd = finals * red_folds  # read-modify-write from the 2nd fold + final read-out
    acc_list: dict[str, int] = {}

    def add(mem: Memory | None, rw: str, n_elems: int, bits: int) -> None:
        if mem is not None and n_elems:
            key = f"{mem.name}.{rw}"
            acc_list[key] = acc_list.get(key, 0) + ceil_div(n_elems * bits, mem.width_bits or 1)

    add(mems["A"], "read", reads["A"], op.a_bits)
    add(mems["B"], "read", reads["B"], op.b_bits)
    add(pmem, "write", psum_wr, pbits)
    add(pmem, "read", psum_rd, pbits)
    add(mems["O"], "write", finals, op.out_bits)
    first_r, first_c = rc[0][1], cc[0][1]
    pro = 0
    if stat != "O":
        pro += nbytes(first_r * first_c, sbits)
    stream_x = next(x for x in ("A", "B") if x != stat) if stat != "O" else "A"
    pro += nbytes(first_r if rows_ax in TENSOR_AXES[stream_x] else first_c,
                  op.a_bits if stream_x == "A" else op.b_bits)
    epi = nbytes(min(uc, ext[cols_ax]) if cols_ax in TENSOR_AXES["O"] else
                 min(ur, ext[rows_ax]), op.out_bits)
    return ArrayPlan(rows_ax, cols_ax, t_ax, stat, packing, used, chunk, (nr, nc, nt),
                     g * stream, g * load, fill, tuple(sorted(acc_list.items())), finals,
                     pro, epi, (psum_rd, psum_wr))


def array_candidates(hw: HwConfig, op: GemmOp, axes: tuple[str, str, str],
                     mode: PrecisionMode) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Every (packing, used rows/cols) the search evaluates, in a fixed order."""
    ma = hw.mac_array
    ext = {"m": op.m, "k": op.k, "n": op.n}
    out = []
    for a, b in packings(mode_rate(mode)):
        for ur in _sizes(ext[axes[0]], ma.rows * a):
            for uc in _sizes(ext[axes[1]], ma.cols * b):
                out.append(((a, b), (ur, uc)))
    return out
