"""Hot kernels of the quantized layers: quantize to int8/int16 codes, the direct int8 GEMM
under a static no-overflow proof, and the fp32 rescale of accumulators.

Every kernel here reproduces, element for element, the formula of the generic path it
replaces:

* :func:`quantize_fixed`: ``clamp(round(fl64(x / Δ)), ±qmax)`` — the float64 quotient with
  one IEEE rounding (as ``np.divide(x, Δ, dtype=float64)``), rounded by a deterministic mode
  and saturated symmetrically, exactly as :func:`fxpsim.fixedpoint.quantize` with
  ``QFormat(bits, 0)`` and ``saturate_symmetric`` does on that quotient.
* :func:`gemm_i8`: ``torch._int_mm`` (exact int32 dot products) only when K·max|a|·max|b|
  fits every register the array uses and int32: then no partial sum, in any order, leaves
  the register, so the hardware value is the exact sum and there are no overflow events.
  Otherwise it defers to :func:`fxpsim.training.qlayers.int_gemm`'s exact kernels.
* :func:`rows_to_nchw`: ``fp32(fl64(acc) · scale)`` as in ``_scaled`` (product in float64).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from numba import njit, prange

from fxpsim.fixedpoint.gemm_kernels import register_range
from fxpsim.fixedpoint.modes import R_CEIL, R_FLOOR, R_HALF_EVEN, R_TRUNC

INT32_MAX = 2**31 - 1
#: rounding ids :func:`quantize_fixed` implements
FIXED_ROUNDINGS = {"half_even": R_HALF_EVEN, "floor": R_FLOOR, "ceil": R_CEIL, "trunc": R_TRUNC}


@njit(parallel=True, cache=True)
def quantize_fixed(x, delta, rmode, qmax, out):
    """out[i] = clamp(round(fl64(x[i]) / delta), -qmax, qmax) for flat x (float32/64) and flat
    integer out. Returns (non-finite quotients, clipped elements). A non-finite quotient
    leaves an unspecified code (the caller raises)."""
    q_f = float(qmax)
    n_bad = 0
    n_clip = 0
    for i in prange(x.size):
        v = np.float64(x[i]) / delta
        if rmode == R_HALF_EVEN:
            rv = np.rint(v)
        elif rmode == R_FLOOR:
            rv = np.floor(v)
        elif rmode == R_CEIL:
            rv = np.ceil(v)
        else:
            rv = np.trunc(v)
        bad = (v - v) != 0.0
        n_bad += np.int64(bad)
        below = rv < -q_f
        above = rv > q_f
        n_clip += np.int64(below | above)
        out[i] = np.int64(0.0 if bad else (-q_f if below else (q_f if above else rv)))
    return n_bad, n_clip


@njit(parallel=True, cache=True)
def divide_f64(x, delta, out):
    """out[i] = fl64(x[i]) / delta (one IEEE float64 rounding, as numpy's divide)."""
    for i in prange(x.size):
        out[i] = np.float64(x[i]) / delta


@njit(parallel=True, cache=True)
def narrow_codes(src, out):
    """out[i] = src[i] for integer codes already inside out's dtype range."""
    for i in prange(src.size):
        out[i] = src[i]


@njit(parallel=True, cache=True)
def rows_to_nchw(vals, scale, k0, out):
    """out[b, k0+n, p] = fp32(fl64(vals[n, b*P+p]) * scale[n]) for out of shape (B, K, P)."""
    nb, _, npix = out.shape
    nn_ = vals.shape[0]
    for q in prange(nb * nn_):
        b, n = q // nn_, q % nn_
        s = scale[n]
        for p in range(npix):
            out[b, k0 + n, p] = np.float32(np.float64(vals[n, b * npix + p]) * s)


def static_limit(nc) -> int:
    """Largest K·max|a|·max|b| for which no partial sum can leave any register the array
    uses (accumulator, and the psum register of a weight/input-stationary array) or int32."""
    lo, hi = register_range(nc.acc_bits, nc.acc_overflow)
    limit = min(INT32_MAX, hi, -lo)
    if nc.dataflow != "output_stationary":
        plo, phi = register_range(nc.psum_bits or nc.acc_bits,
                                  nc.psum_overflow or nc.acc_overflow)
        limit = min(limit, phi, -plo)
    return limit


@cache
def int_mm_is_exact() -> bool:
    """Whether ``torch._int_mm`` returns exact int32 sums here (checked once per process on
    operands that would expose saturating int16 pair sums or int8 compensation errors)."""
    k = 512
    a = np.full((24, k), 127, dtype=np.int8)
    a[1::2] = -127
    a[2::3, ::2] = -128
    b = np.full((k, 24), 127, dtype=np.int8)
    b[:, 1::2] = -127
    b[::3] = -128
    got = torch._int_mm(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    return bool(np.array_equal(got, a.astype(np.int64) @ b.astype(np.int64)))


def gemm_i8(a: torch.Tensor, b: torch.Tensor, nc, max_a: int, max_b: int,
            fallback) -> tuple[torch.Tensor, int]:
    """(values (M, N) as int32 or int64, overflow events) of the codes ``a`` (M, K) x ``b``
    (K, N) (any strides) in the array of ``nc``. ``max_a``/``max_b`` bound |a| and |b|.
    Direct ``torch._int_mm`` when the static proof holds (module docstring), else
    ``fallback(a_np, b_np, nc) -> (int64 values, events)`` on contiguous numpy copies."""
    k_len = a.shape[1]
    if (a.dtype == torch.int8 and b.dtype == torch.int8
            and k_len * max_a * max_b <= static_limit(nc) and int_mm_is_exact()):
        return torch._int_mm(a, b), 0
    vals, events = fallback(np.ascontiguousarray(a.numpy()), np.ascontiguousarray(b.numpy()),
                            nc)
    return torch.from_numpy(vals), events
