"""Quantized conv2d / linear as torch autograd Functions running the integer GEMMs.

Per layer and step (docs/algorithms.md §0):

* forward ``Y = X·W``: X and W are quantized (:mod:`fxpsim.training.quantizers`), the GEMM
  of their codes runs on the configured MAC array (:mod:`fxpsim.training.qgemm` ->
  :mod:`fxpsim.fixedpoint.macarray`: its accumulator, psum register and add order), and the
  accumulators go through the configured requantizer (``scale_format``) to ``a_bits`` codes
  (:func:`~fxpsim.training.qgemm.forward_output`). The vector unit gets ``fp32(code·Δy)``;
  BN / ReLU / pooling / residual adds run there as plain torch fp32 ops.
* backward: dY is quantized ONCE (gradient format, interval policy, rounding; stochastic
  draws from the hardware RNG) and the same codes feed backward-data ``dX = dY·Wᵀ`` and
  backward-weight ``dW = Xᵀ·dY`` (as in LBT). The X and W codes are those of the forward.
  With per-channel weight scales, backward-data uses a per-tensor copy of W quantized from
  the fp32 master weights (one scale must factor out of its K-reduction). Their outputs are
  ``fp32(acc·Δ·Δ)`` (product in float64, one rounding).
* A GEMM whose two operands are both quantized runs on integer codes; if either operand's
  kind is fp32 (bits None) it runs as an fp32 torch op on the (dequantized) operands. With
  every kind fp32 the layer equals torch's conv2d / linear.

Conv GEMMs are lowered by :mod:`fxpsim.fixedpoint.im2col` (shapes per pass:
:func:`fxpsim.vocab.conv_gemm_shape`); the records of what ran come from the operands the
kernels were given. Backward-data is skipped when the input needs no gradient (the first
layer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from fxpsim.fixedpoint.im2col import im2col, pixel_cols, place_nhwc
from fxpsim.fixedpoint.intmm import static_ok
from fxpsim.training.formats import NumericsConfig
from fxpsim.training.qgemm import (
    PassGemms,
    Probe,
    codes_to_nchw,
    forward_output,
    fused_output,
    plan_output,
    scaled,
)
from fxpsim.training.qkernels import pix_to_nchw, rows_to_nchw, scaled_kcij, weight_mat
from fxpsim.training.quantizers import (
    QTensor,
    qmax_of,
    quantize_padded_nhwc,
    quantize_symmetric,
)
from fxpsim.training.stats import Counters, LayerStats, StatsConfig
from fxpsim.vocab import conv_gemm_shape, linear_gemm_shape


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
    probe: Probe | None = None  # sees the forward output stage (tests)
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


def _gemms(rt: LayerRuntime, op: str, pass_name: str) -> PassGemms:
    return PassGemms(rt.name, op, pass_name, rt.numerics)


def _emit(rt: LayerRuntime, g: PassGemms) -> None:
    g.emit(rt.counters, rt.stats)


# ---- conv2d --------------------------------------------------------------------------------
# The layer tests compare the whole layer (gathers, GEMM paths, rescale) with Python-int
# convolutions; the kernels live in :mod:`fxpsim.training.qkernels`.

def _scale_vec(scale: np.ndarray | float, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,)).copy()


def _fast(terms: int, a: QTensor, b: QTensor, nc: NumericsConfig) -> bool:
    int8 = a.codes.dtype == torch.int8 and b.codes.dtype == torch.int8
    return static_ok(terms, a.qmax, b.qmax, nc.array_model, int8)


def _pixel_major(vals: torch.Tensor, pixel: bool) -> np.ndarray:
    """Accumulators (B·P, n), channels last, of a pixel- or channel-major GEMM result."""
    return vals.numpy() if pixel else np.ascontiguousarray(vals.numpy().T)


class QConv2dFn(torch.autograd.Function):
    """``conv2d(x, w)`` (no bias) through the integer GEMMs; see the module docstring.

    Layouts: in general each GEMM runs channel-major as Wᵀᵀ·colsᵀ (outputs x k in the
    hardware's (c, i, j) order; values and events as in Y = cols·W). When the static
    no-overflow proof holds (:func:`~fxpsim.fixedpoint.intmm.static_ok`; then the k order is
    irrelevant and there are no events) forward and backward-data run pixel-major on padded
    NHWC code buffers (k order (i, j, c)), and the forward columns are kept for
    backward-weight, whose reduction runs over (b, oh, ow) in order in every layout."""

    @staticmethod
    def forward(ctx, x, w, rt: LayerRuntime, geom: ConvGeom):
        return QConv2dFn._forward(ctx, x, w, rt, geom)

    @staticmethod
    def backward(ctx, gy):
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
            static_ok(cg * kh * kw, qmax_of(a_bits), qmax_of(w_bits), nc.array_model)
        xq, wq = quant_act(rt, x, (ph, pw) if fast else None), quant_weight(rt, w)
        buf, rt.act_buf = rt.act_buf, None
        gemms = _gemms(rt, "conv2d", "forward")
        ctx.cols = None
        if xq is not None and wq is not None:
            out = np.empty((nb, k, oh, ow), dtype=np.float32)
            if fast and buf is None:
                buf = place_nhwc(xq.codes, ph, pw, (1, 1), (h + 2 * ph, wd + 2 * pw))
            kept, accs = [], []
            for gi in range(g):
                w_g = wq.codes[gi * kg:(gi + 1) * kg]
                if fast:
                    assert buf is not None
                    cols = pixel_cols(buf, gi * cg, (gi + 1) * cg, (kh, kw), geom.stride,
                                      (oh, ow), rt.take(f"cols{gi}"))
                    w_mat = torch.empty((kh * kw * cg, kg), dtype=wq.codes.dtype)
                    weight_mat(wq.codes.numpy(), gi * kg, (gi + 1) * kg, False, w_mat.numpy())
                    vals = gemms.run(cols, w_mat, xq.qmax, wq.qmax, out=rt.take(f"mm{gi}"))
                    kept.append(cols)
                else:
                    cols = im2col(xq.codes, gi * cg, (gi + 1) * cg, (kh, kw), geom.stride,
                                  geom.padding, (1, 1), (oh, ow))
                    vals = gemms.run(w_g.reshape(kg, -1), cols, wq.qmax, xq.qmax, swap=True)
                accs.append((gi * kg, _pixel_major(vals, fast), vals))  # (k0, acc, buffer)
            # one output stage for the whole layer (per-call kernel overhead dominates the
            # tiny GEMMs of depthwise convs)
            acc = accs[0][1] if g == 1 else np.concatenate([a for _, a, _ in accs], axis=1)
            plan = plan_output(acc, _scale_vec(xq.scale * wq.scale, k), nc)
            if not fused_output(plan, acc, nc, rt.stats, rt.probe, out):
                codes = forward_output(plan, acc, nc, rt.rng(), rt.stats, rt.probe)
                codes_to_nchw(codes, plan.delta_y, out)
            for gi, (_, _, vals) in enumerate(accs):
                if vals.dtype == torch.int32:
                    rt.give(f"mm{gi}", vals)
            ctx.cols = kept or None
            y = torch.from_numpy(out)
        else:
            xin = x if xq is None else xq.dequantize()
            win = w if wq is None else wq.dequantize()
            y = F.conv2d(xin, win, None, geom.stride, geom.padding, 1, g)
            gemms.float_gemm(*conv_gemm_shape("forward", nb, (c, h, wd), (k, oh, ow), (kh, kw),
                                              g))
        _emit(rt, gemms)
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
            gemms = _gemms(rt, "conv2d", "backward_data")
            if gq is not None and wb is not None:
                out = np.empty((nb, c, h, wd), dtype=np.float32)
                scale = _scale_vec(gq.scale * wb.scale, c)
                fast = _fast(kg * kh * kw, gq, wb, nc)
                # dX: a stride-1 correlation of dY zero-dilated by the stride and padded by
                # kernel-1-pad with the flipped kernel
                dpad = (kh - 1 - ph, kw - 1 - pw)
                buf = place_nhwc(gq.codes, dpad[0], dpad[1], (sh, sw),
                                 (h + kh - 1, wd + kw - 1), rt.take("dbuf")) if fast else None
                parts = []
                for gi in range(g):
                    if fast:
                        cols = pixel_cols(buf, gi * kg, (gi + 1) * kg, (kh, kw), (1, 1),
                                          (h, wd), rt.take("dcols"))
                        w_mat = torch.empty((kh * kw * kg, cg), dtype=wb.codes.dtype)
                        weight_mat(wb.codes.numpy(), gi * kg, (gi + 1) * kg, True,
                                   w_mat.numpy())
                        out_buf = rt.take("dmm") if g == 1 else None
                        vals = gemms.run(cols, w_mat, gq.qmax, wb.qmax, out=out_buf)
                        parts.append(vals.numpy())
                        rt.give("dcols", cols)
                    else:
                        cols = im2col(gq.codes, gi * kg, (gi + 1) * kg, (kh, kw), (1, 1), dpad,
                                      (sh, sw), (h, wd))
                        wf_g = wb.codes[gi * kg:(gi + 1) * kg].flip(2, 3)
                        w_mat = wf_g.permute(1, 0, 2, 3).reshape(cg, kg * kh * kw)
                        vals = gemms.run(w_mat, cols, wb.qmax, gq.qmax, swap=True)
                        rows_to_nchw(vals.numpy(), scale, gi * cg, out.reshape(nb, c, h * wd))
                if parts:  # one rescale for all groups (see the forward)
                    pix_to_nchw(parts[0] if g == 1 else np.concatenate(parts, axis=1), scale,
                                0, out)
                    if g == 1 and vals.dtype == torch.int32:
                        rt.give("dmm", vals)
                rt.give("dbuf", buf)
                dx = torch.from_numpy(out)
            else:
                g_in = gy if gq is None else gq.dequantize()
                w_in = w if wb is None else wb.dequantize()
                dx = torch.nn.grad.conv2d_input(ctx.x_shape, w_in, g_in, geom.stride,
                                                geom.padding, 1, g)
                gemms.float_gemm(*conv_gemm_shape("backward_data", nb, (c, h, wd), (k, oh, ow),
                                                  (kh, kw), g))
            _emit(rt, gemms)
        if ctx.needs_input_grad[1]:
            gemms = _gemms(rt, "conv2d", "backward_weight")
            if gq is not None and xq is not None:
                dw_np = np.empty((k, cg, kh, kw), dtype=np.float32)
                for gi in range(g):
                    # dY of the group as (n, B·OH·OW): every sum runs over (b, oh, ow) in order
                    g_mat = gq.codes[:, gi * kg:(gi + 1) * kg].transpose(0, 1).reshape(kg, -1)
                    if ctx.cols is not None:  # pixel-major (B·OH·OW, (i, j, c))
                        vals = gemms.run(g_mat, ctx.cols[gi], gq.qmax, xq.qmax, swap=True)
                        scaled_kcij(vals.numpy(), float(xq.scale * gq.scale),
                                    dw_np[gi * kg:(gi + 1) * kg])
                    else:
                        cols = im2col(xq.codes, gi * cg, (gi + 1) * cg, (kh, kw), geom.stride,
                                      geom.padding, (1, 1), (oh, ow))
                        vals = gemms.run(cols, g_mat.t(), xq.qmax, gq.qmax)
                        dw_g = scaled(vals.numpy(), xq.scale * gq.scale).numpy().T
                        dw_np[gi * kg:(gi + 1) * kg] = dw_g.reshape(kg, cg, kh, kw)
                dw = torch.from_numpy(dw_np)
            else:
                g_in = gy if gq is None else gq.dequantize()
                x_in = x_f if xq is None else xq.dequantize()
                dw = torch.nn.grad.conv2d_weight(x_in, w.shape, g_in, geom.stride,
                                                 geom.padding, 1, g)
                gemms.float_gemm(*conv_gemm_shape("backward_weight", nb, (c, h, wd),
                                                  (k, oh, ow), (kh, kw), g))
            _emit(rt, gemms)
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
    def forward(ctx, x, w, rt: LayerRuntime):
        return QLinearFn._forward(ctx, x, w, rt)

    @staticmethod
    def backward(ctx, gy):
        return QLinearFn._backward(ctx, gy)

    @staticmethod
    def _forward(ctx, x, w, rt: LayerRuntime):
        b, n_in = x.shape
        n_out = w.shape[0]
        xq, wq = quant_act(rt, x), quant_weight(rt, w)
        gemms = _gemms(rt, "linear", "forward")
        if xq is not None and wq is not None:
            nc = rt.numerics
            acc = gemms.run(xq.codes, wq.codes.t(), xq.qmax, wq.qmax).numpy()
            plan = plan_output(acc, _scale_vec(xq.scale * wq.scale, n_out), nc)
            codes = forward_output(plan, acc, nc, rt.rng(), rt.stats, rt.probe)
            y = scaled(codes, plan.delta_y)
        else:
            xin = x if xq is None else xq.dequantize()
            win = w if wq is None else wq.dequantize()
            y = F.linear(xin, win)
            gemms.float_gemm(*linear_gemm_shape("forward", b, n_in, n_out))
        _emit(rt, gemms)
        ctx.rt, ctx.xq, ctx.wq = rt, xq, wq
        ctx.save_for_backward(x if xq is None else None, w)
        return y

    @staticmethod
    def _backward(ctx, gy):
        rt, xq, wq = ctx.rt, ctx.xq, ctx.wq
        x_f, w = ctx.saved_tensors
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
            gemms = _gemms(rt, "linear", "backward_data")
            if gq is not None and wb is not None:
                vals = gemms.run(gq.codes, wb.codes, gq.qmax, wb.qmax)
                dx = scaled(vals.numpy(), gq.scale * wb.scale)
            else:
                g_in = gy if gq is None else gq.dequantize()
                dx = g_in @ (w if wb is None else wb.dequantize())
                gemms.float_gemm(*linear_gemm_shape("backward_data", b, n_in, n_out))
            _emit(rt, gemms)
        if ctx.needs_input_grad[1]:
            gemms = _gemms(rt, "linear", "backward_weight")
            if gq is not None and xq is not None:
                vals = gemms.run(xq.codes.t(), gq.codes, xq.qmax, gq.qmax)
                dw = scaled(vals.numpy(), xq.scale * gq.scale).t().contiguous()
            else:
                g_in = gy if gq is None else gq.dequantize()
                dw = g_in.t() @ (x_f if xq is None else xq.dequantize())
                gemms.float_gemm(*linear_gemm_shape("backward_weight", b, n_in, n_out))
            _emit(rt, gemms)
        return dx, dw, None
