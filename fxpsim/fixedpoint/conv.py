"""Integer 2-D convolution passes lowered to GEMMs on a MAC-array model (NCHW codes).

Each pass is :func:`fxpsim.fixedpoint.im2col.im2col` (the one conv lowering, shared with the
training layers) + :func:`fxpsim.fixedpoint.macarray.array_gemm`, one GEMM per group, with
the reduction dim in the order the hardware adds it (shapes: :func:`fxpsim.vocab.conv_gemm_shape`):

- forward: Y[b,k,oh,ow] = sum over (c, i, j) (c outer, then i, then j) of
  X[b,c,oh*s+i-p, ow*s+j-p] * W[k,c,i,j]; GEMM (B*OH*OW, Cg*kh*kw) x (Cg*kh*kw, Kg).
- backward-data, as hardware runs it: a stride-1 conv of dY with (s-1) zeros inserted
  between its pixels and padded by kh-1-p (top/left) and kh-1-p+op (bottom/right, op = the
  output padding that gives dX the shape of X), with the 180-degree-rotated kernel and K, C
  swapped: dX[b,c,h,w] = sum over (k, i, j) of dYp[b,k,h+i,w+j] * W[k,c,kh-1-i,kw-1-j];
  GEMM (B*H*W, Kg*kh*kw) x (Kg*kh*kw, Cg).
- backward-weight: dW[k,c,i,j] = sum over (b, oh, ow) of X_pad[b,c,oh*s+i,ow*s+j] *
  dY[b,k,oh,ow]; GEMM (Cg*kh*kw, B*OH*OW) x (B*OH*OW, Kg).

Groups split C and K into ``groups`` equal parts (depthwise: groups = C). ``stride`` and
``padding`` are an int or an (h, w) pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fxpsim.fixedpoint.gemm import check_operand
from fxpsim.fixedpoint.im2col import im2col
from fxpsim.fixedpoint.macarray import ArrayModel, array_gemm
from fxpsim.vocab import conv_gemm_shape


@dataclass(frozen=True)
class GemmShape:
    """One GEMM: (m, k) x (k, n); ``k`` is the reduction dim."""

    m: int
    k: int
    n: int

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n

    def __iter__(self):  # unpacks as (m, k, n)
        return iter((self.m, self.k, self.n))


@dataclass(frozen=True)
class ConvGemmShapes:
    """Per-group GEMM of each pass; a pass runs ``groups`` such GEMMs."""

    forward: GemmShape
    backward_data: GemmShape
    backward_weight: GemmShape
    groups: int

    def as_dict(self) -> dict[str, tuple[int, int, int]]:
        return {name: (g.m, g.k, g.n) for name, g in (
            ("forward", self.forward), ("backward_data", self.backward_data),
            ("backward_weight", self.backward_weight))}


@dataclass(frozen=True)
class ConvResult:
    """values and per-element psum / accumulator event counts (all the output's shape), and
    the array model's tile_events of each group's GEMM."""

    values: np.ndarray
    events_psum: np.ndarray
    events_acc: np.ndarray
    tile_events: tuple[np.ndarray, ...]

    @property
    def total_events(self) -> int:
        return int(self.events_psum.sum() + self.events_acc.sum())


def _pair(v: object, name: str, minimum: int) -> tuple[int, int]:
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(vals) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, np.integer))
                             or x < minimum for x in vals):
        raise ValueError(f"{name}: expected an int >= {minimum} or a pair of them, got {v!r}")
    return int(vals[0]), int(vals[1])


def _out_size(size: int, k: int, s: int, p: int, name: str) -> int:
    out = (size + 2 * p - k) // s + 1
    if size + 2 * p < k:
        raise ValueError(f"{name}: kernel {k} larger than padded input {size + 2 * p}")
    return out


def conv_gemm_shapes(B: int, C: int, H: int, W: int, K: int, kh: int, kw: int,
                     stride: object = 1, padding: object = 0, groups: int = 1
                     ) -> ConvGemmShapes:
    """GEMM shapes of the three passes of a conv layer (pure; no data)."""
    for name, v in (("B", B), ("C", C), ("H", H), ("W", W), ("K", K), ("kh", kh), ("kw", kw),
                    ("groups", groups)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if C % groups or K % groups:
        raise ValueError(f"groups: {groups} must divide C={C} and K={K}")
    oh, ow = _out_size(H, kh, sh, ph, "H"), _out_size(W, kw, sw, pw, "W")

    def shape(which: str) -> GemmShape:
        m, k, n, _ = conv_gemm_shape(which, B, (C, H, W), (K, oh, ow), (kh, kw), groups)
        return GemmShape(m, k, n)

    return ConvGemmShapes(forward=shape("forward"), backward_data=shape("backward_data"),
                          backward_weight=shape("backward_weight"), groups=int(groups))


def _torch_codes(x: np.ndarray) -> torch.Tensor:
    # torch lacks the wide unsigned dtypes; codes were checked to fit int32
    return torch.from_numpy(np.ascontiguousarray(x, np.int64 if x.dtype.kind == "u" else None))


def _check_model(model: object) -> ArrayModel:
    if not isinstance(model, ArrayModel):
        raise ValueError(f"model: expected an ArrayModel, got {type(model).__name__}")
    return model


def _run_groups(a_parts, b_parts, model, a_bits, w_bits):
    results = [array_gemm(a, b, model, a_bits=a_bits, w_bits=w_bits)
               for a, b in zip(a_parts, b_parts, strict=True)]
    return results, tuple(r.tile_events for r in results)


def conv2d_forward(x: object, w: object, *, stride: object = 1, padding: object = 0,
                   groups: int = 1, model: ArrayModel, x_bits: int = 8, w_bits: int = 8
                   ) -> ConvResult:
    """Y = conv2d(X, W) in integer codes on ``model``; X (B,C,H,W), W (K,C/groups,kh,kw)."""
    xa, wa = check_operand(x, "x", 4).data, check_operand(w, "w", 4).data
    model = _check_model(model)
    bsz, c, h, wd = xa.shape
    k, cg, kh, kw = wa.shape
    conv_gemm_shapes(bsz, c, h, wd, k, kh, kw, stride, padding, groups)
    if cg * groups != c:
        raise ValueError(f"w: shape {wa.shape} needs C/groups = {c // groups} input channels")
    (sh, sw), (ph, pw), kg = _pair(stride, "stride", 1), _pair(padding, "padding", 0), k // groups
    oh, ow = _out_size(h, kh, sh, ph, "H"), _out_size(wd, kw, sw, pw, "W")
    xt = _torch_codes(xa)
    a_parts = [im2col(xt, g * cg, (g + 1) * cg, (kh, kw), (sh, sw), (ph, pw), (1, 1),
                      (oh, ow)).numpy().T for g in range(groups)]
    b_parts = [wa[g * kg:(g + 1) * kg].reshape(kg, -1).T for g in range(groups)]
    res, tiles = _run_groups(a_parts, b_parts, model, x_bits, w_bits)

    def gather(field: str) -> np.ndarray:
        parts = [getattr(r, field).reshape(bsz, oh, ow, kg) for r in res]
        return np.concatenate(parts, axis=3).transpose(0, 3, 1, 2).copy()

    return ConvResult(gather("values"), gather("events_psum"), gather("events_acc"), tiles)


def conv2d_backward_data(dy: object, w: object, x_shape: tuple[int, int, int, int], *,
                         stride: object = 1, padding: object = 0, groups: int = 1,
                         model: ArrayModel, g_bits: int = 8, w_bits: int = 8) -> ConvResult:
    """dX (shape ``x_shape``) from dY (B,K,OH,OW) and W, as a conv of the zero-inserted,
    padded dY with the rotated kernel (see the module docstring)."""
    dya, wa = check_operand(dy, "dy", 4).data, check_operand(w, "w", 4).data
    model = _check_model(model)
    if len(tuple(x_shape)) != 4:
        raise ValueError(f"x_shape: expected (B, C, H, W), got {x_shape!r}")
    bsz, c, h, wd = (int(v) for v in x_shape)
    k, cg, kh, kw = wa.shape
    shapes = conv_gemm_shapes(bsz, c, h, wd, k, kh, kw, stride, padding, groups)
    (sh, sw), (ph, pw), kg = _pair(stride, "stride", 1), _pair(padding, "padding", 0), k // groups
    oh, ow = _out_size(h, kh, sh, ph, "H"), _out_size(wd, kw, sw, pw, "W")
    if cg * groups != c:
        raise ValueError(f"w: shape {wa.shape} needs C/groups = {c // groups} input channels")
    if dya.shape != (bsz, k, oh, ow):
        raise ValueError(f"dy: expected shape {(bsz, k, oh, ow)}, got {dya.shape}")
    shp = shapes.backward_data
    dyt = _torch_codes(dya)
    a_parts = [im2col(dyt, g * kg, (g + 1) * kg, (kh, kw), (1, 1), (kh - 1 - ph, kw - 1 - pw),
                      (sh, sw), (h, wd)).numpy().T for g in range(groups)]
    rot = wa[:, :, ::-1, ::-1]
    b_parts = [rot[g * kg:(g + 1) * kg].transpose(0, 2, 3, 1).reshape(shp.k, shp.n)
               for g in range(groups)]
    res, tiles = _run_groups(a_parts, b_parts, model, g_bits, w_bits)

    def gather(field: str) -> np.ndarray:
        parts = [getattr(r, field).reshape(bsz, h, wd, cg) for r in res]
        return np.concatenate(parts, axis=3).transpose(0, 3, 1, 2).copy()

    return ConvResult(gather("values"), gather("events_psum"), gather("events_acc"), tiles)


def conv2d_backward_weight(x: object, dy: object, w_shape: tuple[int, int, int, int], *,
                           stride: object = 1, padding: object = 0, groups: int = 1,
                           model: ArrayModel, x_bits: int = 8, g_bits: int = 8) -> ConvResult:
    """dW (shape ``w_shape`` = (K, C/groups, kh, kw)) from X and dY, reduced over (b, oh, ow)."""
    xa, dya = check_operand(x, "x", 4).data, check_operand(dy, "dy", 4).data
    model = _check_model(model)
    if len(tuple(w_shape)) != 4:
        raise ValueError(f"w_shape: expected (K, C/groups, kh, kw), got {w_shape!r}")
    k, cg, kh, kw = (int(v) for v in w_shape)
    bsz, c, h, wd = xa.shape
    shapes = conv_gemm_shapes(bsz, c, h, wd, k, kh, kw, stride, padding, groups)
    if cg * groups != c:
        raise ValueError(f"w_shape: {tuple(w_shape)} needs C/groups = {c // groups}")
    (sh, sw), (ph, pw), kg = _pair(stride, "stride", 1), _pair(padding, "padding", 0), k // groups
    oh, ow = _out_size(h, kh, sh, ph, "H"), _out_size(wd, kw, sw, pw, "W")
    if dya.shape != (bsz, k, oh, ow):
        raise ValueError(f"dy: expected shape {(bsz, k, oh, ow)}, got {dya.shape}")
    shp = shapes.backward_weight
    xt = _torch_codes(xa)
    a_parts = [im2col(xt, g * cg, (g + 1) * cg, (kh, kw), (sh, sw), (ph, pw), (1, 1),
                      (oh, ow)).numpy() for g in range(groups)]
    dyt = dya.transpose(0, 2, 3, 1).reshape(shp.k, k)
    b_parts = [dyt[:, g * kg:(g + 1) * kg] for g in range(groups)]
    res, tiles = _run_groups(a_parts, b_parts, model, x_bits, g_bits)

    def gather(field: str) -> np.ndarray:
        parts = [getattr(r, field).T.reshape(kg, cg, kh, kw) for r in res]
        return np.concatenate(parts, axis=0)

    return ConvResult(gather("values"), gather("events_psum"), gather("events_acc"), tiles)
