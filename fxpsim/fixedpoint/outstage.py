"""The configured requantizer as an output stage: real per-channel scales -> the scale
representation the hardware stores -> output codes.

``scale_format`` (the hwconfig's ``mac_array.requantizer.scale_format``):

* ``int32_mult_shift``: per channel an int32 multiplier and a right shift
  (:func:`~fxpsim.fixedpoint.requantize.quantize_multiplier`, multiplier in [2^30, 2^31));
  codes = :func:`~fxpsim.fixedpoint.requantize.requantize` (exact product, rounding shift,
  saturating cast). A scale below the smallest representable one (about 2^-32) is stored as
  multiplier 0 (that channel's codes are 0).
* ``pow2_shift``: a shift only: the scale rounded to the nearest power of two in the log
  domain (ties up), ``2^-s`` with s in 0..62 as (multiplier 1, shift s), or ``2^t`` (t <= 30)
  as (multiplier 2^t, shift 0); codes = ``requantize`` of that pair.
* ``fp32_scale``: the scale rounded to binary32 (round to nearest even); codes =
  :func:`~fxpsim.fixedpoint.requantize.requantize_fp32` (fp32 multiply, then rounding).

:func:`stored_scales` returns the stored representation, :func:`output_stage` applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .formats import QFormat, QuantResult
from .requantize import MAX_SHIFT, quantize_multiplier, requantize, requantize_fp32

SCALE_FORMATS: tuple[str, ...] = ("int32_mult_shift", "pow2_shift", "fp32_scale")


@dataclass(frozen=True)
class StoredScales:
    """Per-channel scale registers: ``multiplier``/``shift`` (int64 arrays) for the integer
    formats, ``fp32`` (float32 array) for ``fp32_scale``; ``effective`` is the real scale
    each channel applies (float64; exact for the integer formats)."""

    scale_format: str
    multiplier: np.ndarray | None
    shift: np.ndarray | None
    fp32: np.ndarray | None

    @property
    def effective(self) -> np.ndarray:
        if self.fp32 is not None:
            return self.fp32.astype(np.float64)
        assert self.multiplier is not None and self.shift is not None
        return self.multiplier.astype(np.float64) * np.exp2(-self.shift.astype(np.float64))


def _pow2(real: float) -> tuple[int, int]:
    if real <= 0.0 or not math.isfinite(real):
        raise ValueError(f"real_scale: must be finite and > 0, got {real!r}")
    q, e = math.frexp(real)  # real = q·2^e, q in [0.5, 1)
    exp = e if q >= math.sqrt(0.5) else e - 1  # nearest power of two in log2
    if exp > 30:
        raise ValueError(f"real_scale: {real!r} exceeds 2**30 (pow2_shift)")
    if exp >= 0:
        return 1 << exp, 0
    return (1, -exp) if -exp <= MAX_SHIFT else (0, 0)


def _mult_shift(real: float) -> tuple[int, int]:
    if real > 0.0 and real < 2.0**-32:
        return 0, 0  # below the smallest representable scale: the channel reads as 0
    return quantize_multiplier(real)


def mult_shift_vec(real: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_mult_shift` of every element of ``real`` (float64, 1-D) at once, or None
    when some element needs the scalar path's special cases (not finite or <= 0, below
    2^-32, or a shift outside 0..MAX_SHIFT). Exact: with real = q·2^e (q in [0.5, 1)),
    q·2^31 + 1/2 is formed without rounding in float64 (q has 53 bits, so q·2^31 is a
    multiple of 2^-22 below 2^31, and adding 1/2 stays exact or lands on 2^31, whose floor
    is the same), so floor gives ``quantize_multiplier``'s ties-away rounding."""
    if real.size == 0 or not bool(np.all(np.isfinite(real))) or \
            not bool(np.all(real >= 2.0**-32)):
        return None
    q, e = np.frexp(real)
    mult = np.floor(q * 2.0**31 + 0.5).astype(np.int64)
    top = mult == 2**31
    mult = np.where(top, mult // 2, mult)
    shift = 31 - (e.astype(np.int64) + top)
    if not bool(np.all((shift >= 0) & (shift <= MAX_SHIFT))):
        return None
    return mult, shift


def stored_scales(real: np.ndarray, scale_format: str) -> StoredScales:
    """The stored representation of per-channel real scales ``real`` (1-D, > 0)."""
    arr = np.asarray(real, dtype=np.float64).reshape(-1)
    if scale_format == "int32_mult_shift":
        fast = mult_shift_vec(arr)
        if fast is not None:
            return StoredScales(scale_format, fast[0], fast[1], None)
    vals = [float(v) for v in arr]
    if scale_format == "fp32_scale":
        return StoredScales(scale_format, None, None, np.asarray(vals, dtype=np.float32))
    if scale_format == "int32_mult_shift":
        pairs = [_mult_shift(v) for v in vals]
    elif scale_format == "pow2_shift":
        pairs = [_pow2(v) for v in vals]
    else:
        raise ValueError(f"scale_format: expected one of {', '.join(SCALE_FORMATS)}, "
                         f"got {scale_format!r}")
    mult = np.array([p[0] for p in pairs], dtype=np.int64)
    shift = np.array([p[1] for p in pairs], dtype=np.int64)
    return StoredScales(scale_format, mult, shift, None)


def output_stage(acc: np.ndarray, scales: StoredScales, out_fmt: QFormat, rounding: str,
                 rng: object = None, *, random_bits: int = 16) -> QuantResult:
    """Codes (int64, acc's shape) of the accumulators ``acc`` (channels on the last axis)
    through the requantizer ``scales`` (one entry per channel, or one for all), rounded with
    ``rounding`` and saturated to ``out_fmt``; stats count saturated / inexact elements."""
    if scales.fp32 is not None:
        res = requantize_fp32(acc, scales.fp32, out_fmt, rounding, "saturate", rng,
                              random_bits=random_bits, return_stats=True)
    else:
        res = requantize(acc, scales.multiplier, scales.shift, out_fmt, rounding, "saturate",
                         rng, random_bits=random_bits, return_stats=True)
    assert isinstance(res, QuantResult)
    return res
