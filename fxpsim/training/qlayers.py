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
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from fxpsim.fixedpoint.gemm import matmul
from fxpsim.fixedpoint.gemm_kernels import accumulate
from fxpsim.training.formats import NumericsConfig
from fxpsim.training.qkernels import (
    gemm_i8,
    im2col,
    pix_to_nchw,
    pixel_cols,
    place_nhwc,
    rows_to_nchw,
    static_ok,
)
from fxpsim.training.quantizers import (
    QTensor,
    qmax_of,
    quantize_padded_nhwc,
    quantize_symmetric,
)
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
    act_buf: torch.Tensor | None = None  # scratch: padded NHWC codes of the last quant_act
    # Work buffers reused across steps (fresh multi-MB pages cost more than the copies that
    # fill them). A user takes one out (pop) and puts it back when done, so a forward whose
    # backward is still pending never shares a buffer with another call.
    scratch: dict[str, torch.Tensor] = field(default_factory=dict)

    def take(self, key: str) -> torch.Tensor | None:
        return self.scratch.pop(key, None)

    def give(self, key: str, buf: torch.Tensor | None) -> None:
        if buf is not None:
            self.scratch[key] = buf


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
    """fp32(values·scale) with the product formed in float64 (one rounding). A product beyond
    fp32's range becomes inf, as in an fp32 output stage; the training loop reports that as
    a divergence, so numpy's overflow warning is silenced here."""
    with np.errstate(over="ignore"):
        return torch.from_numpy((values.astype(np.float64) * scale).astype(np.float32))


# ---- shared quantization steps -------------------------------------------------------------

def quant_act(rt: LayerRuntime, x: torch.Tensor, pad: tuple[int, int] | None = None
              ) -> QTensor | None:
    """Quantized activations; with ``pad`` (conv fast path) the codes may come as the
    interior of a padded NHWC buffer, kept in ``rt.act_buf`` (else ``rt.act_buf`` is None)."""
    nc = rt.numerics
    rt.act_buf = None
    if nc.activations.is_float:
        return None
    fused = quantize_padded_nhwc(x, nc.activations, pad) if pad is not None else None
    if fused is not None:
        q, rt.act_buf = fused
    else:
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


def requant_clipped(rt: LayerRuntime, t: torch.Tensor, weights: bool = False) -> QTensor:
    """Octo's backward operand: ``t`` clipped to ``prc_clip·[min, max]`` and quantized per
    tensor with the kind's bits, rounding to nearest (the demo's LAC conv backward)."""
    nc = rt.numerics
    tn = nc.weights if weights else nc.activations
    td = t.detach()
    lo, hi = (float(v) for v in torch.aminmax(td)) if td.numel() else (0.0, 0.0)
    clipped = torch.clamp(td, nc.prc_clip * lo, nc.prc_clip * hi)
    q = quantize_symmetric(clipped, replace(tn, rounding="half_even"))
    rt.counters.vector(rt.name, rt.op, "backward", "requant_w" if weights else "requant_x",
                       td.numel())
    return q


def _record(rt: LayerRuntime, op: str, pass_name: str, m: int, k: int, n: int, groups: int,
            integer: bool, events: int) -> None:
    rt.counters.gemm(GemmRecord(rt.name, op, pass_name, m, k, n, groups, integer, events))
    rt.stats.acc_events[pass_name] += events


# ---- conv2d --------------------------------------------------------------------------------
# The layer tests compare the whole layer (gathers, GEMM paths, rescale) with Python-int
# convolutions; the kernels live in :mod:`fxpsim.training.qkernels`.

def _scale_vec(scale: np.ndarray | float, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,)).copy()


def _conv_gemm(cols: torch.Tensor, w_mat: torch.Tensor, rt: LayerRuntime, c_q: QTensor,
               w_q: QTensor, scale: np.ndarray, k0: int, out: np.ndarray, pixel: bool,
               mm_key: str = "mm") -> int:
    """out[:, k0:k0+n] = fp32(acc·scale) of acc = w_mat (n, K) x cols (K, B·P) (channel-major,
    the hardware k order; out (B, K, P)), or, for pixel-major cols (B·P, K), of
    acc = cols x w_mat (K, n) (out (B, K, OH, OW)); the latter only under the static proof."""
    if pixel:
        mm = rt.take(mm_key)
        vals, ev = gemm_i8(cols, w_mat, rt.numerics, c_q.qmax, w_q.qmax, int_gemm, out=mm)
        pix_to_nchw(vals.numpy(), scale, k0, out)
        if vals.dtype == torch.int32:
            rt.give(mm_key, vals)
    else:
        vals, ev = gemm_i8(w_mat, cols, rt.numerics, w_q.qmax, c_q.qmax, int_gemm)
        rows_to_nchw(vals.numpy(), scale, k0, out)
    return ev


def _fast(terms: int, a: QTensor, b: QTensor, nc: NumericsConfig) -> bool:
    int8 = a.codes.dtype == torch.int8 and b.codes.dtype == torch.int8
    return static_ok(terms, a.qmax, b.qmax, nc, int8)


class QConv2dFn(torch.autograd.Function):
    """``conv2d(x, w)`` (no bias) through the integer GEMMs; see the module docstring.

    Layouts: in general each GEMM runs channel-major as Wᵀᵀ·colsᵀ (outputs x k in the
    hardware's (c, i, j) order; values and events as in Y = cols·W). When the static
    no-overflow proof holds (:func:`~fxpsim.training.qkernels.static_ok`; then the k order is
    irrelevant and there are no events) forward and backward-data run pixel-major on padded
    NHWC code buffers (k order (i, j, c)), and the forward columns are kept for
    backward-weight, whose reduction runs over (b, oh, ow) in order in every layout."""

    @staticmethod
    def forward(ctx, x, w, rt: LayerRuntime, geom: ConvGeom):  # type: ignore[override]
        return QConv2dFn._forward(ctx, x, w, rt, geom)

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        return QConv2dFn._backward(ctx, gy)

    @staticmethod
    def _forward(ctx, x, w, rt: LayerRuntime, geom: ConvGeom):
        nb, c, h, wd = x.shape
        k, cg, kh, kw = w.shape
        (sh, sw), (ph, pw), g = geom.stride, geom.padding, geom.groups
        kg = k // g
        oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
        nc = rt.numerics
        a_bits, w_bits = nc.activations.bits, nc.weights.bits
        fast = a_bits is not None and w_bits is not None and a_bits <= 8 and w_bits <= 8 and \
            static_ok(cg * kh * kw, qmax_of(a_bits), qmax_of(w_bits), nc)
        xq, wq = quant_act(rt, x, (ph, pw) if fast else None), quant_weight(rt, w)
        buf, rt.act_buf = rt.act_buf, None
        integer = xq is not None and wq is not None
        events = 0
        ctx.cols = None
        if integer:
            out = np.empty((nb, k, oh, ow), dtype=np.float32)
            if fast and buf is None:
                buf = place_nhwc(xq.codes, ph, pw, (1, 1), (h + 2 * ph, wd + 2 * pw))
            kept = []
            for gi in range(g):
                ws = wq.scale if wq.scale.ndim == 0 else wq.scale[gi * kg:(gi + 1) * kg]
                scale = _scale_vec(xq.scale * ws, kg)
                w_g = wq.codes[gi * kg:(gi + 1) * kg]
                if fast:
                    cols = pixel_cols(buf, gi * cg, (gi + 1) * cg, (kh, kw), geom.stride,
                                      (oh, ow), rt.take(f"cols{gi}"))
                    w_mat = w_g.permute(2, 3, 1, 0).reshape(kh * kw * cg, kg)
                    events += _conv_gemm(cols, w_mat, rt, xq, wq, scale, gi * kg, out, True)
                    kept.append(cols)
                else:
                    cols = im2col(xq.codes, gi * cg, (gi + 1) * cg, (kh, kw), geom.stride,
                                  geom.padding, (1, 1), (oh, ow))
                    events += _conv_gemm(cols, w_g.reshape(kg, -1), rt, xq, wq, scale,
                                         gi * kg, out.reshape(nb, k, oh * ow), False)
            ctx.cols = kept or None
            y = torch.from_numpy(out)
        else:
            xin = x if xq is None else xq.dequantize()
            win = w if wq is None else wq.dequantize()
            y = F.conv2d(xin, win, None, geom.stride, geom.padding, 1, g)
        _record(rt, "conv2d", "forward", nb * oh * ow, cg * kh * kw, kg, g, integer, events)
        ctx.rt, ctx.geom, ctx.xq, ctx.wq, ctx.x_shape = rt, geom, xq, wq, x.shape
        ctx.save_for_backward(x if xq is None or nc.bwd_requant else None, w)
        return y

    @staticmethod
    def _backward(ctx, gy):
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
        if nc.bwd_requant and xq is not None and wq is not None:
            xq, wq = requant_clipped(rt, x_f), requant_clipped(rt, w, weights=True)
            if ctx.cols is not None:  # the forward's columns hold the old codes
                for gi, cols in enumerate(ctx.cols):
                    rt.give(f"cols{gi}", cols)
                ctx.cols = None
        dx = dw = None
        if ctx.needs_input_grad[0]:
            wb = wq
            if wq is not None and wq.scale.ndim == 1:
                wb = quant_weight(rt, w, per_tensor=True, kind="quantize_weight_bwd",
                                  pass_name="backward")
            events = 0
            integer = gq is not None and wb is not None
            if integer:
                wf = wb.codes.flip(2, 3)
                out = np.empty((nb, c, h, wd), dtype=np.float32)
                scale = _scale_vec(gq.scale * wb.scale, cg)
                fast = _fast(kg * kh * kw, gq, wb, nc)
                # dX: a stride-1 correlation of dY zero-dilated by the stride and padded by
                # kernel-1-pad with the flipped kernel
                dpad = (kh - 1 - ph, kw - 1 - pw)
                buf = place_nhwc(gq.codes, dpad[0], dpad[1], (sh, sw),
                                 (h + kh - 1, wd + kw - 1), rt.take("dbuf")) if fast else None
                for gi in range(g):
                    wf_g = wf[gi * kg:(gi + 1) * kg]
                    if fast:
                        cols = pixel_cols(buf, gi * kg, (gi + 1) * kg, (kh, kw), (1, 1),
                                          (h, wd), rt.take("dcols"))
                        w_mat = wf_g.permute(2, 3, 0, 1).reshape(kh * kw * kg, cg)
                        events += _conv_gemm(cols, w_mat, rt, gq, wb, scale, gi * cg, out, True,
                                             "dmm")
                        rt.give("dcols", cols)
                    else:
                        cols = im2col(gq.codes, gi * kg, (gi + 1) * kg, (kh, kw), (1, 1), dpad,
                                      (sh, sw), (h, wd))
                        w_mat = wf_g.permute(1, 0, 2, 3).reshape(cg, kg * kh * kw)
                        events += _conv_gemm(cols, w_mat, rt, gq, wb, scale, gi * cg,
                                             out.reshape(nb, c, h * wd), False)
                rt.give("dbuf", buf)
                dx = torch.from_numpy(out)
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
                dw_np = np.empty((k, cg, kh, kw), dtype=np.float32)
                for gi in range(g):
                    # dY of the group as (n, B·OH·OW): every sum runs over (b, oh, ow) in order
                    g_mat = gq.codes[:, gi * kg:(gi + 1) * kg].transpose(0, 1).reshape(kg, -1)
                    if ctx.cols is not None:  # pixel-major (B·OH·OW, (i, j, c))
                        vals, ev = gemm_i8(g_mat, ctx.cols[gi], nc, gq.qmax, xq.qmax, int_gemm)
                        dw_g = _scaled(vals.numpy(), xq.scale * gq.scale).view(kg, kh, kw, cg)
                        dw_np[gi * kg:(gi + 1) * kg] = dw_g.permute(0, 3, 1, 2).numpy()
                    else:
                        cols = im2col(xq.codes, gi * cg, (gi + 1) * cg, (kh, kw), geom.stride,
                                      geom.padding, (1, 1), (oh, ow))
                        vals, ev = gemm_i8(cols, g_mat.t(), nc, xq.qmax, gq.qmax, int_gemm)
                        dw_g = _scaled(vals.numpy(), xq.scale * gq.scale).numpy().T
                        dw_np[gi * kg:(gi + 1) * kg] = dw_g.reshape(kg, cg, kh, kw)
                    events += ev
                dw = torch.from_numpy(dw_np)
            else:
                g_in = gy if gq is None else gq.dequantize()
                x_in = x_f if xq is None else xq.dequantize()
                dw = torch.nn.grad.conv2d_weight(x_in, w.shape, g_in, geom.stride,
                                                 geom.padding, 1, g)
            _record(rt, "conv2d", "backward_weight", cg * kh * kw, nb * oh * ow, kg, g,
                    integer, events)
        # the columns go back to the pool (a second backward rebuilds them from xq's codes,
        # which stay this forward's own)
        for gi, cols in enumerate(ctx.cols or ()):
            rt.give(f"cols{gi}", cols)
        ctx.cols = None
        return dx, dw, None, None


# ---- linear --------------------------------------------------------------------------------

class QLinearFn(torch.autograd.Function):
    """``x @ w.T`` (no bias) through the integer GEMMs; see the module docstring."""

    @staticmethod
    def forward(ctx, x, w, rt: LayerRuntime):  # type: ignore[override]
        return QLinearFn._forward(ctx, x, w, rt)

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        return QLinearFn._backward(ctx, gy)

    @staticmethod
    def _forward(ctx, x, w, rt: LayerRuntime):
        b, n_in = x.shape
        n_out = w.shape[0]
        xq, wq = quant_act(rt, x), quant_weight(rt, w)
        integer = xq is not None and wq is not None
        events = 0
        if integer:
            vals, events = gemm_i8(xq.codes, wq.codes.t(), rt.numerics, xq.qmax, wq.qmax,
                                  int_gemm)
            y = _scaled(vals.numpy(), xq.scale * wq.scale)
        else:
            xin = x if xq is None else xq.dequantize()
            win = w if wq is None else wq.dequantize()
            y = F.linear(xin, win)
        _record(rt, "linear", "forward", b, n_in, n_out, 1, integer, events)
        ctx.rt, ctx.xq, ctx.wq = rt, xq, wq
        ctx.save_for_backward(x if xq is None else None, w)
        return y

    @staticmethod
    def _backward(ctx, gy):
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
                vals, events = gemm_i8(gq.codes, wb.codes, nc, gq.qmax, wb.qmax, int_gemm)
                dx, integer = _scaled(vals.numpy(), gq.scale * wb.scale), True
            else:
                g_in = gy if gq is None else gq.dequantize()
                dx = g_in @ (w if wb is None else wb.dequantize())
                integer, events = False, 0
            _record(rt, "linear", "backward_data", b, n_out, n_in, 1, integer, events)
        if ctx.needs_input_grad[1]:
            if gq is not None and xq is not None:
                vals, events = gemm_i8(xq.codes.t(), gq.codes, nc, xq.qmax, gq.qmax, int_gemm)
                dw, integer = _scaled(vals.numpy(), xq.scale * gq.scale).t().contiguous(), True
            else:
                g_in = gy if gq is None else gq.dequantize()
                dw = g_in.t() @ (x_f if xq is None else xq.dequantize())
                integer, events = False, 0
            _record(rt, "linear", "backward_weight", n_in, b, n_out, 1, integer, events)
        return dx, dw, None
