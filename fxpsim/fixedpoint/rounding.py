"""Numba building blocks shared by the quantize and requantize kernels: rounding and overflow.

Semantics are documented in :mod:`fxpsim.fixedpoint.modes`; the Python-int twins are
:func:`fxpsim.fixedpoint.oracle.round_value` and :func:`fxpsim.fixedpoint.oracle.overflow`.

A rounding is described by ``fl = floor(v)`` (int64), ``inexact`` (the discarded fraction
``f`` is nonzero), ``cmp`` = sign of ``f - 1/2`` (-1, 0, 1), ``thr = floor(f * 2**r)`` (only
used by ``stochastic``) and ``rnd``, the element's random number (stochastic modes only).
The callers compute these exactly from their integer or float representation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .modes import (
    O_NUMERIC_STD,
    O_SATURATE,
    O_SATURATE_SYMMETRIC,
    R_AWAY,
    R_CEIL,
    R_FLOOR,
    R_HALF_AWAY,
    R_HALF_DOWN,
    R_HALF_EVEN,
    R_HALF_ODD,
    R_HALF_UP,
    R_HALF_ZERO,
    R_JAM,
    R_JAM_UNBIASED,
    R_STOCHASTIC,
    R_STOCHASTIC_EQUAL,
    R_TRUNC,
)


@njit(inline="always", cache=True)
def round_float_basic(v, rmode):
    """Exact float rounding for the four modes numpy does natively (half_even = rint, floor,
    ceil; anything else = trunc): branch-free per mode, so callers' loops vectorize."""
    if rmode == R_HALF_EVEN:
        return np.rint(v)
    if rmode == R_FLOOR:
        return np.floor(v)
    if rmode == R_CEIL:
        return np.ceil(v)
    return np.trunc(v)


@njit(inline="always", cache=True)
def round_core(rmode, fl, inexact, cmp, thr, rnd):
    """Rounded integer (int64) for rounding mode id ``rmode``.

    Branches only on the (loop-invariant) mode; data-dependent choices are arithmetic so the
    compiler emits selects instead of mispredicted branches.
    """
    one = np.int64(1)
    ix = np.int64(inexact)
    neg = np.int64(fl < 0)
    gt = np.int64(cmp > 0)
    tie = np.int64(cmp == 0)
    odd = fl & one
    if rmode == R_FLOOR:
        up = np.int64(0)
    elif rmode == R_CEIL:
        up = ix
    elif rmode == R_TRUNC:  # inexact: fl < 0 <=> v < 0
        up = ix & neg
    elif rmode == R_AWAY:
        up = ix & (one - neg)
    elif rmode == R_HALF_UP:
        up = gt | tie
    elif rmode == R_HALF_DOWN:
        up = gt
    elif rmode == R_HALF_ZERO:
        up = gt | (tie & neg)
    elif rmode == R_HALF_AWAY:
        up = gt | (tie & (one - neg))
    elif rmode == R_HALF_EVEN:
        up = gt | (tie & odd)
    elif rmode == R_HALF_ODD:
        up = gt | (tie & (one - odd))
    elif rmode == R_JAM:
        return fl | one
    elif rmode == R_JAM_UNBIASED:
        return fl | ix
    elif rmode == R_STOCHASTIC:  # thr == 0 when exact
        up = np.int64(rnd < thr)
    elif rmode == R_STOCHASTIC_EQUAL:
        up = ix & np.int64(rnd < 1)
    else:  # unreachable: ids are validated before the kernel runs
        up = np.int64(0)
    return fl + up


@njit(inline="always", cache=True)
def overflow_core(q, omode, lo, hi, bits, signed):
    """Cast the unbounded integer ``q`` (any int64) to the code range; returns (code, ovf)."""
    lo_ok = -hi if (signed and omode == O_SATURATE_SYMMETRIC) else lo
    below = q < lo_ok
    above = q > hi
    if omode == O_SATURATE or omode == O_SATURATE_SYMMETRIC:
        code = lo_ok if below else (hi if above else q)
    else:
        code = wrap_low_bits(q, q < 0, omode, bits, signed)
    return code, below | above


@njit(inline="always", cache=True)
def wrap_low_bits(low, negative, omode, bits, signed):
    """``wrap``/``numeric_std`` result from the low 64 bits ``low`` of the unbounded integer
    (two's complement) and its true sign ``negative``."""
    one = np.int64(1)
    if signed and omode == O_NUMERIC_STD:
        half = one << (bits - 1)
        return (low & (half - one)) - (np.int64(negative) << (bits - 1))
    code = low & ((one << bits) - one)
    if signed:
        code -= np.int64(code >= (one << (bits - 1))) << bits
    return code


@njit(inline="always", cache=True)
def cast_huge(low, negative, omode, lo, hi, bits, signed):
    """Cast an integer of magnitude >= 2**62 (known by its low 64 bits and sign): always an
    overflow."""
    if omode == O_SATURATE or omode == O_SATURATE_SYMMETRIC:
        if negative:
            return -hi if (signed and omode == O_SATURATE_SYMMETRIC) else lo
        return hi
    return wrap_low_bits(low, negative, omode, bits, signed)
