"""Sequential 16-bit accumulator kernels in int16 lanes (32 per AVX-512 vector).

Used when the register is exactly 16 bits and max|a*b| <= 32767 (e.g. INT8 x INT8), the
common case of a narrow saturating accumulator. ``w`` is the wrapping int16 sum; a signed
overflow of it is exactly "the unbounded sum left [-2^15, 2^15-1]". On overflow the true sum
has the sign of ``p``. One kernel per overflow mode: a mode branch inside the k loop costs
~20% here. Event lanes are int16 and flushed to int64 every ``FLUSH`` k's.
Rows run in parallel (``prange``); each output belongs to one thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

FLUSH = 32767


@njit(parallel=True, cache=True)
def seq16_saturate(a, b, values, events):
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    lo, hi, zero, one = np.int16(-32768), np.int16(32767), np.int16(0), np.int16(1)
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int16)
        ev = np.zeros(n_cols, dtype=np.int16)
        ev64 = np.zeros(n_cols, dtype=np.int64)
        for k0 in range(0, k_len, FLUSH):
            for k in range(k0, min(k0 + FLUSH, k_len)):
                amk = np.int16(a[m, k])
                brow = b[k]
                for n in range(n_cols):
                    p = np.int16(amk * np.int16(brow[n]))
                    x = acc[n]
                    w = np.int16(x + p)
                    o = np.int16(np.int16(x ^ w) & np.int16(p ^ w)) < zero
                    acc[n] = (hi if p > zero else lo) if o else w
                    ev[n] = np.int16(ev[n] + (one if o else zero))
            for n in range(n_cols):
                ev64[n] += ev[n]
                ev[n] = 0
        for n in range(n_cols):
            values[m, n] = acc[n]
            events[m, n] = ev64[n]


@njit(parallel=True, cache=True)
def seq16_wrap(a, b, values, events):
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    zero, one = np.int16(0), np.int16(1)
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int16)
        ev = np.zeros(n_cols, dtype=np.int16)
        ev64 = np.zeros(n_cols, dtype=np.int64)
        for k0 in range(0, k_len, FLUSH):
            for k in range(k0, min(k0 + FLUSH, k_len)):
                amk = np.int16(a[m, k])
                brow = b[k]
                for n in range(n_cols):
                    p = np.int16(amk * np.int16(brow[n]))
                    x = acc[n]
                    w = np.int16(x + p)
                    o = np.int16(np.int16(x ^ w) & np.int16(p ^ w)) < zero
                    acc[n] = w
                    ev[n] = np.int16(ev[n] + (one if o else zero))
            for n in range(n_cols):
                ev64[n] += ev[n]
                ev[n] = 0
        for n in range(n_cols):
            values[m, n] = acc[n]
            events[m, n] = ev64[n]


@njit(parallel=True, cache=True)
def seq16_saturate_symmetric(a, b, values, events):
    """Range [-32767, 32767]: also an event when the in-int16 sum is exactly -32768."""
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    lo, hi, zero, one = np.int16(-32768), np.int16(32767), np.int16(0), np.int16(1)
    nhi = np.int16(-32767)
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int16)
        ev = np.zeros(n_cols, dtype=np.int16)
        ev64 = np.zeros(n_cols, dtype=np.int64)
        for k0 in range(0, k_len, FLUSH):
            for k in range(k0, min(k0 + FLUSH, k_len)):
                amk = np.int16(a[m, k])
                brow = b[k]
                for n in range(n_cols):
                    p = np.int16(amk * np.int16(brow[n]))
                    x = acc[n]
                    w = np.int16(x + p)
                    o = np.int16(np.int16(x ^ w) & np.int16(p ^ w)) < zero
                    r = (hi if p > zero else nhi) if o else w
                    e = o | (w == lo)
                    acc[n] = nhi if r == lo else r
                    ev[n] = np.int16(ev[n] + (one if e else zero))
            for n in range(n_cols):
                ev64[n] += ev[n]
                ev[n] = 0
        for n in range(n_cols):
            values[m, n] = acc[n]
            events[m, n] = ev64[n]


@njit(parallel=True, cache=True)
def seq16_numeric_std(a, b, values, events):
    """On overflow the true sign is the flipped sign bit of w, low 15 bits are w's."""
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    lo, zero, one = np.int16(-32768), np.int16(0), np.int16(1)
    for m in prange(m_rows):
        acc = np.zeros(n_cols, dtype=np.int16)
        ev = np.zeros(n_cols, dtype=np.int16)
        ev64 = np.zeros(n_cols, dtype=np.int64)
        for k0 in range(0, k_len, FLUSH):
            for k in range(k0, min(k0 + FLUSH, k_len)):
                amk = np.int16(a[m, k])
                brow = b[k]
                for n in range(n_cols):
                    p = np.int16(amk * np.int16(brow[n]))
                    x = acc[n]
                    w = np.int16(x + p)
                    o = np.int16(np.int16(x ^ w) & np.int16(p ^ w)) < zero
                    acc[n] = np.int16(w ^ lo) if o else w
                    ev[n] = np.int16(ev[n] + (one if o else zero))
            for n in range(n_cols):
                ev64[n] += ev[n]
                ev[n] = 0
        for n in range(n_cols):
            values[m, n] = acc[n]
            events[m, n] = ev64[n]


SEQ16 = {0: seq16_wrap, 1: seq16_saturate, 2: seq16_saturate_symmetric, 3: seq16_numeric_std}
