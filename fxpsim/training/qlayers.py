"""Quantized conv2d / linear as torch autograd Functions running the integer GEMMs.

Per layer and step (ALGORITHMS.md §0.1):

* forward ``Y = X·W``: X and W are quantized (:mod:`fxpsim.training.quantizers`), the GEMM
  of their codes runs in the configured accumulator (:func:`int_gemm`), and the int result
  is scaled by ``Δx·Δw`` — an fp32-scale requantizer: ``fp32(acc·Δx·Δw)`` with one rounding
  (the product is formed in float64). The output goes to the vector unit in fp32, where
  BN / ReLU / pooling / residual adds run as plain torch fp32 ops.
* backward: dY is quantized ONCE (gradient format, interval policy, rounding; stochastic
  draws from the hardware RNG) and the same codes feed backward-data ``dX = dY·Wᵀ`` and
  backward-weight ``dW = Xᵀ·dY`` (as in LBT). The X and W codes are those of the forward.
  With per-channel weight scales, backward-data uses a per-tensor copy of W quantized from
  the fp32 master weights (one scale must factor out of its K-reduction).
* A GEMM whose two operands are both quantized runs on integer codes; if either operand's
  kind is fp32 (bits None) it runs as an fp32 torch op on the (dequantized) operands. With
  every kind fp32 the layer equals torch's conv2d / linear.

GEMM shapes (per group; recorded in the counters): conv forward ``m=B·OH·OW, k=(C/g)·kh·kw,
n=K/g``; backward-data ``m=B·H·W, k=(K/g)·kh·kw, n=C/g`` (dY zero-dilated by the stride and
padded by ``kh-1-p``: a stride-1 correlation with the flipped kernel, so every dX element is
one accumulator); backward-weight ``m=(C/g)·kh·kw, k=B·OH·OW, n=K/g``. Linear: forward
``(B, in, out)``, backward-data ``(B, out, in)``, backward-weight ``(in, B, out)``.
Backward-data is skipped when the input needs no gradient (the first layer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fxpsim.fixedpoint.gemm import matmul
from fxpsim.fixedpoint.gemm_kernels import accumulate
from fxpsim.training.formats import NumericsConfig
from fxpsim.training.quantizers import QTensor, quantize_symmetric
from fxpsim.training.stats import Counters, GemmRecord, LayerStats, StatsConfig


@dataclass
class LayerRuntime:
    """Mutable per-layer context the QNet hands to the Functions.

    ``rng()`` returns the hardware RNG to draw from now; ``gamma`` is LBT's clip factor;
    ``grad_observer(layer, dY)`` (if set) sees the float dY before it is quantized.
    """

    name: str
    op: str  # IR op: "conv2d" | "linear"
    numerics: NumericsConfig
    counters: Counters
    stats: LayerStats
    stats_cfg: StatsConfig
    rng: Callable[[], object]
    gamma: float = 1.0
    grad_observer: Callable[[str, torch.Tensor], None] | None = None


@dataclass(frozen=True)
class ConvGeom:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int


# ---- integer GEMM with the array's accumulation order -------------------------------------

def int_gemm(a: np.ndarray, b: np.ndarray, nc: NumericsConfig) -> tuple[np.ndarray, int]:
    """(int64 values (M, N), overflow events) of codes ``a`` (M, K) x ``b`` (K, N).

    Output-stationary arrays add all of K in one ``acc_bits`` register
    (:func:`fxpsim.fixedpoint.matmul`). Weight/input-stationary arrays add K-tiles of
    ``rows`` k's in a ``psum_bits`` register, then add the tile sums in order into the
    ``acc_bits`` accumulator (the order of ``oracle_gemm.two_level_oracle``); when no prefix
    can overflow either register (K·max|a|·max|b| fits both) the order is irrelevant and
    the single-level fast path gives the identical result.
    """
    k_len = a.shape[1]
    two_level = nc.dataflow != "output_stationary" and k_len > nc.rows
    if two_level:
        psum_bits = nc.psum_bits or nc.acc_bits
        psum_ovf = nc.psum_overflow or nc.acc_overflow
        max_prod = (int(np.abs(a).max(initial=0)) * int(np.abs(b).max(initial=0)))
        bits = min(psum_bits, nc.acc_bits)
        if k_len * max_prod <= (1 << (bits - 1)) - 1:
            two_level = False
    if not two_level:
        res = matmul(a, b, nc.acc_bits, nc.acc_overflow, return_events=True)
        return res.values, res.total_events
    acc = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    ev = np.zeros_like(acc)
    total = 0
    for k0 in range(0, k_len, nc.rows):
        part = matmul(a[:, k0:k0 + nc.rows], b[k0:k0 + nc.rows], psum_bits, psum_ovf,
                      return_events=True)
        total += part.total_events
        accumulate(acc, part.values, ev, nc.acc_bits, nc.acc_overflow)
    return acc, total + int(ev.sum())


def _scaled(values: np.ndarray, scale: np.ndarray | float) -> torch.Tensor:
    """fp32(values·scale) with the product formed in float64 (one rounding)."""
    return torch.from_numpy((values.astype(np.float64) * scale).astype(np.float32))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.contiguous().numpy()


# ---- shared quantization steps -------------------------------------------------------------

def quant_act(rt: LayerRuntime, x: torch.Tensor) -> QTensor | None:
    nc = rt.numerics
    if nc.activations.is_float:
        return None
    q = quantize_symmetric(x, nc.activations, rng=rt.rng(), random_bits=nc.random_bits)
    rt.counters.vector(rt.name, rt.op, "forward", "quantize_act", x.numel())
    rt.stats.act_clipped += q.n_clipped
    rt.stats.act_elems += x.numel()
    if rt.stats_cfg.active:
        rt.stats.add_sqnr("act", x.detach().numpy(), q.dequantize().numpy())
    return q


def quant_weight(rt: LayerRuntime, w: torch.Tensor, *, per_tensor: bool = False,
                 kind: str = "quantize_weight", pass_name: str = "forward") -> QTensor | None:
    nc = rt.numerics
    if nc.weights.is_float:
        return None
    per_channel = nc.weights.granularity == "per_channel" and not per_tensor
    q = quantize_symmetric(w, nc.weights, rng=rt.rng(), random_bits=nc.random_bits,
                           per_channel=per_channel)
    rt.counters.vector(rt.name, rt.op, pass_name, kind, w.numel())
    return q


def quant_grad(rt: LayerRuntime, gy: torch.Tensor) -> QTensor | None:
    nc = rt.numerics
    if rt.grad_observer is not None:
        rt.grad_observer(rt.name, gy)
    if nc.gradients.is_float:
        return None
    factor = {"minmax": 1.0, "lbt": rt.gamma, "prc": nc.prc_clip}[nc.grad_interval]
    q = quantize_symmetric(gy, nc.gradients, rng=rt.rng(), random_bits=nc.random_bits,
                           clip_factor=factor)
    rt.counters.vector(rt.name, rt.op, "backward", "quantize_grad", gy.numel())
    rt.stats.grad_clipped += q.n_clipped
    rt.stats.grad_elems += gy.numel()
    if rt.stats_cfg.active:
        rt.stats.add_sqnr("grad", gy.detach().numpy(), q.dequantize().numpy())
    return q


def _record(rt: LayerRuntime, op: str, pass_name: str, m: int, k: int, n: int, groups: int,
            integer: bool, events: int) -> None:
    rt.counters.gemm(GemmRecord(rt.name, op, pass_name, m, k, n, groups, integer, events))
    rt.stats.acc_events[pass_name] += events


# ---- conv2d --------------------------------------------------------------------------------

def im2col_view(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int]) -> torch.Tensor:
    """A (B, OH, OW, C, kh, kw) strided view of zero-padded ``x`` (B, C, H, W); no copy
    beyond the padding. Reshaping a slice of it gives the im2col matrix."""
    ph, pw = padding
    xp = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x.contiguous()
    b, c, hp, wp = xp.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    s0, s1, s2, s3 = xp.stride()
    return xp.as_strided((b, oh, ow, c, kh, kw), (s0, s2 * sh, s3 * sw, s1, s2, s3))


def _dilate_pad(g: torch.Tensor, geom: ConvGeom, h: int, w: int) -> torch.Tensor:
    """dY (B, K, OH, OW) zero-dilated by the stride and padded so that a stride-1
    correlation with the flipped kernel yields dX of size (h, w)."""
    b, k, oh, ow = g.shape
    sh, sw = geom.stride
    kh, kw = geom.kernel
    if sh > 1 or sw > 1:
        d = g.new_zeros((b, k, (oh - 1) * sh + 1, (ow - 1) * sw + 1))
        d[:, :, ::sh, ::sw] = g
    else:
        d = g
    top, left = kh - 1 - geom.padding[0], kw - 1 - geom.padding[1]
    bottom = h + kh - 1 - top - d.shape[2]
    right = w + kw - 1 - left - d.shape[3]
    return F.pad(d, (left, right, top, bottom))


class QConv2dFn(torch.autograd.Function):
    """``conv2d(x, w)`` (no bias) through the integer GEMMs; see the module docstring."""

    @staticmethod
    def forward(ctx, x, w, rt: LayerRuntime, geom: ConvGeom):  # type: ignore[override]
        b, c, h, wd = x.shape
        k, cg, kh, kw = w.shape
        g = geom.groups
        kg = k // g
        xq, wq = quant_act(rt, x), quant_weight(rt, w)
        integer = xq is not None and wq is not None
        events = 0
        if integer:
            cols = im2col_view(xq.codes, geom.kernel, geom.stride, geom.padding)
            oh, ow = cols.shape[1], cols.shape[2]
            m = b * oh * ow
            out = np.empty((m, k), dtype=np.float32)
            for gi in range(g):
                a_mat = _np(cols[:, :, :, gi * cg:(gi + 1) * cg].reshape(m, cg * kh * kw))
                b_mat = _np(wq.codes[gi * kg:(gi + 1) * kg].reshape(kg, -1).t())
                vals, ev = int_gemm(a_mat, b_mat, rt.numerics)
                events += ev
                ws = wq.scale if wq.scale.ndim == 0 else wq.scale[gi * kg:(gi + 1) * kg]
                out[:, gi * kg:(gi + 1) * kg] = _scaled(vals, xq.scale * ws).numpy()
            y = torch.from_numpy(out).view(b, oh, ow, k).permute(0, 3, 1, 2).contiguous()
        else:
            xin = x if xq is None else xq.dequantize()
            win = w if wq is None else wq.dequantize()
            y = F.conv2d(xin, win, None, geom.stride, geom.padding, 1, g)
            oh, ow = y.shape[2], y.shape[3]
        _record(rt, "conv2d", "forward", b * oh * ow, cg * kh * kw, kg, g, integer, events)
        ctx.rt, ctx.geom, ctx.xq, ctx.wq = rt, geom, xq, wq
        ctx.save_for_backward(x if xq is None else None, w)
        return y

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        rt, geom, xq, wq = ctx.rt, ctx.geom, ctx.xq, ctx.wq
        x_f, w = ctx.saved_tensors
        nc = rt.numerics
        gy = gy.contiguous()
        b, k, oh, ow = gy.shape
        _, cg, kh, kw = w.shape
        g = geom.groups
        kg, c = k // g, cg * g
        h, wd = (xq.codes if xq is not None else x_f).shape[2:]
        gq = quant_grad(rt, gy)
        g_used = gy if gq is None else None
        dx = dw = None
        if ctx.needs_input_grad[0]:
            wb = wq
            if wq is not None and wq.scale.ndim == 1:
                wb = quant_weight(rt, w, per_tensor=True, kind="quantize_weight_bwd",
                                  pass_name="backward")
            if gq is not None and wb is not None:
                cols = im2col_view(_dilate_pad(gq.codes, geom, h, wd), geom.kernel, (1, 1),
                                   (0, 0))
                m = b * h * wd
                wf = wb.codes.flip(2, 3)
                out = np.empty((m, c), dtype=np.float32)
                events = 0
                for gi in range(g):
                    a_mat = _np(cols[:, :, :, gi * kg:(gi + 1) * kg].reshape(m, kg * kh * kw))
                    b_mat = _np(wf[gi * kg:(gi + 1) * kg].permute(0, 2, 3, 1)
                                .reshape(kg * kh * kw, cg))
                    vals, ev = int_gemm(a_mat, b_mat, nc)
                    events += ev
                    out[:, gi * cg:(gi + 1) * cg] = _scaled(vals, gq.scale * wb.scale).numpy()
                dx = torch.from_numpy(out).view(b, h, wd, c).permute(0, 3, 1, 2).contiguous()
                integer = True
            else:
                g_in = g_used if gq is None else gq.dequantize()
                w_in = w if wb is None else wb.dequantize()
                dx = torch.nn.grad.conv2d_input((b, c, h, wd), w_in, g_in, geom.stride,
                                                geom.padding, 1, g)
                integer, events = False, 0
            _record(rt, "conv2d", "backward_data", b * h * wd, kg * kh * kw, cg, g, integer,
                    events)
        if ctx.needs_input_grad[1]:
            if gq is not None and xq is not None:
                cols = im2col_view(xq.codes, geom.kernel, geom.stride, geom.padding)
                m = b * oh * ow
                colsT = cols.permute(3, 4, 5, 0, 1, 2)
                g_mat = gq.codes.permute(0, 2, 3, 1).reshape(m, k)
                dw_np = np.empty((k, cg, kh, kw), dtype=np.float32)
                events = 0
                for gi in range(g):
                    a_mat = _np(colsT[gi * cg:(gi + 1) * cg].reshape(cg * kh * kw, m))
                    b_mat = _np(g_mat[:, gi * kg:(gi + 1) * kg])
                    vals, ev = int_gemm(a_mat, b_mat, nc)
                    events += ev
                    dw_np[gi * kg:(gi + 1) * kg] = (
                        _scaled(vals, xq.scale * gq.scale).numpy().T.reshape(kg, cg, kh, kw))
                dw = torch.from_numpy(dw_np)
                integer = True
            else:
                g_in = g_used if gq is None else gq.dequantize()
                x_in = x_f if xq is None else xq.dequantize()
                dw = torch.nn.grad.conv2d_weight(x_in, w.shape, g_in, geom.stride,
                                                 geom.padding, 1, g)
                integer, events = False, 0
            _record(rt, "conv2d", "backward_weight", cg * kh * kw, b * oh * ow, kg, g,
                    integer, events)
        return dx, dw, None, None


# ---- linear --------------------------------------------------------------------------------

class QLinearFn(torch.autograd.Function):
    """``x @ w.T`` (no bias) through the integer GEMMs; see the module docstring."""

    @staticmethod
    def forward(ctx, x, w, rt: LayerRuntime):  # type: ignore[override]
        b, n_in = x.shape
        n_out = w.shape[0]
        xq, wq = quant_act(rt, x), quant_weight(rt, w)
        integer = xq is not None and wq is not None
        events = 0
        if integer:
            vals, events = int_gemm(_np(xq.codes), _np(wq.codes.t()), rt.numerics)
            y = _scaled(vals, xq.scale * wq.scale)
        else:
            xin = x if xq is None else xq.dequantize()
            win = w if wq is None else wq.dequantize()
            y = F.linear(xin, win)
        _record(rt, "linear", "forward", b, n_in, n_out, 1, integer, events)
        ctx.rt, ctx.xq, ctx.wq = rt, xq, wq
        ctx.save_for_backward(x if xq is None else None, w)
        return y

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        rt, xq, wq = ctx.rt, ctx.xq, ctx.wq
        x_f, w = ctx.saved_tensors
        nc = rt.numerics
        gy = gy.contiguous()
        b, n_out = gy.shape
        n_in = w.shape[1]
        gq = quant_grad(rt, gy)
        dx = dw = None
        if ctx.needs_input_grad[0]:
            wb = wq
            if wq is not None and wq.scale.ndim == 1:
                wb = quant_weight(rt, w, per_tensor=True, kind="quantize_weight_bwd",
                                  pass_name="backward")
            if gq is not None and wb is not None:
                vals, events = int_gemm(_np(gq.codes), _np(wb.codes), nc)
                dx, integer = _scaled(vals, gq.scale * wb.scale), True
            else:
                g_in = gy if gq is None else gq.dequantize()
                dx = g_in @ (w if wb is None else wb.dequantize())
                integer, events = False, 0
            _record(rt, "linear", "backward_data", b, n_out, n_in, 1, integer, events)
        if ctx.needs_input_grad[1]:
            if gq is not None and xq is not None:
                vals, events = int_gemm(_np(xq.codes.t()), _np(gq.codes), nc)
                dw, integer = _scaled(vals, xq.scale * gq.scale).t().contiguous(), True
            else:
                g_in = gy if gq is None else gq.dequantize()
                dw = g_in.t() @ (x_f if xq is None else xq.dequantize())
                integer, events = False, 0
            _record(rt, "linear", "backward_weight", n_in, b, n_out, 1, integer, events)
        return dx, dw, None
