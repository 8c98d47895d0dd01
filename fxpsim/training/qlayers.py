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
from fxpsim.training.fwdscales import ste
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
    code_max,
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

def quant_act(rt: LayerRuntime, x: torch.Tensor, pad: tuple[int, int] | None = None,
              clip: float | None = None) -> QTensor | None:
    """Quantized activations; with ``pad`` (conv fast path) the codes may come as the
    interior of a padded NHWC buffer, kept in ``rt.act_buf`` (else ``rt.act_buf`` is None).
    ``clip``: the learned clip u_A (else min-max)."""
    nc = rt.numerics
    rt.act_buf = None
    if nc.activations.is_float:
        return None
    fused = quantize_padded_nhwc(x, nc.activations, pad, clip=clip) if pad is not None \
        else None
    if fused is not None:
        q, rt.act_buf = fused
    else:
        q = quantize_symmetric(x, nc.activations, rng=rt.rng(), random_bits=nc.random_bits,
                               clip=clip)
    rt.counters.vector(rt.name, rt.op, "forward", "quantize_act", x.numel())
    rt.stats.act_clipped += q.n_clipped
    rt.stats.act_elems += x.numel()
    if rt.stats_cfg.active:
        rt.stats.add_sqnr("act", x.detach().numpy(), q.dequantize().numpy())
    return q


def quant_weight(rt: LayerRuntime, w: torch.Tensor, *, per_tensor: bool = False,
                 kind: str = "quantize_weight", pass_name: str = "forward",
                 clip: float | None = None) -> QTensor | None:
    """Quantized weights; ``clip``: the learned clip s_W (no max reduction: recorded as
    ``quantize_weight_clip``)."""
    nc = rt.numerics
    if nc.weights.is_float:
        return None
    per_channel = nc.weights.granularity == "per_channel" and not per_tensor
    q = quantize_symmetric(w, nc.weights, rng=rt.rng(), random_bits=nc.random_bits,
                           per_channel=per_channel, clip=clip)
    rt.counters.vector(rt.name, rt.op, pass_name,
                       f"{kind}_clip" if clip is not None else kind, w.numel())
    return q


def quant_grad(rt: LayerRuntime, gy: torch.Tensor, granularity: str = "per_tensor",
               copy: bool = False) -> QTensor | None:
    """dY quantized per tensor, per channel (axis 1: one scale per output channel, applied
    to the rows of dW) or per sample (axis 0: one per batch row, applied to the rows of dX).
    ``copy``: the per-tensor copy for the GEMM whose reduction crosses those scales (recorded
    as ``quantize_grad_copy``; LBT's observer and the clip statistics see the main one)."""
    nc = rt.numerics
    if rt.grad_observer is not None and not copy:
        rt.grad_observer(rt.name, gy)
    if nc.gradients.is_float:
        return None
    factor = {"minmax": 1.0, "lbt": rt.gamma, "prc": nc.prc_clip}[nc.grad_interval]
    kw = dict(rng=rt.rng(), random_bits=nc.random_bits, clip_factor=factor)
    if granularity == "per_channel":  # channels to axis 0 and back
        q = quantize_symmetric(gy.transpose(0, 1), nc.gradients, per_channel=True,
                               **kw)  # type: ignore[arg-type]
        q = replace(q, codes=q.codes.transpose(0, 1).contiguous())
    else:
        q = quantize_symmetric(gy, nc.gradients, per_channel=granularity == "per_sample",
                               **kw)  # type: ignore[arg-type]
    rt.counters.vector(rt.name, rt.op, "backward",
                       "quantize_grad_copy" if copy else "quantize_grad", gy.numel())
    if copy:
        return q
    rt.stats.grad_clipped += q.n_clipped
    rt.stats.grad_elems += gy.numel()
    if rt.stats_cfg.active:
        rt.stats.add_sqnr("grad", gy.detach().numpy(), _dequant_grad(q, granularity).numpy())
    return q


def _dequant_grad(q: QTensor, granularity: str) -> torch.Tensor:
    if granularity != "per_channel":
        return q.dequantize()
    c = q.codes.numpy().astype(np.float64)
    s = q.scale.reshape((1, -1) + (1,) * (c.ndim - 2))
    return torch.from_numpy((c * s).astype(np.float32))


def backward_grads(rt: LayerRuntime, gy: torch.Tensor, need_dx: bool
                   ) -> tuple[QTensor | None, QTensor | None]:
    """(dY codes for backward-data, dY codes for backward-weight) by the gradient
    granularity: per tensor one quantization feeds both; per channel the weight GEMM gets
    per-channel scales (they factor out of its batch reduction) and backward-data a
    per-tensor copy; per sample the reverse (see :func:`quant_grad`)."""
    gran = rt.numerics.gradients.granularity
    if gran == "per_channel":
        gw = quant_grad(rt, gy, "per_channel")
        return (quant_grad(rt, gy, copy=True) if need_dx else None), gw
    if gran == "per_sample" and need_dx:
        gd = quant_grad(rt, gy, "per_sample")
        return gd, quant_grad(rt, gy, copy=True)
    g = quant_grad(rt, gy)
    return g, g


def row_scaled(acc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """fp32(acc·scale) with ``scale`` broadcast against ``acc`` (product in float64, one
    rounding; as :func:`~fxpsim.training.qgemm.scaled`)."""
    with np.errstate(over="ignore"):
        return (acc.astype(np.float64) * scale).astype(np.float32)


def clip_values(clips: torch.Tensor | None) -> tuple[float | None, float | None]:
    """The learned (s_W, u_A) as floats (their magnitudes, as the authors' ``|s|``)."""
    if clips is None:
        return None, None
    sw, sa = (abs(float(v)) for v in clips.detach())
    return sw, sa


def clip_grads(ctx, dx: torch.Tensor | None, dw: torch.Tensor | None, x: torch.Tensor | None,
               w: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None,
                                         torch.Tensor | None]:
    """STE of the learned clips (see :mod:`fxpsim.training.fwdscales`): masked dX, dW and
    the gradient of (s_W, u_A); vector work recorded as ``scale_grad`` (backward-weight for
    W, backward-data for X)."""
    if ctx.clips is None:
        return dx, dw, None
    rt, (sw, sa), xq, wq = ctx.rt, ctx.clips, ctx.xq_fwd, ctx.wq_fwd
    d = [0.0, 0.0]
    if dw is not None and wq is not None and sw is not None:
        dw, d[0] = ste(dw, w, wq.codes, wq.qmax, sw, True)
        rt.counters.record(rt.name, "backward_weight", "scale_grad", w.numel())
    if dx is not None and xq is not None and x is not None and sa is not None:
        dx, d[1] = ste(dx, x, xq.codes, xq.qmax, sa, xq.signed)
        rt.counters.record(rt.name, "backward_data", "scale_grad", x.numel())
    return dx, dw, torch.tensor(d, dtype=torch.float32)


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
    def forward(ctx, x, w, rt: LayerRuntime, geom: ConvGeom, clips=None):
        return QConv2dFn._forward(ctx, x, w, rt, geom, clips)

    @staticmethod
    def backward(ctx, gy):
        return QConv2dFn._backward(ctx, gy)

    @staticmethod
    def _forward(ctx, x, w, rt: LayerRuntime, geom: ConvGeom, clips=None):
        nb, c, h, wd = x.shape
        k, cg, kh, kw = w.shape
        (sh, sw), (ph, pw), g = geom.stride, geom.padding, geom.groups
        kg = k // g
        oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
        nc = rt.numerics
        a_bits, w_bits = nc.activations.bits, nc.weights.bits
        a_max = code_max(nc.activations) if a_bits is not None else 0
        fast = a_bits is not None and w_bits is not None and a_max <= 127 and w_bits <= 8 and \
            static_ok(cg * kh * kw, a_max, qmax_of(w_bits), nc.array_model)
        clip_w, clip_a = clip_values(clips)
        xq = quant_act(rt, x, (ph, pw) if fast else None, clip=clip_a)
        wq = quant_weight(rt, w, clip=clip_w)
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
                    vals = gemms.run(cols, w_mat, xq.qmax, wq.qmax, out=rt.take(f"mm{gi}"),
                                     signed=(xq.signed, True))
                    kept.append(cols)
                else:
                    cols = im2col(xq.codes, gi * cg, (gi + 1) * cg, (kh, kw), geom.stride,
                                  geom.padding, (1, 1), (oh, ow))
                    vals = gemms.run(w_g.reshape(kg, -1), cols, wq.qmax, xq.qmax, swap=True,
                                     signed=(True, xq.signed))
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
        ctx.xq_fwd, ctx.wq_fwd, ctx.clips = xq, wq, (clip_w, clip_a) if clips is not None \
            else None
        ctx.save_for_backward(x if xq is None or nc.bwd_requant or clips is not None else None,
                              w)
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
        gd, gw = backward_grads(rt, gy, ctx.needs_input_grad[0])
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
            if gd is not None and wb is not None:
                gq = gd
                out = np.empty((nb, c, h, wd), dtype=np.float32)
                per_sample = gq.scale.ndim == 1  # one scale per batch row of dY
                s_b = gq.scale * wb.scale  # per sample: (B,)
                scale = _scale_vec(1.0 if per_sample else s_b, c)
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
                        if per_sample:  # (Cg, B·H·W) rows: scale per batch row
                            acc = vals.numpy().reshape(cg, nb, h * wd)
                            out[:, gi * cg:(gi + 1) * cg] = row_scaled(
                                acc, s_b[None, :, None]).transpose(1, 0, 2).reshape(
                                    nb, cg, h, wd)
                        else:
                            rows_to_nchw(vals.numpy(), scale, gi * cg,
                                         out.reshape(nb, c, h * wd))
                if parts and per_sample:  # (B·H·W, C) pixel-major: scale per batch row
                    acc = (parts[0] if g == 1 else np.concatenate(parts, axis=1))
                    out[:] = row_scaled(acc.reshape(nb, h * wd, c), s_b[:, None, None]
                                        ).transpose(0, 2, 1).reshape(nb, c, h, wd)
                elif parts:  # one rescale for all groups (see the forward)
                    pix_to_nchw(parts[0] if g == 1 else np.concatenate(parts, axis=1), scale,
                                0, out)
                    if g == 1 and vals.dtype == torch.int32:
                        rt.give("dmm", vals)
                rt.give("dbuf", buf)
                dx = torch.from_numpy(out)
            else:
                g_in = gy if gd is None else gd.dequantize()
                w_in = w if wb is None else wb.dequantize()
                dx = torch.nn.grad.conv2d_input(ctx.x_shape, w_in, g_in, geom.stride,
                                                geom.padding, 1, g)
                gemms.float_gemm(*conv_gemm_shape("backward_data", nb, (c, h, wd), (k, oh, ow),
                                                  (kh, kw), g))
            _emit(rt, gemms)
        if ctx.needs_input_grad[1]:
            gemms = _gemms(rt, "conv2d", "backward_weight")
            if gw is not None and xq is not None:
                gq = gw
                dw_np = np.empty((k, cg, kh, kw), dtype=np.float32)
                # per-channel dY: one scale per output channel k, i.e. per row of dW
                s_k = xq.scale * gq.scale
                for gi in range(g):
                    s_g = s_k[gi * kg:(gi + 1) * kg] if s_k.ndim == 1 else s_k
                    # dY of the group as (n, B·OH·OW): every sum runs over (b, oh, ow) in order
                    g_mat = gq.codes[:, gi * kg:(gi + 1) * kg].transpose(0, 1).reshape(kg, -1)
                    if ctx.cols is not None:  # pixel-major (B·OH·OW, (i, j, c))
                        vals = gemms.run(g_mat, ctx.cols[gi], gq.qmax, xq.qmax, swap=True,
                                         signed=(True, xq.signed))
                        if s_g.ndim == 0:
                            scaled_kcij(vals.numpy(), float(s_g), dw_np[gi * kg:(gi + 1) * kg])
                        else:  # per-channel dY: one scale per row k
                            dw_g = scaled(vals.numpy(), s_g[:, None]).view(kg, kh, kw, cg)
                            dw_np[gi * kg:(gi + 1) * kg] = dw_g.permute(0, 3, 1, 2).numpy()
                    else:
                        cols = im2col(xq.codes, gi * cg, (gi + 1) * cg, (kh, kw), geom.stride,
                                      geom.padding, (1, 1), (oh, ow))
                        vals = gemms.run(cols, g_mat.t(), xq.qmax, gq.qmax,
                                         signed=(xq.signed, True))
                        dw_g = scaled(vals.numpy(), s_g).numpy().T
                        dw_np[gi * kg:(gi + 1) * kg] = dw_g.reshape(kg, cg, kh, kw)
                dw = torch.from_numpy(dw_np)
            else:
                g_in = gy if gw is None else _dequant_grad(gw, rt.numerics.gradients.granularity)
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
        dx, dw, dclips = clip_grads(ctx, dx, dw, x_f, w)
        return dx, dw, None, None, dclips


# ---- linear --------------------------------------------------------------------------------

class QLinearFn(torch.autograd.Function):
    """``x @ w.T`` (no bias) through the integer GEMMs; see the module docstring."""

    @staticmethod
    def forward(ctx, x, w, rt: LayerRuntime, clips=None):
        return QLinearFn._forward(ctx, x, w, rt, clips)

    @staticmethod
    def backward(ctx, gy):
        return QLinearFn._backward(ctx, gy)

    @staticmethod
    def _forward(ctx, x, w, rt: LayerRuntime, clips=None):
        b, n_in = x.shape
        n_out = w.shape[0]
        clip_w, clip_a = clip_values(clips)
        xq, wq = quant_act(rt, x, clip=clip_a), quant_weight(rt, w, clip=clip_w)
        gemms = _gemms(rt, "linear", "forward")
        if xq is not None and wq is not None:
            nc = rt.numerics
            acc = gemms.run(xq.codes, wq.codes.t(), xq.qmax, wq.qmax,
                            signed=(xq.signed, True)).numpy()
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
        ctx.xq_fwd, ctx.wq_fwd, ctx.clips = xq, wq, (clip_w, clip_a) if clips is not None \
            else None
        ctx.save_for_backward(x if xq is None or clips is not None else None, w)
        return y

    @staticmethod
    def _backward(ctx, gy):
        rt, xq, wq = ctx.rt, ctx.xq, ctx.wq
        x_f, w = ctx.saved_tensors
        gy = gy.contiguous()
        b, n_out = gy.shape
        n_in = w.shape[1]
        gd, gw = backward_grads(rt, gy, ctx.needs_input_grad[0])
        dx = dw = None
        if ctx.needs_input_grad[0]:
            wb = wq
            if wq is not None and wq.scale.ndim == 1:
                wb = quant_weight(rt, w, per_tensor=True, kind="quantize_weight_bwd",
                                  pass_name="backward")
            gemms = _gemms(rt, "linear", "backward_data")
            if gd is not None and wb is not None:
                vals = gemms.run(gd.codes, wb.codes, gd.qmax, wb.qmax)
                s = gd.scale * wb.scale  # per sample: one scale per row of dX
                dx = scaled(vals.numpy(), s if s.ndim == 0 else s[:, None])
            else:
                g_in = gy if gd is None else gd.dequantize()
                dx = g_in @ (w if wb is None else wb.dequantize())
                gemms.float_gemm(*linear_gemm_shape("backward_data", b, n_in, n_out))
            _emit(rt, gemms)
        if ctx.needs_input_grad[1]:
            gemms = _gemms(rt, "linear", "backward_weight")
            if gw is not None and xq is not None:
                vals = gemms.run(xq.codes.t(), gw.codes, xq.qmax, gw.qmax,
                                 signed=(xq.signed, True))
                # per-channel dY: one scale per output feature, i.e. per column here
                dw = scaled(vals.numpy(), xq.scale * gw.scale).t().contiguous()
            else:
                g_in = gy if gw is None else _dequant_grad(gw, rt.numerics.gradients.granularity)
                dw = g_in.t() @ (x_f if xq is None else xq.dequantize())
                gemms.float_gemm(*linear_gemm_shape("backward_weight", b, n_in, n_out))
            _emit(rt, gemms)
        dx, dw, dclips = clip_grads(ctx, dx, dw, x_f, w)
        return dx, dw, None, dclips
