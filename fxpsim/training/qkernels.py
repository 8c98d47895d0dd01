"""Hot kernels of the quantized layers: quantize to int8/int16 codes, the direct int8 GEMM
under a static no-overflow proof, and the fp32 rescale of accumulators.

Every kernel here reproduces, element for element, the formula of the generic path it
replaces:

* :func:`quantize_fixed`: ``clamp(round(fl64(x / Δ)), ±qmax)`` — the float64 quotient with
  one IEEE rounding (as ``np.divide(x, Δ, dtype=float64)``), rounded by a deterministic mode
  and saturated symmetrically, exactly as :func:`fxpsim.fixedpoint.quantize` with
  ``QFormat(bits, 0)`` and ``saturate_symmetric`` does on that quotient.
* :func:`quantize_stochastic_div`: ``fxpsim.fixedpoint.quantize(fl64(x / Δ), QFormat(bits,
  0), "stochastic", "saturate_symmetric", rng)`` with the quotient formed per chunk (no
  n-sized float64 / int64 temporaries): the same chunks, draws and chunk kernel as that
  function's fused stochastic path.
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
from fxpsim.fixedpoint.philox import philox_fill
from fxpsim.fixedpoint.quantize import QCHUNK, SRC_ARRAY, SRC_PHILOX, _stochastic_chunk
from fxpsim.fixedpoint.rng import lfsr_fill
from fxpsim.fixedpoint.rounding import round_float_basic

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
        rv = round_float_basic(v, rmode)
        bad = (v - v) != 0.0
        n_bad += np.int64(bad)
        below = rv < -q_f
        above = rv > q_f
        n_clip += np.int64(below | above)
        out[i] = np.int64(0.0 if bad else (-q_f if below else (q_f if above else rv)))
    return n_bad, n_clip


@njit(parallel=True, cache=True)
def quantize_nhwc(x, delta, rmode, qmax, top, left, buf):
    """:func:`quantize_fixed` of x (B, C, H, W) written to buf[b, top+r, left+u, c] of a
    zeroed NHWC buffer (the padded operand of the pixel-major GEMMs), one fused pass."""
    nb, nc_, h, w = x.shape
    q_f = float(qmax)
    n_bad = 0
    n_clip = 0
    for q in prange(nb * h):
        b, r = q // h, q % h
        row = np.empty((nc_, w), dtype=np.int8)  # contiguous codes of this image row
        for c in range(nc_):
            for u in range(w):
                v = np.float64(x[b, c, r, u]) / delta
                rv = round_float_basic(v, rmode)
                bad = (v - v) != 0.0
                n_bad += np.int64(bad)
                below = rv < -q_f
                above = rv > q_f
                n_clip += np.int64(below | above)
                row[c, u] = np.int64(0.0 if bad else (-q_f if below else (q_f if above else rv)))
        for u in range(w):
            for c in range(nc_):
                buf[b, top + r, left + u, c] = row[c, u]
    return n_bad, n_clip


@njit(parallel=True, cache=True)
def quantize_stochastic_div(x, delta, qmax, r, src, rand, k0, k1, ctr, table, lanes, seq, info,
                            pw, steps, galois, tapmask, width, out):
    """out[i] = stochastic code of fl64(x[i]) / delta saturated to ±qmax, for flat x and out
    (any int dtype holding ±qmax); draws as ``_quantize_stochastic_fast`` takes them (source
    ``src``: pre-drawn ``rand``, Philox, or an LFSR plan; chunk c holds draws
    [c·QCHUNK, (c+1)·QCHUNK)). Returns (non-finite quotients, clipped elements)."""
    two_r = 2.0**r
    q_f = float(qmax)
    rmask = (np.int64(1) << r) - 1
    n = x.size
    n_bad = 0
    n_ovf = 0
    for c in prange((n + QCHUNK - 1) // QCHUNK):
        a = c * QCHUNK
        b = min(n, a + QCHUNK)
        xs = x[a:b]  # slices with local indices vectorize; x[a + k] does not
        v = np.empty(b - a, np.float64)
        for k in range(xs.size):
            v[k] = np.float64(xs[k]) / delta
        codes = np.empty(b - a, np.int64)
        if src == SRC_ARRAY:
            cb, co, _ = _stochastic_chunk(v, codes, rand[a:b], 1.0, two_r, -q_f, q_f)
        else:
            buf = np.empty(b - a, np.int64)
            if src == SRC_PHILOX:
                philox_fill(buf, ctr + a, k0, k1, r)
            else:
                lfsr_fill(buf, a, b, table, lanes, seq, info, pw, steps, galois, tapmask,
                          width, rmask)
            cb, co, _ = _stochastic_chunk(v, codes, buf, 1.0, two_r, -q_f, q_f)
        dst = out[a:b]
        for k in range(dst.size):
            dst[k] = codes[k]
        n_bad += cb
        n_ovf += co
    return n_bad, n_ovf


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
    """out[b, k0+n, p] = fp32(fl64(vals[n, b*P + p]) * scale[n]) for out of shape (B, K, P)
    (``vals``: channel-major GEMM result)."""
    nb, _, npix = out.shape
    nn_ = vals.shape[0]
    for q in prange(nb * nn_):
        b, n = q // nn_, q % nn_
        s = scale[n]
        for p in range(npix):
            out[b, k0 + n, p] = np.float32(np.float64(vals[n, b * npix + p]) * s)


@njit(parallel=True, cache=True)
def pix_to_nchw(vals, scale, k0, out):
    """out[b, k0+n, y, z] = fp32(fl64(vals[(b*OH + y)*OW + z, n]) * scale[n]) for out of shape
    (B, K, OH, OW) (``vals``: pixel-major GEMM result)."""
    nb, _, oh, ow = out.shape
    nn_ = vals.shape[1]
    for q in prange(nb * oh):
        b, y = q // oh, q % oh
        blk = vals[q * ow:(q + 1) * ow]  # slices with local indices vectorize
        for n in range(nn_):
            s = scale[n]
            dst = out[b, k0 + n, y]
            for z in range(ow):
                dst[z] = np.float32(np.float64(blk[z, n]) * s)


@njit(parallel=True, cache=True)
def _place_nhwc(src, top, left, dh, dw, buf):
    """buf[b, top + r*dh, left + u*dw, c] = src[b, c, r, u] where that lies inside buf."""
    nb, nc_, h, w = src.shape
    hb, wb = buf.shape[1], buf.shape[2]
    for q in prange(nb * h):
        b, r = q // h, q % h
        t = top + r * dh
        if t < 0 or t >= hb:
            continue
        row = buf[b, t]
        for u in range(w):
            v = left + u * dw
            if 0 <= v < wb:
                dst = row[v]  # the C codes of one pixel are contiguous in buf
                for c in range(nc_):
                    dst[c] = src[b, c, r, u]


def place_nhwc(codes: torch.Tensor, top: int, left: int, dil: tuple[int, int],
               size: tuple[int, int], buf: torch.Tensor | None = None) -> torch.Tensor:
    """Zero buffer (B, hb, wb, C) = ``size`` holding codes (B, C, H, W) (any int dtype, cast
    to int8) zero-dilated by ``dil`` with its (0, 0) element at (top, left); elements falling
    outside the buffer are dropped (no window reads them). ``buf``: reuse the buffer an
    earlier call returned for the same shapes and placement (it writes the same elements, so
    every other element is still zero); a mismatched one is ignored."""
    nb, c = codes.shape[:2]
    shape = (nb, size[0], size[1], c)
    if buf is None or tuple(buf.shape) != shape or buf.dtype != torch.int8:
        buf = torch.zeros(shape, dtype=torch.int8)
    _place_nhwc(codes.numpy(), top, left, dil[0], dil[1], buf.numpy())
    return buf


def pixel_cols(buf: torch.Tensor, c0: int, c1: int, kernel: tuple[int, int],
               stride: tuple[int, int], out_hw: tuple[int, int],
               out: torch.Tensor | None = None) -> torch.Tensor:
    """Pixel-major im2col of a padded NHWC code buffer (B, hb, wb, C):
    out[(b·OH+y)·OW+z, (i·kw+j)·(c1-c0)+(c-c0)] = buf[b, y·sh+i, z·sw+j, c] (one strided copy;
    for c1-c0 = C the kw·C bytes of a window row are contiguous). ``out``: a contiguous
    buffer to write (reused across steps: fresh pages cost more than the copy); one of
    another shape or dtype is ignored."""
    nb, hb, wb, c = buf.shape
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    ncg = c1 - c0
    view = buf.as_strided((nb, oh, ow, kh, kw, ncg),
                          (hb * wb * c, sh * wb * c, sw * c, wb * c, c, 1), c0)
    shape = (nb * oh * ow, kh * kw * ncg)
    if out is None or tuple(out.shape) != shape or out.dtype != buf.dtype \
            or not out.is_contiguous():
        out = torch.empty(shape, dtype=buf.dtype)
    out.view(nb, oh, ow, kh, kw, ncg).copy_(view)
    return out


def im2col(codes: torch.Tensor, c0: int, c1: int, kernel: tuple[int, int],
           stride: tuple[int, int], pad: tuple[int, int], dil: tuple[int, int],
           out_hw: tuple[int, int]) -> torch.Tensor:
    """Channel-major columns ((c1-c0)·kh·kw, B·OH·OW) of a correlation over channels
    [c0, c1) of int codes (B, C, H, W), zero-dilated by ``dil`` and zero-padded by ``pad``:
    out[((c-c0)·kh+i)·kw+j, (b·OH+y)·OW+z] = xd[b, c, y·sh+i-ph, z·sw+j-pw], where
    xd[t, u] = x[t/dh, u/dw] if dh | t, dw | u and both are in range, else 0. The k order
    (c, i, j) is the hardware's; this layout serves the exact (order-dependent) kernels.

    Forward / backward-weight use d = 1; backward-data uses stride 1, d = the conv stride and
    padding kernel-1-pad (the zero-dilated dY)."""
    nb, _, h, w = codes.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, pad, dil, out_hw
    hb, wb = (oh - 1) * sh + kh, (ow - 1) * sw + kw
    ncg = c1 - c0
    buf = torch.zeros((nb, ncg, hb, wb), dtype=codes.dtype)
    # source row r sits at buffer row ph + r·dh; keep the rows inside [0, hb)
    r0, r1 = max(0, -(ph // dh)), min(h, (hb - 1 - ph) // dh + 1)
    u0, u1 = max(0, -(pw // dw)), min(w, (wb - 1 - pw) // dw + 1)
    if r1 > r0 and u1 > u0:
        buf[:, :, ph + r0 * dh:ph + (r1 - 1) * dh + 1:dh,
            pw + u0 * dw:pw + (u1 - 1) * dw + 1:dw] = codes[:, c0:c1, r0:r1, u0:u1]
    view = buf.as_strided((ncg, kh, kw, nb, oh, ow), (hb * wb, wb, 1, ncg * hb * wb, sh * wb, sw))
    out = torch.empty((ncg * kh * kw, nb * oh * ow), dtype=codes.dtype)
    out.view(ncg, kh, kw, nb, oh, ow).copy_(view)
    return out


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


def static_ok(terms: int, max_a: int, max_b: int, nc, int8: bool = True) -> bool:
    """True when ``terms`` products of magnitude <= max_a·max_b can be summed by
    ``torch._int_mm`` with the exact result of every register ``nc`` uses (no events)."""
    return int8 and terms * max_a * max_b <= static_limit(nc) and int_mm_is_exact()


def gemm_i8(a: torch.Tensor, b: torch.Tensor, nc, max_a: int, max_b: int, fallback,
            terms: int | None = None, out: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, int]:
    """(values (M, N) as int32 or int64, overflow events) of the codes ``a`` (M, K) x ``b``
    (K, N) (any strides) in the array of ``nc``. ``max_a``/``max_b`` bound |a| and |b|;
    ``terms`` bounds the nonzero products per output (default K). Direct ``torch._int_mm``
    when the static proof holds (module docstring), else
    ``fallback(a_np, b_np, nc) -> (int64 values, events)`` on contiguous numpy copies.
    ``out``: an int32 (M, N) buffer the direct path may write (ignored when it does not fit)."""
    int8 = a.dtype == torch.int8 and b.dtype == torch.int8
    if static_ok(a.shape[1] if terms is None else terms, max_a, max_b, nc, int8):
        shape = (a.shape[0], b.shape[1])
        if out is not None and tuple(out.shape) == shape and out.dtype == torch.int32 \
                and out.is_contiguous():
            return torch._int_mm(a, b, out=out), 0
        return torch._int_mm(a, b), 0
    vals, events = fallback(np.ascontiguousarray(a.numpy()), np.ascontiguousarray(b.numpy()),
                            nc)
    return torch.from_numpy(vals), events
