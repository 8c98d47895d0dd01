"""Numba kernels for sequential (hardware-order) integer accumulation.

Every kernel adds products in increasing k and applies the overflow mode after EVERY add,
exactly as one PE register does. Rows ``m`` are split over threads (``prange``); each output
is owned by one thread, so the thread count cannot change any result. The inner loop runs
over contiguous output columns ``n`` so LLVM vectorizes it across outputs.

Overflow mode codes (see :data:`MODE_CODES`): 0 wrap, 1 saturate, 2 saturate_symmetric,
3 numeric_std. ``lo``/``hi`` are the register range (``lo = -hi`` for saturate_symmetric).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fxpsim.fixedpoint import gemm_kernels16 as _k16

MODE_CODES = {"wrap": 0, "saturate": 1, "saturate_symmetric": 2, "numeric_std": 3}


@njit(cache=True, inline="always")
def add_overflow(acc, p, bits, mode, lo, hi):
    """One register add in int64 for any ``bits <= 64``: returns (new value, event 0/1).

    ``acc`` is in [lo, hi]; ``p`` is any int64. The int64 sum is formed with unsigned wrap
    so that bits == 64 (where acc + p can leave int64) is handled exactly: on int64 overflow
    the true sum is s +- 2^64 with the sign of p.
    """
    s = np.int64(np.uint64(acc) + np.uint64(p))
    ovf64 = ((acc ^ s) & (p ^ s)) < 0
    if not ovf64 and s >= lo and s <= hi:
        return s, 0
    negative = (p < 0) if ovf64 else (s < 0)
    if mode == 1 or mode == 2:
        return (lo if negative else hi), 1
    if mode == 0:
        if bits == 64:
            return s, 1
        mask = (np.int64(1) << bits) - 1
        sb = np.int64(1) << (bits - 1)
        return ((s & mask) ^ sb) - sb, 1
    # numeric_std: sign of the unbounded sum, then its low bits-1 bits (hi is that mask)
    low = s & hi
    return (low + lo if negative else low), 1


# One kernel per overflow mode and lane type: a mode branch inside the k loop slows the
# vectorized inner loop by 20-60%. int32 lanes need explicit np.int32 casts, otherwise Numba
# widens every intermediate to int64 (half the vector width).


@njit(parallel=True, cache=True)
def _seq32_saturate(a, b, lo, hi, values, events):
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int32)
        ev = np.zeros(n_cols, dtype=np.int32)
        for k in range(k_len):
            amk = np.int32(a[m, k])
            brow = b[k]
            for n in range(n_cols):
                s = np.int32(acc[n] + np.int32(amk * np.int32(brow[n])))
                c = s
                if c > hi:
                    c = hi
                if c < lo:
                    c = lo
                ev[n] += np.int32(s != c)
                acc[n] = c
        for n in range(n_cols):
            values[m, n] = acc[n]
            events[m, n] = ev[n]


@njit(parallel=True, cache=True)
def _seq32_wrap(a, b, lo, hi, mask, sb, values, events):
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int32)
        ev = np.zeros(n_cols, dtype=np.int32)
        for k in range(k_len):
            amk = np.int32(a[m, k])
            brow = b[k]
            for n in range(n_cols):
                s = np.int32(acc[n] + np.int32(amk * np.int32(brow[n])))
                ev[n] += np.int32((s < lo) | (s > hi))
                acc[n] = np.int32(np.int32(np.int32(s & mask) ^ sb) - sb)
        for n in range(n_cols):
            values[m, n] = acc[n]
            events[m, n] = ev[n]


@njit(parallel=True, cache=True)
def _seq32_numeric_std(a, b, lo, hi, values, events):
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int32)
        ev = np.zeros(n_cols, dtype=np.int32)
        for k in range(k_len):
            amk = np.int32(a[m, k])
            brow = b[k]
            for n in range(n_cols):
                s = np.int32(acc[n] + np.int32(amk * np.int32(brow[n])))
                ev[n] += np.int32((s < lo) | (s > hi))
                acc[n] = np.int32(np.int32(s & hi) + np.int32(lo & np.int32(s >> 31)))
        for n in range(n_cols):
            values[m, n] = acc[n]
            events[m, n] = ev[n]


@njit(parallel=True, cache=True)
def _seq64_saturate(a, b, lo, hi, values, events):
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int64)
        ev = np.zeros(n_cols, dtype=np.int64)
        for k in range(k_len):
            amk = np.int64(a[m, k])
            brow = b[k]
            for n in range(n_cols):
                s = acc[n] + amk * brow[n]
                c = min(max(s, lo), hi)
                ev[n] += s != c
                acc[n] = c
        for n in range(n_cols):
            values[m, n] = acc[n]
            events[m, n] = ev[n]


@njit(parallel=True, cache=True)
def _seq64_wrap(a, b, lo, hi, mask, sb, values, events):
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int64)
        ev = np.zeros(n_cols, dtype=np.int64)
        for k in range(k_len):
            amk = np.int64(a[m, k])
            brow = b[k]
            for n in range(n_cols):
                s = acc[n] + amk * brow[n]
                ev[n] += (s < lo) | (s > hi)
                acc[n] = ((s & mask) ^ sb) - sb
        for n in range(n_cols):
            values[m, n] = acc[n]
            events[m, n] = ev[n]


@njit(parallel=True, cache=True)
def _seq64_numeric_std(a, b, lo, hi, values, events):
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int64)
        ev = np.zeros(n_cols, dtype=np.int64)
        for k in range(k_len):
            amk = np.int64(a[m, k])
            brow = b[k]
            for n in range(n_cols):
                s = acc[n] + amk * brow[n]
                ev[n] += (s < lo) | (s > hi)
                acc[n] = (s & hi) + (lo & (s >> 63))
        for n in range(n_cols):
            values[m, n] = acc[n]
            events[m, n] = ev[n]


@njit(parallel=True, cache=True)
def _seq_rows_generic(a, b, bits, mode, lo, hi, values, events):
    """One-level accumulation with exact handling of bits == 64 (scalar; rarely used)."""
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    for m in prange(m_rows):
        for n in range(n_cols):
            acc = np.int64(0)
            ev = np.int64(0)
            for k in range(k_len):
                acc, e = add_overflow(acc, a[m, k] * b[k, n], bits, mode, lo, hi)
                ev += e
            values[m, n] = acc
            events[m, n] = ev


@njit(parallel=True, cache=True)
def _acc_add(acc, x, events, bits, mode, lo, hi):
    """acc[m, n] <- register add of x[m, n] (in place), counting events."""
    m_rows, n_cols = acc.shape
    for m in prange(m_rows):
        for n in range(n_cols):
            r, e = add_overflow(acc[m, n], x[m, n], bits, mode, lo, hi)
            acc[m, n] = r
            events[m, n] += e


@njit(parallel=True, cache=True)
def _two_level_rows(a, b, tile, pbits, pmode, plo, phi, abits, amode, alo, ahi, values, ev_p,
                    ev_a):
    """Weight/input-stationary order in one pass: per k-tile of ``tile`` k's a psum register
    (starts at 0, overflow after every add), then one add of the tile's psum into the
    accumulator register. Rows in parallel; each output belongs to one thread."""
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int64)
        psum = np.zeros(n_cols, dtype=np.int64)
        ep = np.zeros(n_cols, dtype=np.int64)
        ea = np.zeros(n_cols, dtype=np.int64)
        for k0 in range(0, k_len, tile):
            psum[:] = 0
            for k in range(k0, min(k0 + tile, k_len)):
                amk = np.int64(a[m, k])
                brow = b[k]
                for n in range(n_cols):
                    r, e = add_overflow(psum[n], amk * np.int64(brow[n]), pbits, pmode, plo,
                                        phi)
                    psum[n] = r
                    ep[n] += e
            for n in range(n_cols):
                r, e = add_overflow(acc[n], psum[n], abits, amode, alo, ahi)
                acc[n] = r
                ea[n] += e
        for n in range(n_cols):
            values[m, n] = acc[n]
            ev_p[m, n] = ep[n]
            ev_a[m, n] = ea[n]


@njit(parallel=True, cache=True)
def _two_level32_saturate(a, b, tile, plo, phi, alo, ahi, values, ev_p, ev_a):
    """:func:`_two_level_rows` for two saturating registers whose sums fit int32 lanes (the
    clamp vectorizes; a mode branch per add does not)."""
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int32)
        psum = np.zeros(n_cols, dtype=np.int32)
        ep = np.zeros(n_cols, dtype=np.int32)
        ea = np.zeros(n_cols, dtype=np.int32)
        for k0 in range(0, k_len, tile):
            psum[:] = 0
            for k in range(k0, min(k0 + tile, k_len)):
                amk = np.int32(a[m, k])
                brow = b[k]
                for n in range(n_cols):
                    t = np.int32(psum[n] + np.int32(amk * np.int32(brow[n])))
                    c = min(max(t, plo), phi)
                    ep[n] += np.int32(t != c)
                    psum[n] = c
            for n in range(n_cols):
                t = np.int32(acc[n] + psum[n])
                c = min(max(t, alo), ahi)
                ea[n] += np.int32(t != c)
                acc[n] = c
        for n in range(n_cols):
            values[m, n] = acc[n]
            ev_p[m, n] = ep[n]
            ev_a[m, n] = ea[n]


def max_abs(x: np.ndarray) -> int:
    """max |x| as a Python int (np.abs would wrap the most negative code of the dtype)."""
    if x.size == 0:
        return 0
    return max(-int(x.min()), int(x.max()), 0)


def two_level(a: np.ndarray, b: np.ndarray, tile: int, psum_bits: int, psum_overflow: str,
              acc_bits: int, acc_overflow: str, max_abs_a: int | None = None,
              max_abs_b: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, psum events, acc events) int64 (M, N) of the two-level add order (see
    :func:`_two_level_rows`). The output axis with more entries runs in the vectorized inner
    loop (a transposed problem adds every output's products in the same k order).
    ``max_abs_a``/``max_abs_b``: known bounds on |a|, |b| (computed when None)."""
    m_rows, n_cols = a.shape[0], b.shape[1]
    max_a = max_abs(a) if max_abs_a is None else max_abs_a
    max_b = max_abs(b) if max_abs_b is None else max_abs_b
    if _k16.fits(max_a, max_b, psum_bits, acc_bits) and tile <= _k16.FLUSH:
        return _k16.two_level16(a, b, tile, psum_bits, psum_overflow, acc_bits, acc_overflow)
    if n_cols < m_rows and n_cols < 64:
        vt, pt, at = two_level(np.ascontiguousarray(b.T), np.ascontiguousarray(a.T), tile,
                               psum_bits, psum_overflow, acc_bits, acc_overflow, max_b, max_a)
        return vt.T.copy(), pt.T.copy(), at.T.copy()
    shape = (m_rows, n_cols)
    values = np.empty(shape, dtype=np.int64)
    ev_p = np.empty(shape, dtype=np.int64)
    ev_a = np.empty(shape, dtype=np.int64)
    if not (m_rows and n_cols):
        return values, ev_p, ev_a
    plo, phi = register_range(psum_bits, psum_overflow)
    alo, ahi = register_range(acc_bits, acc_overflow)
    sat = ("saturate", "saturate_symmetric")
    if psum_overflow in sat and acc_overflow in sat and max_a * max_b < 2**30 and \
            psum_bits <= 30 and acc_bits <= 30:
        # |register| <= 2^29 and |product| < 2^30: every int32 sum is exact (event counts
        # stay below 2^31 for K < 2^31)
        i32 = np.int32
        _two_level32_saturate(_narrow(a, np.int32, max_a), _narrow(b, np.int32, max_b), tile,
                              i32(plo), i32(phi), i32(alo), i32(ahi), values, ev_p, ev_a)
    else:
        _two_level_rows(_narrow(a, np.int64, max_a), _narrow(b, np.int64, max_b), tile,
                        psum_bits, MODE_CODES[psum_overflow], plo, phi, acc_bits,
                        MODE_CODES[acc_overflow], alo, ahi, values, ev_p, ev_a)
    return values, ev_p, ev_a


@njit(parallel=True, cache=True)
def wrapping_matmul(a, b):
    """Sum of products modulo 2^64 (int64 wraparound): exact whenever the sum fits int64."""
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    out = np.zeros((m_rows, n_cols), dtype=np.int64)
    for m in prange(m_rows):
        for k in range(k_len):
            amk = np.uint64(a[m, k])
            for n in range(n_cols):
                out[m, n] = np.int64(np.uint64(out[m, n]) + amk * np.uint64(b[k, n]))
    return out


def register_range(bits: int, overflow: str) -> tuple[int, int]:
    """(lo, hi) of a signed ``bits`` register under ``overflow``."""
    hi = (1 << (bits - 1)) - 1
    lo = -hi if overflow == "saturate_symmetric" else -(1 << (bits - 1))
    return lo, hi


def sequential(a: np.ndarray, b: np.ndarray, bits: int, overflow: str,
               max_abs_a: int, max_abs_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequential k-order accumulation of a (M,K) x b (K,N) -> (values, events) int64.

    Picks the narrowest lane type in which ``acc + a*b`` is provably exact. The output
    axis with more entries runs in the vectorized inner loop (a transposed problem adds
    every output's products in the same k order).
    """
    if _k16.fits(max_abs_a, max_abs_b, bits):
        return _k16.sequential16(a, b, bits, overflow)
    m_rows, n_cols = a.shape[0], b.shape[1]
    if n_cols < m_rows and n_cols < 64:
        vt, et = sequential(np.ascontiguousarray(b.T), np.ascontiguousarray(a.T), bits,
                            overflow, max_abs_b, max_abs_a)
        return vt.T.copy(), et.T.copy()
    values = np.empty((m_rows, n_cols), dtype=np.int64)
    events = np.empty((m_rows, n_cols), dtype=np.int64)
    if m_rows == 0 or n_cols == 0:
        return values, events
    lo, hi = register_range(bits, overflow)
    mode = MODE_CODES[overflow]
    max_prod = max_abs_a * max_abs_b
    cast: type[np.signedinteger]
    if (1 << (bits - 1)) + max_prod < 2**31:
        cast = np.int32
        aa, bb = _narrow(a, np.int32, max_abs_a), _narrow(b, np.int32, max_abs_b)
        kern = (_seq32_wrap, _seq32_saturate, _seq32_saturate, _seq32_numeric_std)[mode]
    elif bits <= 63:
        cast = np.int64
        aa, bb = np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64)
        kern = (_seq64_wrap, _seq64_saturate, _seq64_saturate, _seq64_numeric_std)[mode]
    else:
        _seq_rows_generic(np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64),
                          bits, mode, lo, hi, values, events)
        return values, events
    if mode == 0:
        kern(aa, bb, cast(lo), cast(hi), cast((1 << bits) - 1), cast(1 << (bits - 1)),
             values, events)
    else:
        kern(aa, bb, cast(lo), cast(hi), values, events)
    return values, events


def _narrow(x: np.ndarray, wide: type, max_abs: int) -> np.ndarray:
    """x as int8 when its values fit (less memory traffic), else as ``wide``.

    Values must fit ``wide`` unless the other operand is all zero (then they are never
    multiplied by anything that reaches the register)."""
    if x.dtype == np.int8 or max_abs <= 127:
        return np.ascontiguousarray(x, np.int8)
    return np.ascontiguousarray(x, wide)


def accumulate(acc: np.ndarray, x: np.ndarray, events: np.ndarray, bits: int,
               overflow: str) -> None:
    """In place: ``acc = register_add(acc, x)`` elementwise, ``events += event``."""
    lo, hi = register_range(bits, overflow)
    _acc_add(acc, np.ascontiguousarray(x, np.int64), events, bits, MODE_CODES[overflow], lo, hi)
