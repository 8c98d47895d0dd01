"""Float -> fixed-point codes (:func:`quantize`) and back (:func:`dequantize`).

``quantize(x, fmt, rounding, overflow, rng)`` rounds the *exact* real value ``x * 2**frac`` of
every element (``x`` converted exactly to float64) with ``rounding`` and casts the integer to
``fmt``'s code range with ``overflow`` (modes: :mod:`fxpsim.fixedpoint.modes`). It is one fused
parallel Numba pass (scale, round, overflow, count) writing int64 codes.

Exactness: scaling a float64 by ``2**frac`` (|frac| <= 64) is exact unless the result falls
below ``2**-1000`` (possible only for frac < 0) or overflows. A nonzero value below
``2**-1000`` in magnitude is replaced by ``±2**-1000``, which every mode rounds exactly like
the true value (same floor, fraction below 1/2, ``floor(f * 2**r)`` the same for r <= 32).
Values of magnitude >= ``2**62`` are integers; they always overflow, and ``wrap`` /
``numeric_std`` take their low bits from the float's exact mantissa and exponent.
Python-int twin: :func:`fxpsim.fixedpoint.oracle.quantize`.

Two branch-free variants give identical results where they apply (saturating casts with
frac >= 0, so no scaling underflow): floor/ceil/trunc/half_even, and stochastic. Stochastic
modes advance the generator by one draw per element (also when the call then raises).
"""

from __future__ import annotations

import math
from typing import Literal, overload

import numpy as np
from numba import njit, prange

from .formats import QFormat, QuantResult
from .modes import (
    O_SATURATE,
    O_SATURATE_SYMMETRIC,
    R_CEIL,
    R_FLOOR,
    R_HALF_EVEN,
    R_JAM,
    R_STOCHASTIC,
    R_STOCHASTIC_EQUAL,
    R_TRUNC,
    canonical_rounding,
    check_random_bits,
    overflow_id,
    rounding_id,
)
from .rng import LFSR, Philox, lfsr_fill, philox_bits, philox_fill
from .rounding import cast_huge, overflow_core, round_core, round_float_basic

TINY = 2.0**-1000
HUGE = 2.0**62
_EMPTY_RAND = np.zeros(0, np.int64)
_FAST_ROUNDING = (R_HALF_EVEN, R_FLOOR, R_CEIL, R_TRUNC)
_FAST_OVERFLOW = (O_SATURATE, O_SATURATE_SYMMETRIC)
QCHUNK = 4096  # elements per chunk of the fused stochastic kernel (buffer stays in L1/L2)
SRC_ARRAY, SRC_PHILOX, SRC_LFSR = 0, 1, 2
# placeholder LFSR-plan arguments (same types as LfsrPlan.fill_args(): one compiled kernel)
_NO_LFSR = (False, 1, np.zeros(0, np.uint32), np.zeros((1, 4), np.int64),
            np.zeros((1, 1), np.int64), 1, False, 0, 2)


@njit(inline="always", cache=True)
def _low64(x, frac):
    """Low 64 bits (two's complement) of the integer x * 2**frac, for |x * 2**frac| >= 2**62."""
    m, e = math.frexp(x)
    mant = np.int64(m * 9007199254740992.0)  # m * 2**53: exact integer
    k = e - 53 + frac  # >= 10 here
    if k >= 64:
        return np.int64(0)
    return mant << k


@njit(parallel=True, cache=True)
def _quantize_kernel(x, out, frac, rmode, omode, lo, hi, bits, signed, r, rand, philox, k0, k1,
                     ctr):
    """Fused scale/round/overflow/count, any mode. Returns (n_nonfinite, n_ovf, n_inexact)."""
    scale = 2.0**frac
    two_r = 2.0**r
    stochastic = rmode == R_STOCHASTIC or rmode == R_STOCHASTIC_EQUAL
    n_bad = 0
    n_ovf = 0
    n_inexact = 0
    for i in prange(x.size):
        xi = x[i]
        rnd = np.int64(0)
        if stochastic:
            if philox:
                rnd = philox_bits(ctr + i, k0, k1, r)
            else:
                rnd = rand[i]
        v = xi * scale
        av = abs(v)
        if av < HUGE:  # rare cases (non-finite, huge) take the predictable else branch
            if av < TINY and xi != 0.0:
                v = math.copysign(TINY, xi)
            t = np.trunc(v)
            rem = v - t  # exact: the fractional bits of v, with the sign of v
            neg = rem < 0.0
            fl = np.int64(t) - np.int64(neg)
            half = -0.5 if neg else 0.5  # f = rem + neg; compare f with 1/2 exactly via rem
            cmp = np.int64(rem > half) - np.int64(rem < half)
            thr = np.int64(np.floor(rem * two_r)) + (np.int64(neg) << r)
            inexact = rem != 0.0
            n_inexact += np.int64(inexact)
            q = round_core(rmode, fl, inexact, cmp, thr, rnd)
            code, ovf = overflow_core(q, omode, lo, hi, bits, signed)
            n_ovf += np.int64(ovf)
            out[i] = code
        elif math.isfinite(xi):
            n_ovf += 1
            low = _low64(xi, frac)
            if rmode == R_JAM:  # v is an integer; jam still forces its LSB
                low |= 1
            out[i] = cast_huge(low, xi < 0, omode, lo, hi, bits, signed)
        else:
            n_bad += 1
            out[i] = 0
    return n_bad, n_ovf, n_inexact


@njit(parallel=True, cache=True)
def _quantize_fast(x, out, frac, rmode, lo, hi):
    """Same results as ``_quantize_kernel`` for floor/ceil/trunc/half_even with a saturating
    cast (``lo`` already ``-hi`` for saturate_symmetric) and frac >= 0, where scaling by
    2**frac cannot underflow: float rounding functions are exact there, the clamp happens in
    float (inf saturates), and the loop is branch-free so it vectorizes."""
    scale = 2.0**frac
    lo_f = float(lo)
    hi_f = float(hi)
    n_bad = 0
    n_ovf = 0
    n_inexact = 0
    for i in prange(x.size):
        xi = x[i]
        v = xi * scale
        rv = round_float_basic(v, rmode)
        n_bad += np.int64((xi - xi) != 0.0)
        n_inexact += np.int64(rv != v)
        below = rv < lo_f
        above = rv > hi_f
        n_ovf += np.int64(below | above)
        out[i] = np.int64(lo_f if below else (hi_f if above else rv))
    return n_bad, n_ovf, n_inexact


@njit(inline="never", cache=True)
def _stochastic_chunk(x, out, rand, scale, two_r, lo_f, hi_f):
    """Branch-free stochastic rounding of one chunk (a separate function so that LLVM
    vectorizes it: the arguments are plain slices)."""
    c_bad = 0
    c_ovf = 0
    c_inexact = 0
    for k in range(x.size):
        xi = x[k]
        v = xi * scale
        c_bad += np.int64((xi - xi) != 0.0)
        c_inexact += np.int64(v != np.trunc(v))
        vc = min(max(v, lo_f - 2.0), hi_f + 2.0)
        t = np.trunc(vc)
        rem = vc - t
        neg = rem < 0.0
        thr = np.floor(rem * two_r) + (two_r if neg else 0.0)  # floor(f * 2**r), f = rem + neg
        q = t - (1.0 if neg else 0.0) + (1.0 if float(rand[k]) < thr else 0.0)
        below = q < lo_f
        above = q > hi_f
        c_ovf += np.int64(below | above)
        out[k] = np.int64(lo_f if below else (hi_f if above else q))
    return c_bad, c_ovf, c_inexact


@njit(parallel=True, cache=True)
def _quantize_stochastic_fast(x, out, frac, lo, hi, r, src, rand, k0, k1, ctr, table, lanes,
                              seq, info, pw, steps, galois, tapmask, width):
    """Same results as ``_quantize_kernel`` for ``stochastic`` with a saturating cast (``lo``
    already ``-hi`` for saturate_symmetric) and frac >= 0. Branch-free float formulation:
    values beyond the range are first clamped to ``lo - 2`` / ``hi + 2`` (integers that
    saturate the same way), so every quantity is a small exact float.

    Random values come from ``src``: pre-drawn ``rand``, inline Philox, or an LFSR plan
    (:func:`~fxpsim.fixedpoint.rng.lfsr_fill`); the generated ones are made per chunk in a
    small buffer (no n-sized temporary). Chunks are fixed, so results do not depend on the
    thread count."""
    scale = 2.0**frac
    two_r = 2.0**r
    lo_f = float(lo)
    hi_f = float(hi)
    rmask = (np.int64(1) << r) - 1
    n = x.size
    n_bad = 0
    n_ovf = 0
    n_inexact = 0
    for c in prange((n + QCHUNK - 1) // QCHUNK):
        a = c * QCHUNK
        b = min(n, a + QCHUNK)
        if src == SRC_ARRAY:
            cb, co, ci = _stochastic_chunk(x[a:b], out[a:b], rand[a:b], scale, two_r, lo_f,
                                           hi_f)
        else:
            buf = np.empty(b - a, np.int64)
            if src == SRC_PHILOX:
                philox_fill(buf, ctr + a, k0, k1, r)
            else:
                lfsr_fill(buf, a, b, table, lanes, seq, info, pw, steps, galois, tapmask,
                          width, rmask)
            cb, co, ci = _stochastic_chunk(x[a:b], out[a:b], buf, scale, two_r, lo_f, hi_f)
        n_bad += cb
        n_ovf += co
        n_inexact += ci
    return n_bad, n_ovf, n_inexact


def _as_float64(x: object) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        if arr.dtype.itemsize > 8:
            raise ValueError(f"x: dtype {arr.dtype} is wider than float64; convert it first")
        return np.asarray(arr, dtype=np.float64, order="C")
    if arr.dtype.kind in "iu":
        if arr.dtype.itemsize >= 8 and arr.size:
            big = 2**53
            if int(arr.max()) > big or int(arr.min()) < -big:
                raise ValueError("x: integers beyond ±2**53 are not exact in float64")
        return np.asarray(arr, dtype=np.float64, order="C")
    if arr.dtype.kind == "b":
        return np.asarray(arr, dtype=np.float64, order="C")
    raise ValueError(f"x: must be a real numeric array, got dtype {arr.dtype}")


def random_source(rng: object, rmode: int, n: int, random_bits: int):
    """Resolve ``rng`` for a stochastic rounding of ``n`` elements.

    Returns ``(rand, use_philox, k0, k1, ctr, r)``: ``rand`` holds pre-drawn values when the
    generator is not inlined in the kernel. Advances the generator by ``n`` draws.
    """
    r = 1 if rmode == R_STOCHASTIC_EQUAL else check_random_bits(random_bits)
    if rmode not in (R_STOCHASTIC, R_STOCHASTIC_EQUAL):
        return _EMPTY_RAND, False, 0, 0, 0, r
    if rng is None:
        raise ValueError("rng: stochastic rounding needs rng (a hardware RNG or an int seed)")
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        rng = Philox(int(rng))
    if isinstance(rng, Philox):
        k0, k1, ctr = rng.kernel_args()
        rng.advance(n)
        return _EMPTY_RAND, True, k0, k1, ctr, r
    if not hasattr(rng, "draw"):
        raise ValueError(f"rng: must be an int seed or have draw(n, bits), got {rng!r}")
    rand = np.asarray(rng.draw(n, r))
    if rand.shape != (n,) or rand.dtype.kind not in "iu":
        raise ValueError(f"rng: draw({n}, {r}) must return {n} integers, got {rand.shape}")
    if not isinstance(rng, LFSR) and n and (int(rand.min()) < 0 or int(rand.max()) >> r):
        raise ValueError(f"rng: draw(n, {r}) returned values outside 0..2**{r}-1")
    return np.ascontiguousarray(rand.astype(np.int64, copy=False)), False, 0, 0, 0, r


@overload
def quantize(
    x: object,
    fmt: QFormat,
    rounding: str = "half_even",
    overflow: str = "saturate",
    rng: object = None,
    *,
    random_bits: int = 16,
    return_stats: Literal[False] = False,
) -> np.ndarray: ...


@overload
def quantize(
    x: object,
    fmt: QFormat,
    rounding: str = "half_even",
    overflow: str = "saturate",
    rng: object = None,
    *,
    random_bits: int = 16,
    return_stats: Literal[True],
) -> QuantResult: ...


def quantize(
    x: object,
    fmt: QFormat,
    rounding: str = "half_even",
    overflow: str = "saturate",
    rng: object = None,
    *,
    random_bits: int = 16,
    return_stats: bool = False,
) -> np.ndarray | QuantResult:
    """Quantize real values to ``fmt`` codes (int64, same shape as ``x``).

    ``rng``: a hardware RNG (:class:`~fxpsim.fixedpoint.rng.LFSR`,
    :class:`~fxpsim.fixedpoint.rng.Philox`, or anything with ``draw(n, bits)``) or an int seed
    (a fresh ``Philox(seed)``); required by the stochastic modes, which take one draw of
    ``random_bits`` bits (1 bit for ``stochastic_equal``) per element in C order.
    ``return_stats=True`` returns :class:`QuantResult` with the overflow and inexact counts.
    NaN/±inf raise ValueError naming ``x``.
    """
    if not isinstance(fmt, QFormat):
        raise ValueError(f"fmt: must be a QFormat, got {fmt!r}")
    canonical_rounding(rounding)
    rmode = rounding_id(rounding)
    omode = overflow_id(overflow)
    arr = _as_float64(x)
    flat = arr.reshape(-1)
    lo = -fmt.hi if (fmt.signed and omode == O_SATURATE_SYMMETRIC) else fmt.lo
    fast = omode in _FAST_OVERFLOW and fmt.frac >= 0
    plan = None
    if fast and rmode == R_STOCHASTIC and isinstance(rng, LFSR):
        r = rng.check_bits(check_random_bits(random_bits))
        plan = rng.plan(flat.size)  # None: wide LFSR with few draws per lane
    if plan is None:
        rand, philox, k0, k1, ctr, r = random_source(rng, rmode, flat.size, random_bits)
    else:
        rand, philox, k0, k1, ctr = _EMPTY_RAND, False, 0, 0, 0
    out = np.empty(flat.size, np.int64)
    if fast and rmode in _FAST_ROUNDING:
        n_bad, n_ovf, n_inexact = _quantize_fast(flat, out, fmt.frac, rmode, lo, fmt.hi)
    elif fast and rmode == R_STOCHASTIC:
        src = SRC_PHILOX if philox else (SRC_LFSR if plan is not None else SRC_ARRAY)
        lfsr_args = plan.fill_args() if plan is not None else _NO_LFSR
        n_bad, n_ovf, n_inexact = _quantize_stochastic_fast(
            flat, out, fmt.frac, lo, fmt.hi, r, src, rand, k0, k1, ctr, *lfsr_args
        )
    else:
        n_bad, n_ovf, n_inexact = _quantize_kernel(
            flat, out, fmt.frac, rmode, omode, fmt.lo, fmt.hi, fmt.bits, fmt.signed, r, rand,
            philox, k0, k1, ctr,
        )
    if n_bad:
        raise ValueError(f"x: {n_bad} non-finite value(s) (NaN or ±inf) cannot be quantized")
    codes = out.reshape(arr.shape)
    if return_stats:
        return QuantResult(codes, int(n_ovf), int(n_inexact))
    return codes


def dequantize(codes: object, fmt: QFormat) -> np.ndarray:
    """Real values ``codes * 2**-frac`` as float64 (exact for codes in range)."""
    if not isinstance(fmt, QFormat):
        raise ValueError(f"fmt: must be a QFormat, got {fmt!r}")
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"codes: must be an integer array, got dtype {arr.dtype}")
    return arr.astype(np.float64) * (2.0**-fmt.frac)
