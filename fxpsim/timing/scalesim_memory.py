"""SCALE-Sim 3.0.0's double-buffered scratchpads, replayed fast (``timing=scalesim``, USER).

SCALE-Sim (``scalesim/memory/double_buffered_scratchpad_mem.py``) walks the demand matrices
one row (one stall-free cycle) at a time and asks three buffers when the row's requests are
served; the row's stall is the largest of the three answers and delays every later row.
fxpsim rebuilds the same inputs from the GEMM shape (and, for a forward conv, the ifmap
geometry that makes im2col repeat addresses) and replays the same rules in compiled loops:

**Read buffers** (``read_buffer.py``; ifmap and filter). The operand's prefetch matrix
(``systolic_compute_{os,ws,is}.py``: the operand matrix fold by fold, read anti-diagonally
for streamed operands, row by row for the stationary one; null entries skipped) is cut into
*sets* of ``ceil(words / 100)`` elements. The buffer holds a ring window of
``ceil(words / 2 / set)`` sets. Every demanded address, in SCALE-Sim's order, must lie in a
set of the window (any copy of it); if none does, the window moves on by the prefetch half
and that is one prefetch, repeated until it hits, wrapping around the prefetch matrix. So
data reused after eviction is fetched again, and a stationary block read flipped can send
the window round the whole ring. Prefetches run back to back on the operand's DRAM port:
prefetch ``k`` is served at cycle ``-1 + k * (ceil(words / 2 / bw) + 1)``. When the row at
cycle ``c`` waits for prefetch ``k``, SCALE-Sim's ``offset`` grows by
``p = D_k - (c + offset)`` and, when ``p > 0``, by ``p`` again (its code adds a wait twice;
an early prefetch makes ``p`` negative). The row's read stall is ``offset - 1``.

**Write buffer** (``write_buffer.py``; ofmap). Writes (the skewed ofmap demand, per row) fill
the buffer; when more than half is used and no drain runs, a drain of ``ceil(words / 2 /
bw)`` lines of ``bw`` words starts at the current cycle and frees its words at once; a write
into a full buffer while a drain runs waits for the drain's end. After the last row the rest
drains back to back (the DRAM report items only; SCALE-Sim's total stops at the last row).

CALC mode (``InterfaceBandwidth: CALC``) uses SCALE-Sim's estimate-bandwidth buffers, which
never stall: total cycles = demand rows - 1. Their DRAM report items are replayed too
(``read_buffer_estimate_bw.py``): each read buffer files the new addresses of the demand, in
order, into sets of ``floor(words / 100)``; an address found in the current window of sets
is a hit; when the closed sets fill the window, it moves on by half (a prefetch). The
words fetched over the span from the first prefetch (``ceil(50 x set / 10)`` cycles before
the first request, at the default 10 words/cycle) to the cycle after the last window move
are its average DRAM bandwidth. The ofmap buffer is the USER-mode write buffer draining
``C`` (array columns) words per cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fxpsim.timing.mapping import ceil_div

Mode = Literal["CALC", "USER"]
ACTIVE_FRAC = 0.5  # SCALE-Sim's active_buf_frac for every buffer
SETS_PER_BUFFER = 100  # read_buffer.prepare_hashed_buffer: elems_per_set = ceil(size / 100)
DATAFLOWS = {"output_stationary": "os", "weight_stationary": "ws", "input_stationary": "is"}


@dataclass(frozen=True)
class ScaleSimMemory:
    """What SCALE-Sim's memory system needs: mode, SRAM words, DRAM words/cycle per operand."""

    mode: Mode
    ifmap_words: int
    filter_words: int
    ofmap_words: int
    ifmap_bw: int
    filter_bw: int
    ofmap_bw: int


@dataclass(frozen=True)
class ScaleSimLayer:
    """One layer's COMPUTE_REPORT and BANDWIDTH_REPORT items, as SCALE-Sim 3.0.0 names them."""

    total_cycles: int  # "Total Cycles" (demand rows - 1 + stalls)
    stall_cycles: int
    compute_cycles: int  # demand rows (the stall-free count fxpsim's CALC formula gives)
    overall_util: float  # %
    mapping_efficiency: float  # %
    compute_util: float  # %
    ifmap_sram_bw: float  # words/cycle
    filter_sram_bw: float
    ofmap_sram_bw: float
    ifmap_dram_bw: float | None  # None in CALC mode when the SRAM sizes are unknown
    filter_dram_bw: float | None
    ofmap_dram_bw: float | None
    ifmap_dram_reads: int | None
    filter_dram_reads: int | None
    ofmap_dram_writes: int | None
    ifmap_prefetches: int | None = None  # read-buffer prefetches (USER mode)
    filter_prefetches: int | None = None


_COMPILED: dict[str, Callable[..., Any]] = {}


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled by Numba on first use (imported only when a USER-mode layer needs it;
    the plain function stays the reference the tests compare it with)."""
    got = _COMPILED.get(fn.__name__)
    if got is None:
        from numba import njit  # type: ignore[import-not-found,unused-ignore]

        got = _COMPILED[fn.__name__] = njit(cache=True)(fn)
    return got


def _sizes(total: int, fold: int) -> list[int]:
    return [min(fold, total - i * fold) for i in range(ceil_div(total, fold))]


@dataclass(frozen=True)
class ConvGeometry:
    """A conv layer as SCALE-Sim addresses its ifmap (``operand_matrix.calc_ifmap_elem_addr``):
    padded ifmap ``h x w x c`` (channels fastest), ``fh x fw`` filter, strides, ``ow`` ofmap
    columns. Without it an ifmap row is ``k`` distinct words (a GEMM)."""

    h: int
    w: int
    c: int
    fh: int
    fw: int
    sh: int
    sw: int
    ow: int


def _ifmap_addr(p: np.ndarray, w: np.ndarray, k: int, g: ConvGeometry | None) -> np.ndarray:
    """Address of window element ``w`` of ofmap pixel ``p`` (-1 outside the ifmap)."""
    if g is None:
        return p * k + w
    orow, ocol = np.divmod(p, g.ow)
    i_row, i_col = orow * g.sh, ocol * g.sw
    c_row, rest = np.divmod(w, g.fw * g.c)
    c_col, c_ch = np.divmod(rest, g.c)
    ok = (c_row + i_row < g.h) & (c_col + i_col < g.w)
    addr = ((c_row + i_row) * g.w + c_col + i_col) * g.c + c_ch
    return np.where(ok, addr, -1)


def _sets(a: np.ndarray, diagonal: bool, set_size: int) -> np.ndarray:
    """Set index of each element of a prefetch matrix, read anti-diagonal by anti-diagonal
    (row descending inside one) or row by row; null (-1) entries take no place."""
    m, n = a.shape
    out = np.full((m, n), -1, dtype=np.int32)
    rank = 0
    if diagonal:
        for d in range(m + n - 1):
            for row in range(min(d, m - 1), max(0, d - n + 1) - 1, -1):
                col = d - row
                if a[row, col] >= 0:
                    out[row, col] = rank // set_size
                    rank += 1
    else:
        for row in range(m):
            for col in range(n):
                if a[row, col] >= 0:
                    out[row, col] = rank // set_size
                    rank += 1
    return out


def _copies(a: np.ndarray, sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists: the sets holding each address (an im2col address appears up to fh*fw times)."""
    top = 0
    for v in a.ravel():
        top = max(top, v + 1)
    ptr = np.zeros(top + 1, dtype=np.int64)
    for v in a.ravel():
        if v >= 0:
            ptr[v + 1] += 1
    for i in range(top):
        ptr[i + 1] += ptr[i]
    fill = ptr[:-1].copy()
    out = np.empty(ptr[top], dtype=np.int64)
    av, sv = a.ravel(), sets.ravel()
    for i in range(av.shape[0]):
        v = av[i]
        if v >= 0:
            out[fill[v]] = sv[i]
            fill[v] += 1
    return ptr, out


def _walk(a: np.ndarray, own: np.ndarray, ptr: np.ndarray, held: np.ndarray, stream: bool,
          height: int, offset: int, by_col_fold: bool, R: int, rs: np.ndarray, cs: np.ndarray,
          per: int, n_sets: int, na: int, step: int) -> np.ndarray:
    """read_buffer.service_reads over the whole demand: the row of every new_prefetch.

    Streamed operand: block ``b`` (row or column fold) of ``height`` rows, demand row
    ``offset + i`` of a fold reads element ``(b * height + i - j, j)`` in column order.
    Stationary operand: fold row ``i < R`` reads block row ``fr * R + R - 1 - i`` of the
    column fold's ``height``-row block (flipped), columns in order."""
    out = np.empty(64, dtype=np.int64)
    k = 0
    start = 0
    f = 0
    for fc in range(cs.shape[0]):
        for fr in range(rs.shape[0]):
            base = f * per
            f += 1
            if stream:
                b = fc if by_col_fold else fr
                width = cs[fc] if by_col_fold else rs[fr]
                n_cols = a.shape[1]
                lo_i, hi_i = 0, height + n_cols - 1
            else:
                lo_i, hi_i = 0, R
            for i in range(lo_i, hi_i):
                row = base + offset + i
                if stream:
                    j0, j1 = max(0, i - height + 1), min(i, width - 1)
                else:
                    br = R - 1 - i
                    if br >= rs[fr]:
                        continue
                    j0, j1 = 0, cs[fc] - 1
                for j in range(j0, j1 + 1):
                    if stream:
                        e = b * height + i - j
                    else:
                        e = fc * height + fr * R + R - 1 - i
                    v = a[e, j]
                    if v < 0:
                        continue
                    while True:
                        # the element's own set first: the common hit, no copy list needed
                        hit = (own[e, j] - start) % n_sets < na
                        if not hit and ptr.shape[0] > 1:
                            for q in range(ptr[v], ptr[v + 1]):
                                if (held[q] - start) % n_sets < na:
                                    hit = True
                                    break
                        if hit:
                            break
                        start = (start + step) % n_sets
                        if k == out.shape[0]:
                            bigger = np.empty(2 * k, dtype=np.int64)
                            bigger[:k] = out
                            out = bigger
                        out[k] = row
                        k += 1
    return out[:k]


def _estimate_walk(a: np.ndarray, stream: bool, height: int, offset: int, by_col_fold: bool,
                   R: int, rs: np.ndarray, cs: np.ndarray, per: int, items: int,
                   sets_half: int) -> np.ndarray:
    """read_buffer_estimate_bw (CALC mode) over the whole demand, in the order of
    :func:`_walk`: a demanded address outside the current window of sets (and not in the set
    being filled) joins that set; every ``items`` new addresses close a set, and when the
    closed sets reach the window's end the window moves on by ``sets_half`` sets (one
    prefetch). Returns [addresses fetched, prefetches, row of the last one, first row with
    a request, whether a partial set is left]."""
    top = 0
    for v in a.ravel():
        top = max(top, v + 1)
    last = np.full(max(top, 1), -1, dtype=np.int64)  # newest set holding each address
    cur = 0  # id of the set being filled
    elems = 0
    start = 0  # window: sets start .. end
    end = sets_half - 1
    fetched = 0
    triggers = 0
    last_trigger = -1
    first = -1
    f = 0
    for fc in range(cs.shape[0]):
        for fr in range(rs.shape[0]):
            base = f * per
            f += 1
            if stream:
                b = fc if by_col_fold else fr
                width = cs[fc] if by_col_fold else rs[fr]
                lo_i, hi_i = 0, height + a.shape[1] - 1
            else:
                b, width = 0, 0
                lo_i, hi_i = 0, R
            for i in range(lo_i, hi_i):
                row = base + offset + i
                if stream:
                    j0, j1 = max(0, i - height + 1), min(i, width - 1)
                else:
                    if R - 1 - i >= rs[fr]:
                        continue
                    j0, j1 = 0, cs[fc] - 1
                for j in range(j0, j1 + 1):
                    e = b * height + i - j if stream else fc * height + fr * R + R - 1 - i
                    v = a[e, j]
                    if v < 0:
                        continue
                    if first < 0:
                        first = row
                    if last[v] >= start:  # in the window or in the set being filled
                        continue
                    last[v] = cur
                    fetched += 1
                    elems += 1
                    if elems == items:
                        elems = 0
                        cur += 1
                        if cur == end + 1:
                            triggers += 1
                            last_trigger = row
                            start += sets_half
                            end += sets_half
    return np.array([fetched, triggers, last_trigger, first, int(elems > 0), cur],
                    dtype=np.int64)


def _timeline(wcount: np.ndarray, ev_i: np.ndarray, ev_f: np.ndarray, per_i: int,
              per_f: int, total: int, drain_buf: int, lines: int,
              bw: int) -> np.ndarray:
    """double_buffered_scratchpad.service_memory_requests over the rows, then the final
    drain; returns [stall, last served cycle, first drain, last drain end, words drained]."""
    stall = 0
    used = 0
    drain_end = 0
    first_drain = -1
    last_end = 0
    drained = 0
    ki = 0
    kf = 0
    last = 0
    for row in range(wcount.shape[0]):
        cycle = row + stall
        worst = 0
        for op in range(2):
            ev = ev_i if op == 0 else ev_f
            k = ki if op == 0 else kf
            per = per_i if op == 0 else per_f
            if k < ev.shape[0] and ev[k] == row:
                offset = 1
                while k < ev.shape[0] and ev[k] == row:
                    p = -1 + (k + 1) * per - (cycle + offset)
                    offset += p
                    if p > 0:
                        offset += p
                    k += 1
                if offset - 1 > worst:
                    worst = offset - 1
            if op == 0:
                ki = k
            else:
                kf = k
        cur = cycle
        for _ in range(wcount[row]):
            used += 1
            if cur < drain_end:
                if used >= total:
                    cur = drain_end
            elif used > drain_buf:
                amount = min(lines * bw, used)
                drain_end = cur + (amount + bw - 1) // bw - 1
                if first_drain < 0:
                    first_drain = cur
                last_end = drain_end
                drained += amount
                used -= amount
        if cur - cycle > worst:
            worst = cur - cycle
        last = cur
        stall += worst
    cycle = last
    while used > 0:  # empty_all_buffers, from the last row's cycle
        amount = min(lines * bw, used)
        drain_end = cycle + (amount + bw - 1) // bw - 1
        if first_drain < 0:
            first_drain = cycle
        last_end = drain_end
        drained += amount
        used -= amount
        cycle = drain_end + 1
    return np.array([stall, last, first_drain, last_end, drained], dtype=np.int64)


@dataclass(frozen=True)
class _Buffer:
    """read_buffer's ring of sets for one operand (sizes in words)."""

    words: int
    fetch: int  # non-null elements of the prefetch matrix
    bw: int

    @property
    def set_size(self) -> int:
        return math.ceil(self.words / SETS_PER_BUFFER)

    @property
    def active(self) -> int:
        return int(math.ceil(self.words * ACTIVE_FRAC))

    @property
    def prefetch(self) -> int:
        return self.words - self.active

    @property
    def sets(self) -> int:
        return self.fetch // self.set_size + 1

    @property
    def active_sets(self) -> int:
        return min(self.sets, math.ceil(self.active / self.set_size))

    @property
    def step_sets(self) -> int:
        return min(self.sets - self.active_sets, math.ceil(self.prefetch / self.set_size))

    @property
    def period(self) -> int:  # cycles of one prefetch on the DRAM port (latency 1)
        return math.ceil(self.prefetch / self.bw) + 1

    def events(self, op: _Operand, R: int, rs: np.ndarray, cs: np.ndarray,
               per: int) -> np.ndarray:
        """Demand rows of every prefetch (a row once per prefetch it waits for)."""
        if self.step_sets == 0:  # the whole operand fits in the active half
            return np.empty(0, dtype=np.int64)
        sets = _jit(_sets)(op.a, op.stream, self.set_size)
        if op.unique:  # every address once: its own set decides
            ptr, held = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        else:
            ptr, held = _jit(_copies)(op.a, sets)
        return _jit(_walk)(op.a, sets, ptr, held, op.stream, op.height, op.offset, op.by_col_fold,
                     R, rs, cs, per, self.sets, self.active_sets, self.step_sets)

    def dram(self, prefetches: int) -> tuple[float, int]:
        """(avg DRAM words/cycle, DRAM words read) as read_buffer counts them."""
        first = min(math.ceil(self.active / self.bw), ceil_div(self.fetch, self.bw))
        reads = first * self.bw + prefetches * math.ceil(self.prefetch / self.bw) * self.bw
        stop = -1 + prefetches * self.period
        return reads / (stop + first + 1), reads


def _writes(df: str, R: int, C: int, t: int, rs: np.ndarray, cs: np.ndarray,
            fr: np.ndarray, fc: np.ndarray, per: int) -> np.ndarray:
    """Ofmap words each demand row writes (SCALE-Sim's skewed ofmap demand blocks)."""
    keys, inv = np.unique(np.stack([rs[fr], cs[fc]], axis=1), axis=0, return_inverse=True)
    j = np.arange(C)[None, None, :]
    r, c = keys[:, 0, None, None], keys[:, 1, None, None]
    if df == "os":  # T-1 null rows, then R flipped rows skewed over C columns
        i = np.arange(R + C - 1)[None, :, None] - j
        table = ((i >= R - r) & (i <= R - 1) & (j < c)).sum(axis=2)
        at = t - 1
    else:  # 2R-1 null rows, then T rows skewed over C columns
        i = np.arange(t + C - 1)[None, :, None] - j
        table = ((i >= 0) & (i < t) & (j < c)).sum(axis=2)
        at = 2 * R - 1
    out = np.zeros((len(fr), per), dtype=np.int64)
    out[:, at:at + table.shape[1]] = table[inv.reshape(-1)]
    return out.reshape(-1)


@dataclass(frozen=True)
class _Operand:
    """An operand's prefetch matrix (blocks of ``height`` rows stacked, -1 = null) and how
    the demand walks it (see :func:`_walk`)."""

    a: np.ndarray
    stream: bool
    height: int
    offset: int = 0
    by_col_fold: bool = False
    unique: bool = True  # no address twice (filters, GEMMs, 1x1 convs)


def _stack(widths: list[int], height: int, n: int, addr: Callable[..., np.ndarray],
           ) -> np.ndarray:
    """Blocks ``b`` of ``height`` rows x ``n`` columns, ``addr(b, row, col)``; columns past
    ``widths[b]`` null."""
    b = np.arange(len(widths))[:, None, None]
    row = np.arange(height)[None, :, None]
    col = np.arange(n)[None, None, :]
    vals = np.broadcast_to(addr(b, row, col), (len(widths), height, n))
    ok = col < np.asarray(widths)[:, None, None]
    return np.where(ok, vals, -1).astype(np.int32).reshape(len(widths) * height, n)


def _operands(df: str, R: int, C: int, t: int, k: int, n: int, rl: list[int],
              cl: list[int], geom: ConvGeometry | None) -> tuple[_Operand, _Operand]:
    """SCALE-Sim's ifmap and filter prefetch matrices (``systolic_compute_*``)."""
    def ifm(p: np.ndarray, w: np.ndarray) -> np.ndarray:
        return _ifmap_addr(p, w, k, geom)

    def fil(w: np.ndarray, f: np.ndarray) -> np.ndarray:
        return w * n + f

    uniq = geom is None or (geom.fh * geom.fw == 1 and geom.sh == geom.sw == 1)
    if df == "os":  # ifmap^T by row fold, filter by column fold; both read diagonally
        i = _stack(rl, t, R, lambda b, w, j: ifm(b * R + j, w))
        f = _stack(cl, t, C, lambda b, w, j: fil(w, b * C + j))
        return _Operand(i, True, t, unique=uniq), _Operand(f, True, t, by_col_fold=True)
    if df == "ws":  # streamed ifmap by row fold, stationary filter by column fold
        i = _stack(rl, t, R, lambda b, p, j: ifm(p, b * R + j))
        f = _stack(cl, k, C, lambda b, w, j: fil(w, b * C + j))
        return _Operand(i, True, t, offset=R, unique=uniq), _Operand(f, False, k)
    # IS: stationary ifmap^T by column fold, streamed filter^T by row fold
    i = _stack(cl, k, C, lambda b, w, j: ifm(b * C + j, w))
    f = _stack(rl, t, R, lambda b, q, j: fil(b * R + j, q))
    return _Operand(i, False, k, unique=uniq), _Operand(f, True, t, offset=R)


def _user(df: str, R: int, C: int, sr: int, sc: int, t: int, k: int, n: int, per: int,
          mem: ScaleSimMemory, geom: ConvGeometry | None, first_rows: int | None = None,
          ) -> tuple[int, int, tuple[float | None, ...]]:
    """(stall cycles, total cycles, DRAM report items) of SCALE-Sim's USER-mode memory."""
    rl, cl = _sizes(sr, R), _sizes(sc, C)
    rs, cs = np.asarray(rl, dtype=np.int64), np.asarray(cl, dtype=np.int64)
    fr = np.tile(np.arange(len(rl)), len(cl))  # SCALE-Sim: column folds outer, row inner
    fc = np.repeat(np.arange(len(cl)), len(rl))
    iop, fop = _operands(df, R, C, t, k, n, rl, cl, geom)
    ib = _Buffer(mem.ifmap_words, int((iop.a >= 0).sum()), mem.ifmap_bw)
    fb = _Buffer(mem.filter_words, int((fop.a >= 0).sum()), mem.filter_bw)
    ev_i, ev_f = ib.events(iop, R, rs, cs, per), fb.events(fop, R, rs, cs, per)
    wtotal = mem.ofmap_words
    drain_buf = wtotal - int(math.ceil(wtotal * ACTIVE_FRAC))
    lines = math.ceil(drain_buf / mem.ofmap_bw)
    writes = _writes(df, R, C, t, rs, cs, fr, fc, per)
    if first_rows is not None:  # a prefix of the demand (as SCALE-Sim runs on a slice)
        writes, ev_i, ev_f = writes[:first_rows], ev_i[ev_i < first_rows], ev_f[ev_f < first_rows]
    res = _jit(_timeline)(writes, ev_i, ev_f, ib.period, fb.period, wtotal, drain_buf, lines,
                          mem.ofmap_bw)
    stall, last, first_drain, last_end, drained = (int(x) for x in res)
    ibw, ird = ib.dram(len(ev_i))
    fbw, frd = fb.dram(len(ev_f))
    obw = drained / (last_end - first_drain + 1) if first_drain >= 0 else 0.0
    return stall, last, (ibw, ird, fbw, frd, obw, drained, len(ev_i), len(ev_f))


#: CALC mode's read buffers fetch 10 words/cycle (SCALE-Sim's "arbitrary" default) and its
#: ofmap buffer drains one array row of words per cycle
CALC_READ_BW = 10


def _estimate_bw(op: _Operand, words: int, R: int, rs: np.ndarray, cs: np.ndarray,
                 per: int) -> tuple[float, int]:
    """(avg DRAM words/cycle, words read) of read_buffer_estimate_bw for one operand: the
    words it fetched over its trace, which starts with the first prefetch (``50 sets x
    items / 10`` cycles before the first request) and ends the cycle after the last set of
    sets closes (or, with fewer than one buffer of sets, is that one prefetch long)."""
    items = words // SETS_PER_BUFFER  # floor here (read_buffer uses ceil)
    half = int(ACTIVE_FRAC * SETS_PER_BUFFER)
    res = _jit(_estimate_walk)(op.a, op.stream, op.height, op.offset, op.by_col_fold, R, rs,
                               cs, per, items, half)
    fetched, triggers, last_trigger, first, partial, cur = (int(x) for x in res)
    if fetched == 0:
        return 0.0, 0
    if triggers == 0:
        span = math.ceil((cur + partial) * items / CALC_READ_BW)
    else:
        span = last_trigger - first + math.ceil(half * items / CALC_READ_BW) + 2
    return fetched / span, fetched


def _calc(df: str, R: int, C: int, sr: int, sc: int, t: int, k: int, n: int, per: int,
          mem: ScaleSimMemory, geom: ConvGeometry | None) -> tuple[float | None, ...]:
    """SCALE-Sim's CALC-mode DRAM report items (its estimate-bandwidth read buffers and the
    ofmap write buffer draining ``C`` words/cycle); none of them stalls."""
    rl, cl = _sizes(sr, R), _sizes(sc, C)
    rs, cs = np.asarray(rl, dtype=np.int64), np.asarray(cl, dtype=np.int64)
    fr = np.tile(np.arange(len(rl)), len(cl))
    fc = np.repeat(np.arange(len(cl)), len(rl))
    iop, fop = _operands(df, R, C, t, k, n, rl, cl, geom)
    ibw, ird = _estimate_bw(iop, mem.ifmap_words, R, rs, cs, per)
    fbw, frd = _estimate_bw(fop, mem.filter_words, R, rs, cs, per)
    wtotal = mem.ofmap_words
    drain_buf = wtotal - int(math.ceil(wtotal * ACTIVE_FRAC))
    none = np.empty(0, dtype=np.int64)
    writes = _writes(df, R, C, t, rs, cs, fr, fc, per)
    res = _jit(_timeline)(writes, none, none, 1, 1, wtotal, drain_buf,
                          math.ceil(drain_buf / C), C)
    _, _, first_drain, last_end, drained = (int(x) for x in res)
    obw = drained / (last_end - first_drain + 1) if first_drain >= 0 else 0.0
    return ibw, ird, fbw, frd, obw, drained, None, None


def layer(dataflow: str, R: int, C: int, m: int, k: int, n: int, mem: ScaleSimMemory,
          geometry: ConvGeometry | None = None) -> ScaleSimLayer:
    """SCALE-Sim 3.0.0's report items for a GEMM of ``m`` ofmap pixels, window ``k``,
    ``n`` filters (one conv layer of a topology) on an ``R x C`` array."""
    return _layer_report(dataflow, R, C, m, k, n, mem, geometry, None)


def first_rows_user(dataflow: str, R: int, C: int, m: int, k: int, n: int,
                    mem: ScaleSimMemory, geometry: ConvGeometry | None,
                    rows: int) -> tuple[int, int, int]:
    """(stall cycles, last row's cycle, filter prefetches) of SCALE-Sim's USER-mode memory
    walk over only the first ``rows`` demand rows: what its ``service_memory_requests``
    gives on a slice of the demand matrices (a check on layers too slow to run whole)."""
    r = _layer_report(dataflow, R, C, m, k, n, mem, geometry, rows)
    assert r.filter_prefetches is not None
    return r.stall_cycles, r.total_cycles, r.filter_prefetches


def _layer_report(dataflow: str, R: int, C: int, m: int, k: int, n: int, mem: ScaleSimMemory,
                  geometry: ConvGeometry | None, first_rows: int | None) -> ScaleSimLayer:
    df = DATAFLOWS.get(dataflow, dataflow)
    if df == "os":
        sr, sc, t = m, n, k
    elif df == "ws":
        sr, sc, t = k, n, m
    elif df == "is":
        sr, sc, t = k, m, n
    else:
        raise ValueError(f"dataflow must be os, ws or is, got {dataflow!r}")
    if min(R, C, m, k, n) < 1:
        raise ValueError("array and GEMM dimensions must be positive")
    nr, nc = ceil_div(sr, R), ceil_div(sc, C)
    nf = nr * nc
    per = t + R + C - 2 if df == "os" else 2 * R + C + t - 2
    n_rows = per * nf
    used = sr * sc  # PEs used, summed over the folds
    cyc_f = t + R + C - 2 if df == "os" else 2 * R + 2 * C + t - 3  # SCALE-Sim's util divisor
    if df == "os":  # SCALE-Sim also counts R + C ofmap writes per fold
        reads, writes = (t * nc * sr, t * nr * sc), used + nf * (R + C)
    elif df == "ws":
        reads, writes = (t * nc * sr, used), t * nr * sc
    else:
        reads, writes = (used, t * nc * sr), t * nr * sc
    dram: tuple[float | None, ...] = (None,) * 8
    if mem.mode == "CALC":
        stall, total = 0, n_rows - 1
        if min(mem.ifmap_words, mem.filter_words, mem.ofmap_words) >= SETS_PER_BUFFER:
            dram = _calc(df, R, C, sr, sc, t, k, n, per, mem, geometry)
    else:
        stall, total, dram = _user(df, R, C, sr, sc, t, k, n, per, mem, geometry, first_rows)
    total = max(total, 1)
    return ScaleSimLayer(
        total_cycles=total, stall_cycles=stall, compute_cycles=n_rows,
        overall_util=m * k * n * 100 / (total * R * C),
        mapping_efficiency=used * 100 / (nf * R * C),
        compute_util=used * t * 100 / (nf * R * C * cyc_f),
        ifmap_sram_bw=reads[0] / total, filter_sram_bw=reads[1] / total,
        ofmap_sram_bw=writes / total,
        ifmap_dram_bw=dram[0], filter_dram_bw=dram[2], ofmap_dram_bw=dram[4],
        ifmap_dram_reads=_int(dram[1]), filter_dram_reads=_int(dram[3]),
        ofmap_dram_writes=_int(dram[5]), ifmap_prefetches=_int(dram[6]),
        filter_prefetches=_int(dram[7]))


def _int(x: float | None) -> int | None:
    return None if x is None else int(x)
