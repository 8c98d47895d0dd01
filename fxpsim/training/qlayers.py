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
from numba import njit, prange

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
# Data-movement kernels (gathers of integer codes; no arithmetic on values). The layer tests
# compare the whole layer with a Python-int convolution, which covers them.

@njit(parallel=True, cache=True)
def _gather_cols(x, c0, c1, rows, cols, out):
    """out[((c-c0)*kh+i)*kw+j, (b*oh+y)*ow+z] = x[b, c, rows[i, y], cols[j, z]], 0 where
    either index is -1 (padding, or a zero inserted by the stride); rows (kh, oh), cols
    (kw, ow) are index tables from :func:`_window_table` / :func:`_dgrad_table`."""
    nb = x.shape[0]
    kh, oh = rows.shape
    kw, ow = cols.shape
    for q in prange((c1 - c0) * kh * kw):
        c, i, j = c0 + q // (kh * kw), (q // kw) % kh, q % kw
        for b in range(nb):
            for y in range(oh):
                r = rows[i, y]
                base = (b * oh + y) * ow
                if r < 0:
                    for z in range(ow):
                        out[q, base + z] = 0
                    continue
                for z in range(ow):
                    u = cols[j, z]
                    out[q, base + z] = x[b, c, r, u] if u >= 0 else 0


def _window_table(size: int, k: int, stride: int, pad: int, out: int) -> np.ndarray:
    """[i, y] -> input index y*stride+i-pad of a conv window, -1 in the padding."""
    t = np.arange(out)[None, :] * stride + np.arange(k)[:, None] - pad
    return np.where((t >= 0) & (t < size), t, -1).astype(np.int64)


def _dgrad_table(size: int, k: int, stride: int, pad: int, out: int) -> np.ndarray:
    """[i, y] -> dY index t/stride with t = y+i-k+1+pad for the stride-1 correlation of the
    zero-dilated, (k-1-pad)-padded dY with the flipped kernel; -1 where t hits a zero."""
    t = np.arange(size)[None, :] + np.arange(k)[:, None] - k + 1 + pad
    ok = (t >= 0) & (t % stride == 0) & (t // stride < out)
    return np.where(ok, t // stride, -1).astype(np.int64)


@njit(parallel=True, cache=True)
def _nchw_rows(g, out):
    """out[(b*oh+y)*ow+z, k] = g[b, k, y, z]."""
    nb, nk, oh, ow = g.shape
    for r in prange(nb * oh):
        b, y = r // oh, r % oh
        for z in range(ow):
            for k in range(nk):
                out[r * ow + z, k] = g[b, k, y, z]


@njit(parallel=True, cache=True)
def _cols_to_nchw(vals, scale, k0, out):
    """out[b, k0+n, p] = fp32(vals[n, b*P+p] * scale[n]) for out of shape (B, K, P)."""
    nb, _, npix = out.shape
    nn_ = vals.shape[0]
    for q in prange(nb * nn_):
        b, n = q // nn_, q % nn_
        s = scale[n]
        for p in range(npix):
            out[b, k0 + n, p] = np.float32(vals[n, b * npix + p] * s)


def _gather(kernel, shape, *args) -> np.ndarray:
    out = np.empty(shape, dtype=args[0].dtype)
    kernel(*args, out)
    return out


def _scale_vec(scale: np.ndarray | float, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,)).copy()


class QConv2dFn(torch.autograd.Function):
    """``conv2d(x, w)`` (no bias) through the integer GEMMs; see the module docstring."""

    @staticmethod
    def forward(ctx, x, w, rt: LayerRuntime, geom: ConvGeom):  # type: ignore[override]
        nb, c, h, wd = x.shape
        k, cg, kh, kw = w.shape
        (sh, sw), (ph, pw), g = geom.stride, geom.padding, geom.groups
        kg = k // g
        oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
        xq, wq = quant_act(rt, x), quant_weight(rt, w)
        integer = xq is not None and wq is not None
        events = 0
        if integer:
            m = nb * oh * ow
            xc = xq.codes.numpy()
            rows_t = _window_table(h, kh, sh, ph, oh)
            cols_t = _window_table(wd, kw, sw, pw, ow)
            out = np.empty((nb, k, oh * ow), dtype=np.float32)
            for gi in range(g):
                # the GEMM runs as Yᵀ = Wᵀᵀ·colsᵀ: every output adds the same k sequence,
                # so values and events equal those of Y = cols·W (only the layout differs)
                cols = _gather(_gather_cols, (cg * kh * kw, m), xc, gi * cg, (gi + 1) * cg,
                               rows_t, cols_t)
                w_mat = _np(wq.codes[gi * kg:(gi + 1) * kg].reshape(kg, -1))
                vals, ev = int_gemm(w_mat, cols, rt.numerics)
                events += ev
                ws = wq.scale if wq.scale.ndim == 0 else wq.scale[gi * kg:(gi + 1) * kg]
                _cols_to_nchw(vals, _scale_vec(xq.scale * ws, kg), gi * kg, out)
            y = torch.from_numpy(out).view(nb, k, oh, ow)
        else:
            xin = x if xq is None else xq.dequantize()
            win = w if wq is None else wq.dequantize()
            y = F.conv2d(xin, win, None, geom.stride, geom.padding, 1, g)
        _record(rt, "conv2d", "forward", nb * oh * ow, cg * kh * kw, kg, g, integer, events)
        ctx.rt, ctx.geom, ctx.xq, ctx.wq, ctx.x_shape = rt, geom, xq, wq, x.shape
        ctx.save_for_backward(x if xq is None else None, w)
        return y

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        rt, geom, xq, wq = ctx.rt, ctx.geom, ctx.xq, ctx.wq
        x_f, w = ctx.saved_tensors
        nc = rt.numerics
        gy = gy.contiguous()
        nb, k, oh, ow = gy.shape
        _, cg, kh, kw = w.shape
        (sh, sw), (ph, pw), g = geom.stride, geom.padding, geom.groups
        kg, c = k // g, cg * g
        h, wd = ctx.x_shape[2], ctx.x_shape[3]
        gq = quant_grad(rt, gy)
        dx = dw = None
        if ctx.needs_input_grad[0]:
            wb = wq
            if wq is not None and wq.scale.ndim == 1:
                wb = quant_weight(rt, w, per_tensor=True, kind="quantize_weight_bwd",
                                  pass_name="backward")
            events = 0
            integer = gq is not None and wb is not None
            if integer:
                m = nb * h * wd
                gc = gq.codes.numpy()
                wf = wb.codes.flip(2, 3)
                out = np.empty((nb, c, h * wd), dtype=np.float32)
                rows_t = _dgrad_table(h, kh, sh, ph, oh)
                cols_t = _dgrad_table(wd, kw, sw, pw, ow)
                for gi in range(g):
                    cols = _gather(_gather_cols, (kg * kh * kw, m), gc, gi * kg, (gi + 1) * kg,
                                   rows_t, cols_t)
                    w_mat = _np(wf[gi * kg:(gi + 1) * kg].permute(1, 0, 2, 3)
                                .reshape(cg, kg * kh * kw))
                    vals, ev = int_gemm(w_mat, cols, nc)  # dXᵀ (C/g, B·H·W), as in forward
                    events += ev
                    _cols_to_nchw(vals, _scale_vec(gq.scale * wb.scale, cg), gi * cg, out)
                dx = torch.from_numpy(out).view(nb, c, h, wd)
            else:
                g_in = gy if gq is None else gq.dequantize()
                w_in = w if wb is None else wb.dequantize()
                dx = torch.nn.grad.conv2d_input(ctx.x_shape, w_in, g_in, geom.stride,
                                                geom.padding, 1, g)
            _record(rt, "conv2d", "backward_data", nb * h * wd, kg * kh * kw, cg, g, integer,
                    events)
        if ctx.needs_input_grad[1]:
            events = 0
            integer = gq is not None and xq is not None
            if integer:
                m = nb * oh * ow
                xc = xq.codes.numpy()
                g_mat = _gather(_nchw_rows, (m, k), gq.codes.numpy())
                rows_t = _window_table(h, kh, sh, ph, oh)
                cols_t = _window_table(wd, kw, sw, pw, ow)
                dw_np = np.empty((k, cg * kh * kw), dtype=np.float32)
                for gi in range(g):
                    a_mat = _gather(_gather_cols, (cg * kh * kw, m), xc, gi * cg,
                                    (gi + 1) * cg, rows_t, cols_t)
                    b_mat = np.ascontiguousarray(g_mat[:, gi * kg:(gi + 1) * kg])
                    vals, ev = int_gemm(a_mat, b_mat, nc)
                    events += ev
                    dw_np[gi * kg:(gi + 1) * kg] = _scaled(vals, xq.scale * gq.scale).numpy().T
                dw = torch.from_numpy(dw_np).view(k, cg, kh, kw)
            else:
                g_in = gy if gq is None else gq.dequantize()
                x_in = x_f if xq is None else xq.dequantize()
                dw = torch.nn.grad.conv2d_weight(x_in, w.shape, g_in, geom.stride,
                                                 geom.padding, 1, g)
            _record(rt, "conv2d", "backward_weight", cg * kh * kw, nb * oh * ow, kg, g,
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
