"""Integer output stages: accumulator (int64) -> narrow codes, like integer-only inference HW.

``requantize(acc, multiplier, shift, out_fmt, rounding, overflow)``
    ``code = cast(round(acc * multiplier / 2**shift))``: the product ``acc * multiplier`` is
    exact in int64, then a rounding right shift by ``shift`` (any rounding mode of
    :mod:`fxpsim.fixedpoint.modes`; the discarded ``shift`` bits are the fraction), then the
    overflow mode casts to ``out_fmt``'s code range (``out_fmt.frac`` is metadata here: the
    scale is entirely in multiplier/shift). gemmlowp/TFLite use ``half_away`` on a doubled
    high product; this stage rounds once, exactly.
    Limits: ``|multiplier| < 2**31``, ``0 <= shift <= 62``, and ``|acc * multiplier| < 2**63``
    per element (any ``|acc| < 2**32`` qualifies; with ``multiplier = 1``, any int64 but the
    minimum) -- violations raise ValueError naming the argument.
    Per-channel: ``multiplier``/``shift`` may be 1-D arrays of length ``acc.shape[axis]``
    (default last axis), broadcast along that axis; scalars are per-tensor.

``requantize_fp32(acc, scale, out_fmt, rounding, overflow)``
    fp32-scale output stage: ``v = float32(float32(acc) * float32(scale))`` computed in IEEE
    binary32 (round-to-nearest-even), then ``v`` rounded to an integer with ``rounding`` and
    cast. ``|scale| <= 2**64`` and finite, so ``v`` is always finite.

``quantize_multiplier(real_scale) -> (multiplier, shift)``
    TFLite ``QuantizeMultiplier`` style: ``real_scale ≈ multiplier * 2**-shift`` with
    ``multiplier`` in ``[2**30, 2**31)`` (``round(q * 2**31)`` of the frexp mantissa ``q``,
    ties away from zero) and ``shift`` in 0..62, i.e. ``real_scale`` in about
    ``[2**-32, 2**31)``.

Stochastic modes draw one random number per element in C order (see :func:`quantize`).
Python-int twins: :func:`fxpsim.fixedpoint.oracle.requantize` / ``requantize_fp32``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal, overload

import numpy as np
from numba import njit, prange

from .formats import QFormat, QuantResult, as_int
from .modes import overflow_id, rounding_id
from .quantize import quantize, random_source
from .rng import philox_bits
from .rounding import overflow_core, round_core

MAX_SHIFT = 62
MULT_LIMIT = 2**31
I64_MAX = 2**63 - 1


@njit(parallel=True, cache=True)
def _requantize_kernel(acc, out, mult, shift, lim, inner, nch, rmode, omode, lo, hi, bits,
                       signed, r, rand, philox, k0, k1, ctr):
    """Exact product, rounding shift, cast, count. Returns (n_out_of_range, n_ovf, n_inexact)."""
    n_bad = 0
    n_ovf = 0
    n_inexact = 0
    one = np.int64(1)
    for i in prange(acc.size):
        ch = 0 if nch == 1 else (i // inner) % nch
        a = acc[i]
        lim_c = lim[ch]
        if a > lim_c or a < -lim_c:
            n_bad += 1
            out[i] = 0
            continue
        rnd = np.int64(0)
        if r > 0:
            if philox:
                rnd = philox_bits(ctr + i, k0, k1, r)
            elif rand.size:
                rnd = rand[i]
        s = shift[ch]
        p = a * mult[ch]
        fl = p >> s
        rem = p & ((one << s) - one)
        thr = np.int64(0)
        cmp = -1
        if s > 0:
            half = one << (s - 1)
            cmp = 1 if rem > half else (0 if rem == half else -1)
            thr = rem >> (s - r) if s >= r else rem << (r - s)
        inexact = rem != 0
        if inexact:
            n_inexact += 1
        q = round_core(rmode, fl, inexact, cmp, thr, rnd)
        code, ovf = overflow_core(q, omode, lo, hi, bits, signed)
        if ovf:
            n_ovf += 1
        out[i] = code
    return n_bad, n_ovf, n_inexact


def _int64_array(acc: object) -> np.ndarray:
    arr = np.asarray(acc)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"acc: must be an integer array, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > I64_MAX:
        raise ValueError("acc: values above 2**63-1 do not fit int64")
    return np.asarray(arr, dtype=np.int64, order="C")


def _channel_layout(shape: tuple[int, ...], params: dict[str, np.ndarray], axis: int):
    """Channel count and inner stride for per-channel params (1-D, length shape[axis])."""
    if all(p.ndim == 0 or p.size == 1 for p in params.values()):
        return 1, 1
    axis_i = as_int(axis, "axis")
    if not shape or not -len(shape) <= axis_i < len(shape):
        raise ValueError(f"axis: {axis} is out of range for acc with shape {shape}")
    axis_i %= len(shape)
    for name, p in params.items():
        if p.ndim > 1 or (p.size not in (1, shape[axis_i])):
            raise ValueError(
                f"{name}: per-channel values must be 1-D of length acc.shape[{axis}]="
                f"{shape[axis_i]}, got shape {p.shape}"
            )
    return shape[axis_i], int(np.prod(shape[axis_i + 1:], dtype=np.int64))


def _broadcast(p: np.ndarray, nch: int) -> np.ndarray:
    # a writeable copy: read-only views would compile a second kernel specialization
    return np.array(np.broadcast_to(p.reshape(-1), (nch,)), dtype=np.int64)


@overload
def requantize(
    acc: object,
    multiplier: object,
    shift: object,
    out_fmt: QFormat,
    rounding: str = "half_even",
    overflow: str = "saturate",
    rng: object = None,
    *,
    random_bits: int = 16,
    return_stats: Literal[False] = False,
    axis: int = -1,
) -> np.ndarray: ...


@overload
def requantize(
    acc: object,
    multiplier: object,
    shift: object,
    out_fmt: QFormat,
    rounding: str = "half_even",
    overflow: str = "saturate",
    rng: object = None,
    *,
    random_bits: int = 16,
    return_stats: Literal[True],
    axis: int = -1,
) -> QuantResult: ...


def requantize(
    acc: object,
    multiplier: object,
    shift: object,
    out_fmt: QFormat,
    rounding: str = "half_even",
    overflow: str = "saturate",
    rng: object = None,
    *,
    random_bits: int = 16,
    return_stats: bool = False,
    axis: int = -1,
) -> np.ndarray | QuantResult:
    """Integer output stage (see the module docstring); returns int64 codes shaped like acc."""
    if not isinstance(out_fmt, QFormat):
        raise ValueError(f"out_fmt: must be a QFormat, got {out_fmt!r}")
    rmode = rounding_id(rounding)
    omode = overflow_id(overflow)
    arr = _int64_array(acc)
    m = np.asarray(multiplier)
    s = np.asarray(shift)
    for name, p in (("multiplier", m), ("shift", s)):
        if p.dtype.kind not in "iu" or p.size == 0:
            raise ValueError(f"{name}: must be an integer or integer array, got {p!r}")
    if max(abs(int(v)) for v in m.reshape(-1)) >= MULT_LIMIT:
        raise ValueError(f"multiplier: |multiplier| must be < 2**31, got {m}")
    if int(s.min()) < 0 or int(s.max()) > MAX_SHIFT:
        raise ValueError(f"shift: must be in 0..{MAX_SHIFT}, got {s}")
    nch, inner = _channel_layout(arr.shape, {"multiplier": m, "shift": s}, axis)
    mult = _broadcast(m, nch)
    shifts = _broadcast(s, nch)
    lim = np.array([I64_MAX // abs(int(v)) if v else I64_MAX for v in mult], dtype=np.int64)
    flat = arr.reshape(-1)
    rand, philox, k0, k1, ctr, r = random_source(rng, rmode, flat.size, random_bits)
    r_kernel = r if (philox or rand.size) else 0
    out = np.empty(flat.size, np.int64)
    n_bad, n_ovf, n_inexact = _requantize_kernel(
        flat, out, mult, shifts, lim, inner, nch, rmode, omode, out_fmt.lo, out_fmt.hi,
        out_fmt.bits, out_fmt.signed, r_kernel, rand, philox, k0, k1, ctr,
    )
    if n_bad:
        raise ValueError(
            f"acc: {n_bad} element(s) with |acc * multiplier| >= 2**63 "
            "(keep |acc| < 2**32, or |acc| <= (2**63-1) // |multiplier|)"
        )
    codes = out.reshape(arr.shape)
    if return_stats:
        return QuantResult(codes, int(n_ovf), int(n_inexact))
    return codes


@overload
def requantize_fp32(
    acc: object,
    scale: object,
    out_fmt: QFormat,
    rounding: str = "half_even",
    overflow: str = "saturate",
    rng: object = None,
    *,
    random_bits: int = 16,
    return_stats: Literal[False] = False,
    axis: int = -1,
) -> np.ndarray: ...


@overload
def requantize_fp32(
    acc: object,
    scale: object,
    out_fmt: QFormat,
    rounding: str = "half_even",
    overflow: str = "saturate",
    rng: object = None,
    *,
    random_bits: int = 16,
    return_stats: Literal[True],
    axis: int = -1,
) -> QuantResult: ...


def requantize_fp32(
    acc: object,
    scale: object,
    out_fmt: QFormat,
    rounding: str = "half_even",
    overflow: str = "saturate",
    rng: object = None,
    *,
    random_bits: int = 16,
    return_stats: bool = False,
    axis: int = -1,
) -> np.ndarray | QuantResult:
    """fp32-scale output stage (see the module docstring)."""
    if not isinstance(out_fmt, QFormat):
        raise ValueError(f"out_fmt: must be a QFormat, got {out_fmt!r}")
    arr = _int64_array(acc)
    sc = np.asarray(scale)
    if sc.dtype.kind not in "iuf" or sc.size == 0:
        raise ValueError(f"scale: must be a real number or array, got {scale!r}")
    sc64 = sc.astype(np.float64)
    if not np.all(np.isfinite(sc64)) or float(np.abs(sc64).max()) > 2.0**64:
        raise ValueError(f"scale: must be finite with |scale| <= 2**64, got {scale!r}")
    nch, inner = _channel_layout(arr.shape, {"scale": sc}, axis)
    s32 = np.broadcast_to(sc64.reshape(-1), (nch,)).astype(np.float32)
    if nch > 1:
        s32 = s32.reshape((nch,) + (1,) * (arr.ndim - 1 - (axis % arr.ndim)))
    else:
        s32 = s32[0]
    prod = arr.astype(np.float32) * s32  # IEEE binary32 multiply (round to nearest even)
    int_fmt = QFormat(out_fmt.bits, 0, out_fmt.signed)
    if return_stats:
        return quantize(prod.astype(np.float64), int_fmt, rounding, overflow, rng,
                        random_bits=random_bits, return_stats=True)
    return quantize(prod.astype(np.float64), int_fmt, rounding, overflow, rng,
                    random_bits=random_bits)


def quantize_multiplier(real_scale: float) -> tuple[int, int]:
    """(multiplier, shift) with real_scale ≈ multiplier * 2**-shift, multiplier in
    [2**30, 2**31) (fits int32), shift in 0..62. ValueError naming ``real_scale`` otherwise."""
    try:
        real = float(real_scale)
    except (TypeError, ValueError):
        raise ValueError(f"real_scale: must be a real number, got {real_scale!r}") from None
    if not math.isfinite(real) or real <= 0:
        raise ValueError(f"real_scale: must be finite and > 0, got {real_scale!r}")
    q, e = math.frexp(real)
    scaled = Fraction(q) * 2**31
    mult = math.floor(scaled + Fraction(1, 2))  # ties away from zero (q > 0)
    if mult == 2**31:
        mult //= 2
        e += 1
    shift = 31 - e
    if not 0 <= shift <= MAX_SHIFT:
        raise ValueError(
            f"real_scale: {real!r} needs shift {shift}, outside 0..{MAX_SHIFT} "
            "(representable scales are about 2**-32 .. 2**31)"
        )
    return int(mult), int(shift)
