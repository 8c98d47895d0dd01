"""The one conv lowering: integer code tensors -> GEMM operands, in the hardware's k order.

* :func:`im2col`: channel-major columns ((c1-c0)·kh·kw, B·OH·OW) with k order (c, i, j) --
  the order a weight-stationary array adds a conv's reduction in; the exact
  (order-dependent) kernels run on this layout. Forward / backward-weight use dilation 1;
  backward-data runs a stride-1 correlation of dY zero-dilated by the stride and padded by
  ``kernel-1-pad`` with the flipped kernel, so every dX element is one accumulator.
* :func:`place_nhwc` + :func:`pixel_cols`: pixel-major columns (B·OH·OW, kh·kw·C) with k
  order (i, j, c), built from a padded NHWC buffer. Only valid where the k order cannot
  change any value (the static no-overflow proof of :mod:`fxpsim.fixedpoint.intmm`).

:mod:`fxpsim.fixedpoint.conv` and the training layers both lower through these functions.
"""

from __future__ import annotations

import torch
from numba import njit, prange


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
