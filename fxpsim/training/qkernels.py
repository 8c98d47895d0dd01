"""Hot kernels of the quantized layers: quantize to int8/int16 codes, the fp32 rescale of
accumulators and the fused forward output stage (the GEMMs themselves run in
:mod:`fxpsim.fixedpoint.intmm`).

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
* :func:`rows_to_nchw` / :func:`pix_to_nchw`: ``fp32(fl64(acc) · scale)`` as in
  :func:`fxpsim.training.qgemm.scaled` (product in float64), written NCHW.
* :func:`requant_pix_to_nchw`: :func:`fxpsim.fixedpoint.requantize` (deterministic rounding,
  saturate) of pixel-major accumulators, then ``fp32(code·Δy)`` NCHW.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fxpsim.fixedpoint.modes import R_CEIL, R_FLOOR, R_HALF_EVEN, R_TRUNC
from fxpsim.fixedpoint.philox import philox_fill
from fxpsim.fixedpoint.quantize import QCHUNK, SRC_ARRAY, SRC_PHILOX, _stochastic_chunk
from fxpsim.fixedpoint.rng import lfsr_fill
from fxpsim.fixedpoint.rounding import round_core, round_float_basic

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
def _requant_half_even(acc, mult, shift, lo, hi, delta_y, out):
    """:func:`requant_pix_to_nchw` for half-even rounding and every shift > 0 (the configs'
    default), branch-free with the channels innermost: each pixel's contiguous accumulator
    row is requantized into a small tile, which is then written NCHW."""
    nb, _, oh, ow = out.shape
    nn_ = acc.shape[1]
    one = np.int64(1)
    m64 = mult.astype(np.int64)
    s64 = shift.astype(np.int64)
    half = one << (s64 - 1)
    mask = (one << s64) - one
    n_ovf = 0
    for q in prange(nb * oh):
        b, y = q // oh, q % oh
        blk = acc[q * ow:(q + 1) * ow]
        tile = np.empty((ow, nn_), np.float32)
        cnt = 0
        for z in range(ow):
            row = blk[z]
            t = tile[z]
            for n in range(nn_):
                p = np.int64(row[n]) * m64[n]
                fl = p >> s64[n]
                rem = p & mask[n]
                code = fl + np.int64((rem > half[n]) | ((rem == half[n]) & ((fl & one) == one)))
                c = min(max(code, lo), hi)
                cnt += np.int64(c != code)
                t[n] = np.float32(np.float64(c) * delta_y)
        for n in range(nn_):
            dst = out[b, n, y]
            for z in range(ow):
                dst[z] = tile[z, n]
        n_ovf += cnt
    return n_ovf


@njit(parallel=True, cache=True)
def requant_pix_to_nchw(acc, mult, shift, rmode, lo, hi, delta_y, out):
    """Fused integer output stage + layout: for pixel-major accumulators acc (B·OH·OW, N),
    code = saturate(round(acc·mult[n] / 2^shift[n])) (deterministic ``rmode``; exactly
    :func:`fxpsim.fixedpoint.requantize`'s arithmetic for |acc·mult| < 2^63, which the caller
    guarantees), written as out[b, n, y, z] = fp32(code·Δy). Returns the saturated count."""
    nb, _, oh, ow = out.shape
    nn_ = acc.shape[1]
    one = np.int64(1)
    n_ovf = 0
    if rmode == R_HALF_EVEN and nn_ > 0 and shift.min() > 0:
        return _requant_half_even(acc, mult, shift, lo, hi, delta_y, out)
    for q in prange(nb * oh):
        b, y = q // oh, q % oh
        blk = acc[q * ow:(q + 1) * ow]
        for n in range(nn_):
            m = np.int64(mult[n])
            s = np.int64(shift[n])
            half = (one << (s - 1)) if s > 0 else np.int64(0)
            mask = (one << s) - one
            dst = out[b, n, y]
            for z in range(ow):
                p = np.int64(blk[z, n]) * m
                fl = p >> s
                rem = p & mask
                cmp = -1
                if s > 0:
                    cmp = 1 if rem > half else (0 if rem == half else -1)
                code = round_core(rmode, fl, rem != 0, cmp, np.int64(0), np.int64(0))
                if code > hi:
                    code = hi
                    n_ovf += 1
                elif code < lo:
                    code = lo
                    n_ovf += 1
                dst[z] = np.float32(np.float64(code) * delta_y)
    return n_ovf


@njit(parallel=True, cache=True)
def col_minmax(acc, lo, hi):
    """lo[n], hi[n] = min and max of column n of acc (M, N) (int64 results; one parallel
    pass instead of two single-threaded numpy reductions along axis 0)."""
    m, n = acc.shape
    nblk = min(m, 64)
    blo = np.empty((max(nblk, 1), n), dtype=np.int64)
    bhi = np.empty((max(nblk, 1), n), dtype=np.int64)
    for t in prange(nblk):
        r0, r1 = t * m // nblk, (t + 1) * m // nblk
        tl = blo[t]
        th = bhi[t]
        first = acc[r0]
        for j in range(n):
            tl[j] = first[j]
            th[j] = first[j]
        for r in range(r0 + 1, r1):
            row = acc[r]
            for j in range(n):
                v = np.int64(row[j])
                tl[j] = min(tl[j], v)
                th[j] = max(th[j], v)
    for j in range(n):
        lo[j] = blo[0, j]
        hi[j] = bhi[0, j]
    for t in range(1, nblk):
        for j in range(n):
            lo[j] = min(lo[j], blo[t, j])
            hi[j] = max(hi[j], bhi[t, j])


@njit(cache=True)  # weight-sized work: serial (a thread-pool launch per call costs more)
def weight_mat(w, k0, k1, flip, out):
    """GEMM operand of conv weight codes w (K, C, kh, kw), any strides, one pass (a torch
    permute + reshape of a large int8 tensor gathers with the worst stride innermost).
    flip False (forward): out[(i·kw + j)·C + c, k - k0] = w[k, c, i, j] for k in [k0, k1).
    flip True (backward-data): out[(i·kw + j)·(k1 - k0) + (k - k0), c]
    = w[k, c, kh-1-i, kw-1-j]."""
    _, nc_, kh, kw = w.shape
    ng = k1 - k0
    if flip:  # a row per (i, j, k): contiguous writes along c
        for k in range(ng):
            for i in range(kh):
                for j in range(kw):
                    dst = out[(i * kw + j) * ng + k]
                    for c in range(nc_):
                        dst[c] = w[k0 + k, c, kh - 1 - i, kw - 1 - j]
        return
    for c in range(nc_):  # for each (i, j, c) a row written along k
        for k in range(ng):
            for i in range(kh):
                for j in range(kw):
                    out[(i * kw + j) * nc_ + c, k] = w[k0 + k, c, i, j]


@njit(cache=True)  # weight-sized work: serial, as weight_mat
def scaled_kcij(vals, scale, out):
    """out[k, c, i, j] = fp32(fl64(vals[k, (i·kw + j)·C + c]) · scale) for out (K, C, kh, kw)
    (backward-weight's pixel-major result, rescaled as :func:`fxpsim.training.qgemm.scaled`
    and laid out as the weights in one pass)."""
    nk, nc_, kh, kw = out.shape
    for k in range(nk):
        row = vals[k]
        for c in range(nc_):
            for i in range(kh):
                for j in range(kw):
                    out[k, c, i, j] = np.float32(np.float64(row[(i * kw + j) * nc_ + c]) * scale)


@njit(parallel=True, cache=True)
def scaled_flat(vals, scale, out):
    """out[i] = fp32(fl64(vals[i]) · scale) for flat vals and out (one pass, no float64
    temporary; :func:`fxpsim.training.qgemm.scaled`'s formula)."""
    for i in prange(vals.size):
        out[i] = np.float32(np.float64(vals[i]) * scale)
