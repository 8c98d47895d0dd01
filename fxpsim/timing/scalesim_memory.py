"""SCALE-Sim 3.0.0's double-buffered scratchpads as a fast event model (``timing=scalesim``).

SCALE-Sim (``scalesim/memory/double_buffered_scratchpad_mem.py``) walks the demand matrices
one row (= one cycle without stalls) at a time and asks three buffers when the row's
requests are served; the row's stall is the largest of the three answers and delays every
later row. fxpsim computes the same quantities from the GEMM shape alone, in events:

**Read buffers** (``read_buffer.py``, ifmap and filter). The operand's prefetch matrix (its
operand matrix laid out fold by fold, null entries skipped) is cut into *sets* of
``ceil(words / 100)`` elements. The buffer holds a window of ``ceil(words / 2 / set)``
sets; a request outside the window moves the window on by the prefetch half
(``ceil(words / 2 / set)`` sets, fewer for small operands) and costs one prefetch, and the
window wraps around the prefetch matrix, so data reused after eviction (the ifmap in OS for
every column fold, the streamed operand of WS/IS for every column fold) is fetched again.
Prefetches run back to back on the operand's DRAM port: prefetch ``k`` is served at cycle
``-1 + k * (ceil(words / 2 / bw) + 1)`` whenever it was asked for. When row ``r`` (at cycle
``c``) needs prefetch ``k``, SCALE-Sim's ``offset`` grows by ``p = D_k - (c + offset)`` and,
if ``p > 0``, by ``p`` again (its code adds a positive wait twice; a late request makes it
negative). The row's read stall is ``offset - 1``. fxpsim reproduces these updates exactly;
what it approximates is *which row* asks for which set: the demand is taken to walk each
fold's block of the prefetch matrix linearly over the fold's streaming rows (the stationary
operand of WS/IS: all at the fold's first row, which SCALE-Sim reads flipped). SCALE-Sim
tests each address of the im2col matrix, whose duplicates may hit an older copy a little
earlier.

**Write buffer** (``write_buffer.py``, ofmap). Writes fill the buffer; once more than half
of it is used (and no drain is running) a drain of ``ceil(words / 2 / bw)`` lines of ``bw``
words starts at the current cycle and frees its words at once; a write into a full buffer
while a drain runs waits for the drain's end. The writes of a fold are spread evenly over
the rows SCALE-Sim's skewed ofmap demand block spans.

CALC mode (``InterfaceBandwidth: CALC``) gives SCALE-Sim's estimate-bandwidth buffers,
which never stall: total cycles = demand rows - 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit

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
    ifmap_dram_bw: float | None  # None in CALC mode (fxpsim does not model its estimate)
    filter_dram_bw: float | None
    ofmap_dram_bw: float | None
    ifmap_dram_reads: int | None
    filter_dram_reads: int | None
    ofmap_dram_writes: int | None


@dataclass(frozen=True)
class _Fold:
    r: int  # array rows used
    c: int  # array columns used


def _sizes(total: int, fold: int) -> list[int]:
    return [min(fold, total - i * fold) for i in range(ceil_div(total, fold))]


def _diag_rank(d: np.ndarray, c: np.ndarray, m_full: int, m_all: int, n: int,
               w_last: int) -> np.ndarray:
    """Rank in read order of element (d - c, c) of a prefetch matrix read anti-diagonal by
    anti-diagonal (row descending inside one), null entries skipped. Rows below ``m_full``
    use all ``n`` columns, the rows of the last block only ``w_last``."""
    cc = np.arange(n, dtype=np.int64)
    height = np.where(cc < w_last, m_all, m_full)
    out = np.empty(d.shape, dtype=np.int64)
    step = max(1, (1 << 21) // n)  # bound the temporary (pairs x columns) arrays
    for a in range(0, d.size, step):
        dd = d[a:a + step, None]
        below = np.clip(dd - cc, 0, height).sum(axis=1)
        inside = ((cc < c[a:a + step, None]) & (dd - cc >= 0) & (dd - cc < height)).sum(axis=1)
        out[a:a + step] = below + inside
    return out


def _stream_demand(blocks: np.ndarray, height: int, n: int, widths: list[int],
                   ) -> tuple[np.ndarray, np.ndarray]:
    """First and last prefetch position each skewed demand row of a streamed block reads.

    The operand's prefetch matrix stacks ``len(widths)`` blocks of ``height`` rows (block
    ``b`` uses ``widths[b]`` of ``n`` columns); demand row ``i`` of block ``b`` reads column
    ``j`` of block row ``i - j``. Returns ``(len(blocks), height + n - 1)`` arrays, ``-1``
    where the row reads nothing."""
    nb = len(widths)
    m_all, m_full, w_last = nb * height, (nb - 1) * height, widths[-1]
    if w_last == n:
        m_full = m_all
    length = height + n - 1
    uniq, inv = np.unique(blocks, return_inverse=True)
    i = np.arange(length, dtype=np.int64)
    qf = np.full((len(uniq), length), -1, dtype=np.int64)
    ql = np.full((len(uniq), length), -1, dtype=np.int64)
    for u, b in enumerate(uniq):
        w = widths[int(b)]
        j0 = np.maximum(0, i - height + 1)
        j1 = np.minimum(i, w - 1)
        ok = j0 <= j1
        d = int(b) * height + i[ok]
        qf[u, ok] = _diag_rank(d, j0[ok], m_full, m_all, n, w_last)
        ql[u, ok] = _diag_rank(d, j1[ok], m_full, m_all, n, w_last)
    return qf[inv], ql[inv]


@njit(cache=True)
def _walk(qf: np.ndarray, ql: np.ndarray, set_size: int, n: int, na: int,
          step: int) -> np.ndarray:  # pragma: no cover - compiled
    """read_buffer.service_reads over the demand: the row of every new_prefetch."""
    out = np.empty(64, dtype=np.int64)
    k = 0
    start = 0
    for row in range(qf.shape[0]):
        if qf[row] < 0:
            continue
        for q in (qf[row], ql[row]):
            s = q // set_size
            while (s - start) % n >= na:
                start = (start + step) % n
                if k == out.shape[0]:
                    bigger = np.empty(2 * k, dtype=np.int64)
                    bigger[:k] = out
                    out = bigger
                out[k] = row
                k += 1
    return out[:k]


@njit(cache=True)
def _timeline(wcount: np.ndarray, ev_i: np.ndarray, ev_f: np.ndarray, per_i: int,
              per_f: int, total: int, drain_buf: int, lines: int,
              bw: int) -> np.ndarray:  # pragma: no cover - compiled
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

    def events(self, qf: np.ndarray, ql: np.ndarray) -> np.ndarray:
        if self.step_sets == 0:  # the whole operand fits in the active half
            return np.empty(0, dtype=np.int64)
        return _walk(qf, ql, self.set_size, self.sets, self.active_sets, self.step_sets)

    def dram(self, prefetches: int) -> tuple[float, int]:
        """(avg DRAM words/cycle, DRAM words read) as read_buffer counts them."""
        first = min(math.ceil(self.active / self.bw), ceil_div(self.fetch, self.bw))
        reads = first * self.bw + prefetches * math.ceil(self.prefetch / self.bw) * self.bw
        stop = -1 + prefetches * self.period
        return reads / (stop + first + 1), reads


def _demand_rows(n_folds: int, per: int, offset: int, table: np.ndarray) -> np.ndarray:
    out = np.full((n_folds, per), -1, dtype=np.int64)
    out[:, offset:offset + table.shape[1]] = table
    return out.reshape(-1)


def _stationary_demand(R: int, k: int, rs: list[int], cs: list[int],
                       ) -> tuple[np.ndarray, np.ndarray]:
    """First/last prefetch position of the flipped stationary block rows (fold rows 0..R-1):
    the prefetch matrix is row-major, one ``k x c`` block per column fold."""
    base = np.cumsum([0] + [k * c for c in cs[:-1]])
    i = np.arange(R)
    qf = np.full((len(cs) * len(rs), R), -1, dtype=np.int64)
    ql = qf.copy()
    f = 0
    for fc, c in enumerate(cs):
        for fr, r in enumerate(rs):
            row = R - 1 - i  # flipped: the block's last row first
            ok = row < r
            first = base[fc] + (fr * R + row[ok]) * c
            qf[f, ok] = first
            ql[f, ok] = first + c - 1
            f += 1
    return qf, ql


def _writes(df: str, R: int, C: int, t: int, folds: list[_Fold], per: int) -> np.ndarray:
    """Ofmap words each demand row writes (SCALE-Sim's skewed ofmap demand blocks)."""
    out = np.zeros((len(folds), per), dtype=np.int64)
    j = np.arange(C)
    cache: dict[tuple[int, int], np.ndarray] = {}
    for f, fold in enumerate(folds):
        key = (fold.r, fold.c)
        if key not in cache:
            if df == "os":  # T-1 null rows, then R flipped rows skewed over C columns
                i = np.arange(R + C - 1)[:, None] - j
                cnt = ((i >= R - fold.r) & (i <= R - 1) & (j < fold.c)).sum(axis=1)
            else:  # 2R-1 null rows, then T rows skewed over C columns
                i = np.arange(t + C - 1)[:, None] - j
                cnt = ((i >= 0) & (i < t) & (j < fold.c)).sum(axis=1)
            cache[key] = cnt
        cnt = cache[key]
        at = t - 1 if df == "os" else 2 * R - 1
        out[f, at:at + cnt.shape[0]] = cnt
    return out.reshape(-1)


def _user(df: str, R: int, C: int, sr: int, sc: int, t: int, k: int, folds: list[_Fold],
          per: int, mem: ScaleSimMemory) -> tuple[int, int, tuple[float | None, ...]]:
    """(stall cycles, total cycles, DRAM report items) of SCALE-Sim's USER-mode memory."""
    rs, cs = _sizes(sr, R), _sizes(sc, C)
    nf = len(folds)
    fr_ids = np.tile(np.arange(len(rs)), len(cs))
    fc_ids = np.repeat(np.arange(len(cs)), len(rs))
    if df == "os":  # ifmap: K-row blocks per row fold; filter: K-row blocks per column fold
        a = _stream_demand(fr_ids, t, R, rs)
        b = _stream_demand(fc_ids, t, C, cs)
        iq = (_demand_rows(nf, per, 0, a[0]), _demand_rows(nf, per, 0, a[1]))
        fq = (_demand_rows(nf, per, 0, b[0]), _demand_rows(nf, per, 0, b[1]))
        ifetch, ffetch = t * sr, t * sc
    else:
        a = _stream_demand(fr_ids, t, R, rs)
        stream = (_demand_rows(nf, per, R, a[0]), _demand_rows(nf, per, R, a[1]))
        s = _stationary_demand(R, k, rs, cs)
        stat = (_demand_rows(nf, per, 0, s[0]), _demand_rows(nf, per, 0, s[1]))
        if df == "ws":  # streamed ifmap (T = ofmap px), stationary filter
            iq, fq, ifetch, ffetch = stream, stat, t * sr, sr * sc
        else:  # stationary ifmap, streamed filter (T = filters)
            iq, fq, ifetch, ffetch = stat, stream, sr * sc, t * sr
    ib = _Buffer(mem.ifmap_words, ifetch, mem.ifmap_bw)
    fb = _Buffer(mem.filter_words, ffetch, mem.filter_bw)
    ev_i, ev_f = ib.events(*iq), fb.events(*fq)
    wtotal = mem.ofmap_words
    drain_buf = wtotal - int(math.ceil(wtotal * ACTIVE_FRAC))
    lines = math.ceil(drain_buf / mem.ofmap_bw)
    res = _timeline(_writes(df, R, C, t, folds, per), ev_i, ev_f, ib.period, fb.period,
                    wtotal, drain_buf, lines, mem.ofmap_bw)
    stall, last, first_drain, last_end, drained = (int(x) for x in res)
    ibw, ird = ib.dram(len(ev_i))
    fbw, frd = fb.dram(len(ev_f))
    obw = drained / (last_end - first_drain + 1) if first_drain >= 0 else 0.0
    return stall, last, (ibw, ird, fbw, frd, obw, drained)


def layer(dataflow: str, R: int, C: int, m: int, k: int, n: int,
          mem: ScaleSimMemory) -> ScaleSimLayer:
    """SCALE-Sim 3.0.0's report items for a GEMM of ``m`` ofmap pixels, window ``k``,
    ``n`` filters (one conv layer of a topology) on an ``R x C`` array."""
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
    folds = [_Fold(r, c) for c in _sizes(sc, C) for r in _sizes(sr, R)]
    per = t + R + C - 2 if df == "os" else 2 * R + C + t - 2
    n_rows = per * len(folds)
    used = sum(f.r * f.c for f in folds)
    cyc_f = t + R + C - 2 if df == "os" else 2 * R + 2 * C + t - 3  # SCALE-Sim's util divisor
    if df == "os":
        reads = (t * sum(f.r for f in folds), t * sum(f.c for f in folds))
        writes = used + len(folds) * (R + C)  # SCALE-Sim also counts R + C per fold
    elif df == "ws":
        reads, writes = (t * sum(f.r for f in folds), used), t * sum(f.c for f in folds)
    else:
        reads, writes = (used, t * sum(f.r for f in folds)), t * sum(f.c for f in folds)
    dram: tuple[float | None, ...] = (None,) * 6
    if mem.mode == "CALC":
        stall, total = 0, n_rows - 1
    else:
        stall, total, dram = _user(df, R, C, sr, sc, t, k, folds, per, mem)
    total = max(total, 1)
    return ScaleSimLayer(
        total_cycles=total, stall_cycles=stall, compute_cycles=n_rows,
        overall_util=m * k * n * 100 / (total * R * C),
        mapping_efficiency=used * 100 / (len(folds) * R * C),
        compute_util=used * t * 100 / (len(folds) * R * C * cyc_f),
        ifmap_sram_bw=reads[0] / total, filter_sram_bw=reads[1] / total,
        ofmap_sram_bw=writes / total,
        ifmap_dram_bw=dram[0], filter_dram_bw=dram[2], ofmap_dram_bw=dram[4],
        ifmap_dram_reads=_int(dram[1]), filter_dram_reads=_int(dram[3]),
        ofmap_dram_writes=_int(dram[5]))


def _int(x: float | None) -> int | None:
    return None if x is None else int(x)
