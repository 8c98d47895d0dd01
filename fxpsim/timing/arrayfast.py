"""The array-candidate scan of the mapping search, fast: only the score of each candidate.

:func:`fxpsim.timing.search.search` ranks every array candidate of one op by
``(cycles, energy proxy)`` (or the energy / EDP objective). The plain route builds an
:class:`~fxpsim.timing.arraymap.ArrayPlan` and an :class:`~fxpsim.timing.search.OpCost` per
candidate; :func:`best_array` computes the same integers and the same floating-point sums,
in the same order, with everything that does not depend on the candidate computed once
(per config, then per op), and returns the index of the winner, whose plan the search then
builds the plain way. :func:`fxpsim.timing.search.best_array_reference` is its oracle twin;
the tests compare the two on every shipped config and many shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from fxpsim.config.hw import HwConfig, Memory, PrecisionMode
from fxpsim.timing.arraymap import TENSOR_AXES, base_bits, buffer_bytes, mode_rate, psum_memory
from fxpsim.timing.loopnest import DramPlan
from fxpsim.timing.ops import GemmOp


@dataclass(frozen=True)
class HwConsts:
    """What the scan needs of one config, computed once per run."""

    slot: dict[str, int]  # "<memory>.read|write" -> index, in sorted key order
    prices: tuple[float, ...]  # pJ per access, per slot
    ports: tuple[tuple[int, int, int, int], ...]  # per SRAM: read slot, write slot, divisors
    psum: tuple[int, int, int, int] | None  # psum SRAM: read slot, write slot, width, bits
    rate_num: int  # DRAM bytes per cycle as a fraction
    rate_den: int
    lat: int
    pes: int
    idle_frac: float
    leak: float
    freq: float
    wl: int  # weight-load cycles of a full tile
    full_bits: int  # rows x cols x base bits
    double_buffered: bool
    systolic: bool
    rq_lanes: int
    acc_bits: int
    pbits: int


def hw_consts(hw: HwConfig, rate_num: int, rate_den: int, lat: int) -> HwConsts:
    srams = [m for m in hw.memory if m.is_sram]
    keys = sorted({f"{m.name}.{rw}" for m in srams for rw in ("read", "write")})
    slot = {k: i for i, k in enumerate(keys)}
    price: dict[str, float] = {}
    for m in srams:  # the last memory of a name wins, as in the plain route's dict
        price[f"{m.name}.read"] = m.read_energy_pj or 0.0
        price[f"{m.name}.write"] = m.write_energy_pj or 0.0
    ma = hw.mac_array
    pm = psum_memory(hw)
    acc = ma.accumulator
    pbits = acc.psum_bits or acc.bits
    psum = None if pm is None else (slot[f"{pm.name}.read"], slot[f"{pm.name}.write"],
                                    pm.width_bits or 1, buffer_bytes(pm) * 8)
    wl = ma.weight_load_cycles_per_tile
    return HwConsts(
        slot, tuple(price[k] for k in keys),
        tuple((slot[f"{m.name}.read"], slot[f"{m.name}.write"], m.banks * m.ports.read,
               m.banks * m.ports.write) for m in srams),
        psum, rate_num, rate_den, lat, ma.rows * ma.cols, hw.energy.idle_pe_fraction,
        hw.leakage_mw_total, hw.freq_hz, ma.rows if wl is None else wl,
        ma.rows * ma.cols * base_bits(hw), ma.weight_double_buffered, ma.systolic,
        ma.requantizer.lanes, acc.bits, pbits)


def _cd(a: int, b: int) -> int:
    return -(-a // b)


def _classes(extent: int, block: int) -> tuple[tuple[int, int], ...]:
    n = -(-extent // block)
    last = extent - (n - 1) * block
    return ((n - 1, block), (1, last)) if n > 1 else ((1, last),)


def best_array(hc: HwConsts, hw: HwConfig, op: GemmOp, axes: tuple[str, str, str],
               mode: PrecisionMode, dp: DramPlan, mems: dict[str, Memory | None],
               cands: list[tuple[tuple[int, int], tuple[int, int]]], objective: str
               ) -> tuple[int | None, tuple[float, ...] | None]:
    """Index in ``cands`` of the best candidate (the first of equal scores) and its score,
    or None when no candidate fits (see :func:`fxpsim.timing.search.best_array_reference`)."""
    rows_ax, cols_ax, t_ax = axes
    ext = {"m": op.m, "k": op.k, "n": op.n}
    e_r, e_c, e_t, e_k = ext[rows_ax], ext[cols_ax], ext[t_ax], op.k
    stat = next(x for x, ax in TENSOR_AXES.items() if ax == frozenset((rows_ax, cols_ax)))
    g = op.groups
    red_spatial = t_ax != "k"
    k_on_rows = rows_ax == "k"
    psum = hc.psum
    pbits = hc.pbits
    sbits = {"A": op.a_bits, "B": op.b_bits}.get(stat, 0)
    wl, full_bits, dbuf = hc.wl, hc.full_bits, hc.double_buffered
    # which fold count ("r", "c" or "t") each axis takes
    pos = {rows_ax: 0, cols_ax: 1, t_ax: 2}
    a_other, b_other, k_pos = pos["n"], pos["m"], pos["k"]
    a_el, b_el = g * op.m * op.k, g * op.k * op.n
    finals = g * op.m * op.n
    # accesses that do not depend on the candidate: the output write, the DMA fills/drains
    base = [0] * len(hc.prices)
    ma_, mb_ = mems["A"], mems["B"]
    slot_a = -1 if ma_ is None else hc.slot[f"{ma_.name}.read"]
    slot_b = -1 if mb_ is None else hc.slot[f"{mb_.name}.read"]
    wid_a = 1 if ma_ is None else ma_.width_bits or 1
    wid_b = 1 if mb_ is None else mb_.width_bits or 1
    mo = mems["O"]
    if mo is not None and finals:
        base[hc.slot[f"{mo.name}.write"]] += _cd(finals * op.out_bits, mo.width_bits or 1)
    for i, role in enumerate("ABO"):
        mem = mems[role]
        if mem is None:
            continue
        for rw, nb in (("write", dp.reads[i]), ("read", dp.writes[i])):
            if nb:
                base[hc.slot[f"{mem.name}.{rw}"]] += _cd(nb * 8, mem.width_bits or 1)
    requantized = op.out_bits < hc.acc_bits
    rq = _cd(finals, hc.rq_lanes) if requantized else 0
    total = dp.dram_bytes
    rn, rd = hc.rate_num, hc.rate_den
    d = _cd(total * rd, rn)
    any_reads = sum(dp.reads) > 0
    o_writes = dp.writes[2] > 0
    macs_f = op.macs / float(mode_rate(mode))
    mac_pj = hw.energy.mac[mode.name]
    idle_frac, leak, freq, pes, lat = hc.idle_frac, hc.leak, hc.freq, hc.pes, hc.lat
    prices = hc.prices
    nslots = len(prices)
    ports = hc.ports
    rate = mode_rate(mode)
    s_is_a = stat == "A"
    stream_x = ("B" if s_is_a else "A") if stat != "O" else "A"
    sx_bits = op.a_bits if stream_x == "A" else op.b_bits
    sx_rows = rows_ax in TENSOR_AXES[stream_x]
    o_cols = cols_ax in TENSOR_AXES["O"]
    best: tuple[float, ...] | None = None
    pick: int | None = None
    latency = objective == "latency"
    pro = epi = 0
    r_num, r_den = rate.numerator, rate.denominator
    rows_cls: dict[int, tuple[tuple[int, int], ...]] = {}
    cols_cls: dict[int, tuple[tuple[int, int], ...]] = {}
    for idx, ((pa, pb), (ur, uc)) in enumerate(cands):
        if pa * pb > 1:
            pe_num = pe_den = 1
        else:
            pe_num, pe_den = r_den, r_num
        chunk = e_t
        if red_spatial and psum is not None and -(-e_k // (ur if k_on_rows else uc)) > 1:
            lim = psum[3] // ((uc if k_on_rows else ur) * pbits)
            if lim < 1:
                continue
            chunk = -(-e_t // -(-e_t // (chunk if chunk < lim else lim)))
        nr, nc, nt = -(-e_r // ur), -(-e_c // uc), -(-e_t // chunk)
        rc = rows_cls.get(ur)
        if rc is None:
            rc = rows_cls[ur] = _classes(e_r, ur)
        cc = cols_cls.get(uc)
        if cc is None:
            cc = cols_cls[uc] = _classes(e_c, uc)
        mr = ur if ur < e_r else e_r
        mc = uc if uc < e_c else e_c
        stream = load = 0
        for ct, t in _classes(e_t, chunk):
            s = -(-(t * pe_num) // pe_den)
            stream += ct * s * nr * nc
            if stat == "O":
                continue
            for cr, r in rc:
                for ccnt, c in cc:
                    ld = -(-(wl * r * c * sbits) // full_bits)
                    if dbuf:
                        ld = max(0, ld - s)
                    load += ct * cr * ccnt * ld
        fill = 0
        if hc.systolic:
            fill = -(-mr // pa) + -(-mc // pb) - 2
        side = g * stream + g * load + fill
        if total:
            first_r, first_c = rc[0][1], cc[0][1]
            pro_b = 0
            if stat != "O":
                pro_b = -(-(first_r * first_c * sbits) // 8)
            pro_b += -(-((first_r if sx_rows else first_c) * sx_bits) // 8)
            epi_b = -(-((mc if o_cols else mr) * op.out_bits) // 8)
            pro = -(-(pro_b * rd) // rn) if any_reads else 0
            epi = -(-(epi_b * rd) // rn) if o_writes else 0
        if latency and best is not None:
            # ports and the requantizer only add to ``side``: a candidate whose array alone
            # is slower than the best so far cannot win
            low = side if total == 0 else lat + max(pro + side + epi, d)
            if low > best[0]:
                continue
        folds = (nr, nc, nt)
        acc = base[:] if nslots else base
        if slot_a >= 0:
            n_a = a_el * folds[a_other]
            if n_a:
                acc[slot_a] += -(-(n_a * op.a_bits) // wid_a)
        if slot_b >= 0:
            n_b = b_el * folds[b_other]
            if n_b:
                acc[slot_b] += -(-(n_b * op.b_bits) // wid_b)
        if red_spatial and psum is not None:
            n_p = finals * folds[k_pos]
            if n_p:
                v = -(-(n_p * pbits) // psum[2])
                acc[psum[1]] += v
                acc[psum[0]] += v
        for r_s, w_s, r_div, w_div in ports:
            pc = max(-(-acc[r_s] // r_div), -(-acc[w_s] // w_div))
            if pc > side:
                side = pc
        if rq > side:
            side = rq
        if total == 0:
            cycles = side
        else:
            cycles = lat + max(pro + side + epi, d)
        e = 0.0
        for i in range(nslots):
            e += acc[i] * prices[i]
        idle = cycles * pes - macs_f
        e += idle * idle_frac * mac_pj
        e += leak * cycles / freq * 1e9
        if objective == "latency":
            score: tuple[float, ...] = (cycles, e)
        elif objective == "energy":
            score = (e, cycles)
        else:
            score = (e * cycles, cycles)
        if best is None or score < best:
            best, pick = score, idx
    return pick, best
