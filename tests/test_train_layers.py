"""Quantized conv2d / linear layers against Python-int references (accumulators and the
configured requantizer's output codes), the float baseline against torch, the quantizers
against exact rationals, and NumericsConfig.from_hw."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fxpsim.errors import ConfigError
from fxpsim.fixedpoint import oracle
from fxpsim.fixedpoint.formats import QFormat
from fxpsim.fixedpoint.oracle_gemm import register_add
from fxpsim.fixedpoint.requantize import quantize_multiplier
from fxpsim.fixedpoint.rng import LFSR, Philox
from fxpsim.training.formats import NumericsConfig, RngSpec, TensorNumerics
from fxpsim.training.qlayers import ConvGeom, LayerRuntime, QConv2dFn, QLinearFn
from fxpsim.training.quantizers import quantize_symmetric, scale_from_clip
from fxpsim.training.stats import Counters, LayerStats, StatsConfig

# ---- Python-int references (hardware order, one register per output) ------------------------


def _acc(terms, bits, ovf):
    acc, ev = 0, 0
    for t in terms:
        acc, e = register_add(acc, t, bits, ovf)
        ev += e
    return acc, ev


def conv_ref(x, w, stride, pad, groups, bits, ovf):
    """Forward: y[b,k,oh,ow] = sum over (c,i,j) of x[b,c,oh*s+i-p, ow*s+j-p]*w[k,c,i,j]."""
    nb, h, wd = len(x), len(x[0][0]), len(x[0][0][0])
    k, cg, kh, kw = len(w), len(w[0]), len(w[0][0]), len(w[0][0][0])
    kg = k // groups
    oh, ow = (h + 2 * pad[0] - kh) // stride[0] + 1, (wd + 2 * pad[1] - kw) // stride[1] + 1
    out = np.zeros((nb, k, oh, ow), dtype=object)
    events = 0
    for b in range(nb):
        for kk in range(k):
            g = kk // kg
            for y in range(oh):
                for z in range(ow):
                    terms = []
                    for cc in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                hh, ww = y * stride[0] + i - pad[0], z * stride[1] + j - pad[1]
                                inside = 0 <= hh < h and 0 <= ww < wd
                                v = x[b][g * cg + cc][hh][ww] if inside else 0
                                terms.append(v * w[kk][cc][i][j])
                    out[b, kk, y, z], e = _acc(terms, bits, ovf)
                    events += e
    return out, events


def dgrad_ref(g, w, x_hw, stride, pad, groups, bits, ovf):
    """dx[b,c,h,w] = sum over (k, i', j') of dY[b,k,(h+p-i)/s,(w+p-j)/s]*w[k,c,i,j] with
    i = kh-1-i' (flipped kernel order), terms with a non-integer or out-of-range index = 0."""
    nb, k, oh, ow = len(g), len(g[0]), len(g[0][0]), len(g[0][0][0])
    _, cg, kh, kw = len(w), len(w[0]), len(w[0][0]), len(w[0][0][0])
    kg = k // groups
    h, wd = x_hw
    out = np.zeros((nb, cg * groups, h, wd), dtype=object)
    events = 0
    for b in range(nb):
        for c in range(cg * groups):
            grp, cc = c // cg, c % cg
            for y in range(h):
                for z in range(wd):
                    terms = []
                    for kk in range(grp * kg, (grp + 1) * kg):
                        for ip in range(kh):
                            for jp in range(kw):
                                i, j = kh - 1 - ip, kw - 1 - jp
                                t, u = y + pad[0] - i, z + pad[1] - j
                                ok = (t % stride[0] == 0 and u % stride[1] == 0
                                      and 0 <= t // stride[0] < oh and 0 <= u // stride[1] < ow)
                                v = g[b][kk][t // stride[0]][u // stride[1]] if ok else 0
                                terms.append(v * w[kk][cc][i][j])
                    out[b, c, y, z], e = _acc(terms, bits, ovf)
                    events += e
    return out, events


def wgrad_ref(x, g, kernel, stride, pad, groups, bits, ovf):
    """dw[k,c,i,j] = sum over (b, oh, ow) of x[b,c,oh*s+i-p,ow*s+j-p]*dY[b,k,oh,ow]."""
    nb, c, h, wd = len(x), len(x[0]), len(x[0][0]), len(x[0][0][0])
    k, oh, ow = len(g[0]), len(g[0][0]), len(g[0][0][0])
    kh, kw = kernel
    kg, cg = k // groups, c // groups
    out = np.zeros((k, cg, kh, kw), dtype=object)
    events = 0
    for kk in range(k):
        grp = kk // kg
        for cc in range(cg):
            for i in range(kh):
                for j in range(kw):
                    terms = []
                    for b in range(nb):
                        for y in range(oh):
                            for z in range(ow):
                                hh, ww = y * stride[0] + i - pad[0], z * stride[1] + j - pad[1]
                                inside = 0 <= hh < h and 0 <= ww < wd
                                v = x[b][grp * cg + cc][hh][ww] if inside else 0
                                terms.append(v * g[b][kk][y][z])
                    out[kk, cc, i, j], e = _acc(terms, bits, ovf)
                    events += e
    return out, events


def mm_ref(a, b, bits, ovf):
    """(M,K) x (K,N) Python ints in k order."""
    m, kk, n = len(a), len(b), len(b[0])
    out = np.zeros((m, n), dtype=object)
    events = 0
    for i in range(m):
        for j in range(n):
            out[i, j], e = _acc([a[i][t] * b[t][j] for t in range(kk)], bits, ovf)
            events += e
    return out, events


def _ints(t: torch.Tensor):
    return t.numpy().astype(np.int64).tolist()


def _runtime(nc: NumericsConfig, seed: int = 5, op: str = "conv2d") -> LayerRuntime:
    rng = nc.rng.build(seed)
    return LayerRuntime("L", op, nc, Counters(), LayerStats("L"), StatsConfig(), lambda: rng)


def _nc(bits_w, bits_a, bits_g, acc_bits, ovf, scale="pow2", g_round="stochastic",
        scale_format="int32_mult_shift", a_round="half_even"):
    return NumericsConfig(
        weights=TensorNumerics(bits_w, "half_even", scale=scale),
        activations=TensorNumerics(bits_a, a_round, scale=scale),
        gradients=TensorNumerics(bits_g, g_round, scale=scale),
        acc_bits=acc_bits, acc_overflow=ovf, rng=RngSpec("philox"), random_bits=8,
        scale_format=scale_format)


def _probe(rt: LayerRuntime) -> list:
    """Record what the forward output stage saw: (k0, acc, codes, stored scales, Δy)."""
    seen: list = []
    rt.probe = lambda pass_name, k0, acc, codes, sc, dy: seen.append(
        (k0, acc.copy(), codes.copy(), sc, dy))
    return seen


def _probe_nchw(seen: list, idx: int, shape) -> np.ndarray:
    """Group results (B·OH·OW, n) of the probe put back into an NCHW (or (B, N)) array."""
    out = np.zeros(shape, dtype=np.int64)
    for item in seen:
        k0, arr = item[0], item[idx]
        if len(shape) == 2:
            out[:, k0:k0 + arr.shape[1]] = arr
        else:
            nb, _, oh, ow = shape
            out[:, k0:k0 + arr.shape[1]] = arr.reshape(nb, oh, ow, -1).transpose(0, 3, 1, 2)
    return out


def _check_output(y: torch.Tensor, seen: list) -> None:
    """The layer's output is fp32(code·Δy) of the output stage's codes."""
    codes = _probe_nchw(seen, 2, tuple(y.shape))
    want = (codes.astype(np.float64) * seen[0][4]).astype(np.float32)
    assert np.array_equal(y.detach().numpy(), want)


def _as_acc(t: torch.Tensor, scale) -> np.ndarray:
    """Integer accumulator values back from a pow2-scaled fp32 output (exact: |acc| < 2^24)."""
    v = t.detach().double().numpy() / scale
    assert np.array_equal(v, np.round(v))
    return v.astype(np.int64)


CONV_CASES = [
    # (stride, pad, groups, w/a/g bits, acc bits, overflow)
    ((1, 1), (1, 1), 1, 8, 32, "saturate"),
    ((2, 2), (1, 1), 1, 8, 32, "saturate"),
    ((1, 1), (1, 1), 1, 8, 12, "saturate"),  # narrow accumulator: overflow matters
    ((2, 2), (1, 1), 1, 8, 16, "wrap"),
    ((2, 1), (0, 1), 1, 8, 12, "saturate_symmetric"),
    ((1, 1), (1, 1), 1, 5, 12, "saturate"),
    ((2, 2), (1, 1), 2, 8, 13, "saturate"),  # grouped conv
]


@pytest.mark.parametrize("stride,pad,groups,bits,acc_bits,ovf", CONV_CASES)
def test_conv_matches_python_int_reference(stride, pad, groups, bits, acc_bits, ovf):
    """Forward, backward-data and backward-weight accumulators equal the Python-int
    reference exactly (values and overflow events); dY is quantized once (stochastic,
    Philox) and the same codes feed both backward GEMMs."""
    gen = torch.Generator().manual_seed(11)
    nb, c, k, h = 2, 2, (3 if groups == 1 else 4), 4
    x = torch.randn(nb, c, h, h, generator=gen).requires_grad_()
    w = torch.randn(k, c // groups, 3, 3, generator=gen).requires_grad_()
    nc = _nc(bits, bits, bits, acc_bits, ovf)
    rt = _runtime(nc, seed=5)
    seen = _probe(rt)
    geom = ConvGeom((3, 3), stride, pad, groups)
    y = QConv2dFn.apply(x, w, rt, geom)
    gy = torch.randn(y.shape, generator=gen)
    y.backward(gy)

    xq = quantize_symmetric(x, nc.activations)
    wq = quantize_symmetric(w, nc.weights)
    gq = quantize_symmetric(gy, nc.gradients, rng=Philox(nc.rng.stream_seed(5, 0)),
                            random_bits=8)
    ref_y, ev_y = conv_ref(_ints(xq.codes), _ints(wq.codes), stride, pad, groups, acc_bits, ovf)
    ref_dx, ev_dx = dgrad_ref(_ints(gq.codes), _ints(wq.codes), (h, h), stride, pad, groups,
                              acc_bits, ovf)
    ref_dw, ev_dw = wgrad_ref(_ints(xq.codes), _ints(gq.codes), (3, 3), stride, pad, groups,
                              acc_bits, ovf)
    assert np.array_equal(_probe_nchw(seen, 1, tuple(y.shape)), ref_y.astype(np.int64))
    _check_output(y, seen)
    assert np.array_equal(_as_acc(x.grad, gq.scale * wq.scale), ref_dx.astype(np.int64))
    assert np.array_equal(_as_acc(w.grad, xq.scale * gq.scale), ref_dw.astype(np.int64))
    assert rt.stats.acc_events == {"forward": ev_y, "backward_data": ev_dx,
                                   "backward_weight": ev_dw}
    if acc_bits == 12 and bits == 8:
        assert ev_y + ev_dx + ev_dw > 0  # the narrow accumulator did overflow
    assert [r.acc_events for r in rt.counters.gemms] == [ev_y, ev_dx, ev_dw]


def test_conv_fp32_scale_outputs_within_float_tolerance():
    """With fp32 scales the accumulators are those of the same integer codes; backward
    outputs are fp32(acc·Δ)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 4, 4, generator=gen).requires_grad_()
    w = torch.randn(3, 2, 3, 3, generator=gen).requires_grad_()
    nc = _nc(8, 8, 8, 32, "saturate", scale="fp32", g_round="half_even")
    rt = _runtime(nc)
    seen = _probe(rt)
    y = QConv2dFn.apply(x, w, rt, ConvGeom((3, 3), (2, 2), (1, 1), 1))
    gy = torch.randn(y.shape, generator=gen)
    y.backward(gy)
    xq, wq = quantize_symmetric(x, nc.activations), quantize_symmetric(w, nc.weights)
    gq = quantize_symmetric(gy, nc.gradients)
    assert float(xq.scale) != 2.0 ** np.round(np.log2(float(xq.scale)))  # not a power of 2
    ref_y, _ = conv_ref(_ints(xq.codes), _ints(wq.codes), (2, 2), (1, 1), 1, 32, "saturate")
    ref_dw, _ = wgrad_ref(_ints(xq.codes), _ints(gq.codes), (3, 3), (2, 2), (1, 1), 1, 32,
                          "saturate")
    assert np.array_equal(_probe_nchw(seen, 1, tuple(y.shape)), ref_y.astype(np.int64))
    _check_output(y, seen)
    exp_dw = ref_dw.astype(np.float64) * float(xq.scale) * float(gq.scale)
    np.testing.assert_allclose(w.grad.numpy(), exp_dw, rtol=1e-6, atol=0)


@pytest.mark.parametrize("acc_bits,ovf", [(32, "saturate"), (12, "saturate"), (14, "wrap")])
def test_linear_matches_python_int_reference(acc_bits, ovf):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 5, generator=gen).requires_grad_()
    w = torch.randn(4, 5, generator=gen).requires_grad_()
    nc = _nc(7, 7, 7, acc_bits, ovf)
    rt = _runtime(nc, seed=9, op="linear")
    seen = _probe(rt)
    y = QLinearFn.apply(x, w, rt)
    gy = torch.randn(y.shape, generator=gen)
    y.backward(gy)
    xq, wq = quantize_symmetric(x, nc.activations), quantize_symmetric(w, nc.weights)
    gq = quantize_symmetric(gy, nc.gradients, rng=Philox(nc.rng.stream_seed(9, 0)),
                            random_bits=8)
    xi, wi, gi = _ints(xq.codes), _ints(wq.codes), _ints(gq.codes)
    ref_y, ev_y = mm_ref(xi, [list(r) for r in zip(*wi, strict=True)], acc_bits, ovf)
    ref_dx, ev_dx = mm_ref(gi, wi, acc_bits, ovf)
    ref_dwt, ev_dw = mm_ref([list(r) for r in zip(*xi, strict=True)], gi, acc_bits, ovf)
    assert np.array_equal(_probe_nchw(seen, 1, tuple(y.shape)), ref_y.astype(np.int64))
    _check_output(y, seen)
    assert np.array_equal(_as_acc(x.grad, gq.scale * wq.scale), ref_dx.astype(np.int64))
    assert np.array_equal(_as_acc(w.grad, xq.scale * gq.scale), ref_dwt.T.astype(np.int64))
    assert rt.stats.acc_events == {"forward": ev_y, "backward_data": ev_dx,
                                   "backward_weight": ev_dw}
    if acc_bits == 12:
        assert ev_y + ev_dx + ev_dw > 0
    shapes = [r.shape for r in rt.counters.gemms]
    assert shapes == [("L", "forward", 3, 5, 4, 1), ("L", "backward_data", 3, 4, 5, 1),
                      ("L", "backward_weight", 5, 3, 4, 1)]


def _pow2_pair(real: Fraction) -> tuple[int, int]:
    """Nearest power of two in log2 (ties up), as (multiplier, shift); exact rationals."""
    e = 0
    while Fraction(2) ** e > real:
        e -= 1
    while Fraction(2) ** (e + 1) <= real:
        e += 1
    # real in [2^e, 2^(e+1)): the geometric midpoint is 2^e·sqrt(2)
    up = (real / Fraction(2) ** e) ** 2 >= 2
    exp = e + 1 if up else e
    return (1 << exp, 0) if exp >= 0 else (1, -exp)


@pytest.mark.parametrize("fmt", ["int32_mult_shift", "pow2_shift", "fp32_scale"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("a_round", ["half_even", "half_away", "floor"])
def test_output_codes_equal_requantize_of_accumulators(fmt, per_channel, a_round):
    """For each scale format: the layer's output codes are the Python-int requantizer
    (:mod:`fxpsim.fixedpoint.oracle`) of its accumulators, with Δy = the activation scale of
    the largest real output and each channel's multiplier Δx·Δw_c/Δy stored as the format
    stores it (computed here from exact rationals)."""
    gen = torch.Generator().manual_seed(21)
    x = torch.randn(2, 3, 5, 5, generator=gen)
    w = torch.randn(4, 3, 3, 3, generator=gen) * torch.tensor([1.0, 0.3, 2.0, 0.05]).view(-1, 1, 1, 1)
    nc = _nc(8, 8, 8, 32, "saturate", scale="fp32", scale_format=fmt, a_round=a_round)
    nc = NumericsConfig(nc.weights.__class__(8, "half_even",
                                             "per_channel" if per_channel else "per_tensor",
                                             "fp32"),
                        nc.activations, nc.gradients, acc_bits=32, rng=RngSpec("philox"),
                        random_bits=8, scale_format=fmt)
    rt = _runtime(nc)
    seen = _probe(rt)
    y = QConv2dFn.apply(x, w, rt, ConvGeom((3, 3), (1, 1), (1, 1), 1))
    xq = quantize_symmetric(x, nc.activations)
    wq = quantize_symmetric(w, nc.weights, per_channel=per_channel)
    ref, _ = conv_ref(_ints(xq.codes), _ints(wq.codes), (1, 1), (1, 1), 1, 32, "saturate")
    acc = np.asarray(ref.tolist(), dtype=object)  # (B, K, OH, OW) Python ints
    in_scale = [Fraction(float(xq.scale)) * Fraction(float(s))
                for s in np.broadcast_to(wq.scale, (4,))]
    real_max = max(abs(int(v)) * in_scale[c] for c in range(4) for v in acc[:, c].ravel())
    dy = float(scale_from_clip(np.float64(float(real_max)), 8, "fp32"))
    assert seen[0][4] == dy
    chans = [c for b in range(2) for c in range(4) for _ in range(25)]
    flat = [int(v) for v in acc.ravel()]
    reals = [s / Fraction(dy) for s in in_scale]
    if fmt == "fp32_scale":
        want, _, _ = oracle.requantize_fp32(flat, [float(r) for r in reals], chans, QFormat(8, 0),
                                            a_round)
    else:
        pairs = [quantize_multiplier(float(r)) if fmt == "int32_mult_shift" else _pow2_pair(r)
                 for r in reals]
        want, _, _ = oracle.requantize(flat, [p[0] for p in pairs], [p[1] for p in pairs],
                                       chans, QFormat(8, 0), a_round)
    got = _probe_nchw(seen, 2, tuple(y.shape))
    assert got.ravel().tolist() == want
    assert np.abs(got).max() >= 100  # the largest output lands near the top code
    _check_output(y, seen)
    # without a probe the integer formats take the fused requantize + NCHW kernel
    rt2 = _runtime(nc)
    y2 = QConv2dFn.apply(x, w, rt2, ConvGeom((3, 3), (1, 1), (1, 1), 1))
    assert torch.equal(y2, y)
    assert rt2.stats.out_elems == y.numel() and rt2.stats.out_saturated == rt.stats.out_saturated


def test_fused_output_stage_matches_oracle_on_ties_and_saturation():
    """The fused kernel against the Python-int requantizer on accumulators built to hit
    rounding ties, shift 0 and saturation, for every deterministic rounding the hardware
    configs name."""
    from fxpsim.fixedpoint.outstage import StoredScales
    from fxpsim.training.qgemm import OutputPlan, fused_output
    from fxpsim.training.stats import LayerStats

    rng = np.random.default_rng(3)
    nb, oh, ow, n = 2, 3, 5, 4
    acc = rng.integers(-2**20, 2**20, (nb * oh * ow, n)).astype(np.int32)
    acc[:4] = [[2**15, -(2**15), 3 * 2**14, -(3 * 2**14)]] * 4  # exact ties at shift 16
    acc[4:6] = 2**31 - 1
    acc[6:8] = -(2**31)
    mult = np.array([1, 2**30, 12345, 2**31 - 1], dtype=np.int64)
    shift = np.array([16, 40, 0, 62], dtype=np.int64)
    for rounding in ("half_even", "half_away", "trunc", "floor", "ceil"):
        nc = _nc(8, 8, 8, 32, "saturate", a_round=rounding)
        out = np.empty((nb, n, oh, ow), dtype=np.float32)
        stats = LayerStats("L")
        plan = OutputPlan(0.25, StoredScales("int32_mult_shift", mult, shift, None))
        assert fused_output(plan, acc, nc, stats, None, out)
        flat = acc.ravel().tolist()
        chans = [i % n for i in range(len(flat))]
        want, n_ovf, _ = oracle.requantize(flat, mult.tolist(), shift.tolist(), chans,
                                           QFormat(8, 0), rounding)
        codes = np.asarray(want).reshape(nb, oh, ow, n).transpose(0, 3, 1, 2)
        assert np.array_equal(out, (codes * 0.25).astype(np.float32)), rounding
        assert stats.out_saturated == n_ovf > 0


def test_float_layers_equal_torch():
    """bits None everywhere: plain fp32 conv2d / linear, gradients included."""
    gen = torch.Generator().manual_seed(1)
    fp = TensorNumerics(None)
    nc = NumericsConfig(fp, fp, fp)
    x = torch.randn(2, 4, 6, 6, generator=gen).requires_grad_()
    w = torch.randn(6, 2, 3, 3, generator=gen).requires_grad_()
    geom = ConvGeom((3, 3), (2, 2), (1, 1), 2)
    y = QConv2dFn.apply(x, w, _runtime(nc), geom)
    x2, w2 = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    y2 = F.conv2d(x2, w2, None, (2, 2), (1, 1), 1, 2)
    gy = torch.randn(y.shape, generator=gen)
    y.backward(gy)
    y2.backward(gy)
    for got, want in ((y, y2), (x.grad, x2.grad), (w.grad, w2.grad)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    xl = torch.randn(3, 7, generator=gen).requires_grad_()
    wl = torch.randn(2, 7, generator=gen).requires_grad_()
    yl = QLinearFn.apply(xl, wl, _runtime(nc, op="linear"))
    xl2, wl2 = xl.detach().clone().requires_grad_(), wl.detach().clone().requires_grad_()
    yl2 = F.linear(xl2, wl2)
    gl = torch.randn(yl.shape, generator=gen)
    yl.backward(gl)
    yl2.backward(gl)
    for got, want in ((yl, yl2), (xl.grad, xl2.grad), (wl.grad, wl2.grad)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_stochastic_layer_is_deterministic_per_seed():
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn(2, 2, 5, 5, generator=gen)
    w0 = torch.randn(3, 2, 3, 3, generator=gen)
    gy = torch.randn(2, 3, 5, 5, generator=gen)
    nc = NumericsConfig(TensorNumerics(4, "stochastic"), TensorNumerics(4, "stochastic"),
                        TensorNumerics(4, "stochastic"), rng=RngSpec("lfsr", 16, None, 4, 7),
                        random_bits=8)

    def run(seed):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        y = QConv2dFn.apply(x, w, _runtime(nc, seed), ConvGeom((3, 3), (1, 1), (1, 1), 1))
        y.backward(gy)
        return y.detach(), x.grad, w.grad

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not any(torch.equal(p, q) for p, q in zip(a, c, strict=True))


# ---- quantizers ---------------------------------------------------------------------------

def _rne(fr: Fraction) -> int:
    fl = fr.numerator // fr.denominator
    rem = fr - fl
    return fl + (1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2) else 0)


def test_pow2_quantizer_matches_exact_rationals():
    """Codes = clamp(rne(x/Δ), ±qmax), Δ = 2^ceil(log2(max|x|/qmax)); ties and edges."""
    x = torch.tensor([0.0, 1.0, -1.0, 0.5, 2.0 ** -7, 3 * 2.0 ** -8, -3 * 2.0 ** -8,
                      0.99, -0.25, 127 / 128, 5 * 2.0 ** -9], dtype=torch.float32)
    tn = TensorNumerics(8, "half_even", scale="pow2")
    q = quantize_symmetric(x, tn)
    delta = Fraction(float(q.scale))
    assert delta == Fraction(1, 64)  # 1/127 rounded up to a power of two
    want = [max(-127, min(127, _rne(Fraction(float(v)) / delta))) for v in x.tolist()]
    assert q.codes.tolist() == want and q.codes.dtype == torch.int8
    assert q.n_clipped == 0


def test_fp32_scale_is_smallest_fp32_not_below_c_over_qmax():
    for c in [1.0, 0.1, 3.7e-5, 12345.678, 2.0 ** -20]:
        d = float(scale_from_clip(np.asarray(c), 8, "fp32"))
        assert np.float32(d) == d
        assert Fraction(d) >= Fraction(c) / 127
        below = float(np.nextafter(np.float32(d), np.float32(0)))
        assert Fraction(below) < Fraction(c) / 127
    assert float(scale_from_clip(np.asarray(0.0), 8, "fp32")) == 1.0


def test_per_channel_and_clip_factor():
    w = torch.tensor([[1.0, -0.5], [0.01, 0.02]])
    q = quantize_symmetric(w, TensorNumerics(4, "half_even", "per_channel", "pow2"),
                           per_channel=True)
    assert q.scale.tolist() == [0.25, 2.0 ** -8]  # 1/7 -> 1/4, 0.02/7 -> 2^-8
    assert q.codes.tolist() == [[4, -2], [3, 5]]  # 0.01/2^-8 = 2.56 -> 3; 0.02 -> 5.12 -> 5
    g = torch.tensor([1.0, 0.9, 0.5, -1.0])
    qg = quantize_symmetric(g, TensorNumerics(4, "half_even"), clip_factor=0.5)
    assert qg.n_clipped == 3  # |1.0|, 0.9, |-1.0| exceed c = 0.5
    assert qg.codes.tolist() == [7, 7, 7, -7]


# ---- NumericsConfig.from_hw -----------------------------------------------------------------

def _hw(**overrides):
    from fxpsim.config import load_hwconfig

    path = Path(__file__).resolve().parents[1] / "hwconfigs" / "edge_npu.yaml"
    return load_hwconfig(str(path), overrides or None).config


def test_from_hw_builds_lfsr_and_array_settings():
    nc = NumericsConfig.from_hw(_hw(), w_bits=4, a_bits=4, g_bits=4, rounding_w="rne")
    assert nc.weights.bits == 4 and nc.weights.rounding == "half_even"
    assert nc.gradients.rounding == "stochastic"
    assert (nc.acc_bits, nc.acc_overflow) == (32, "saturate")
    assert nc.rng.kind == "lfsr" and nc.rng.lanes == 16 and nc.rng.width == 16
    assert nc.random_bits == 8
    rng = nc.rng.build(run_seed=3)
    assert isinstance(rng, LFSR) and rng.seed == 0xACE1 ^ 3
    assert np.array_equal(rng.draw(40, 8), LFSR(16, "x^16+x^14+x^13+x^11+1",
                                                seed=0xACE1 ^ 3, lanes=16).draw(40, 8))


def test_from_hw_rejects_xorshift():
    with pytest.raises(ConfigError, match="stochastic_rounding.rng"):
        NumericsConfig.from_hw(_hw(**{"mac_array.stochastic_rounding.rng": "xorshift"}))


def test_from_hw_takes_the_requantizer_scale_format_and_array_model():
    nc = NumericsConfig.from_hw(_hw(**{"mac_array.requantizer.scale_format": "pow2_shift"}))
    assert nc.scale_format == "pow2_shift"
    m = nc.array_model
    assert (m.rows, m.cols, m.dataflow, m.acc_bits) == (16, 16, "weight_stationary", 32)


@pytest.mark.parametrize("option,kw,value", [("rounding.a", "rounding_a", "half_up"),
                                             ("rounding.w", "rounding_w", "ceil"),
                                             ("rounding.g", "rounding_g", "jam")])
def test_from_hw_rejects_roundings_the_requantizer_does_not_list(option, kw, value):
    with pytest.raises(ConfigError) as exc:
        NumericsConfig.from_hw(_hw(), source="edge_npu.yaml", **{kw: value})
    msg = str(exc.value)
    assert msg.startswith(f"command line: {option}: {value} is not a rounding mode")
    assert "edge_npu.yaml: mac_array.requantizer.rounding_modes" in msg and "\n" not in msg


def test_from_hw_rejects_stochastic_without_a_hardware_rng():
    hw = _hw(**{"mac_array.stochastic_rounding.hardware": "false"})
    with pytest.raises(ConfigError, match=r"^command line: rounding\.g: .*"
                                          r"mac_array\.stochastic_rounding\.hardware is false"):
        NumericsConfig.from_hw(hw, source="edge_npu.yaml")
    nc = NumericsConfig.from_hw(hw, rounding_g="rne")  # deterministic: fine
    assert nc.gradients.rounding == "half_even"


def test_cli_run_with_an_unlisted_rounding_exits_2_before_writing(tmp_path, capsys):
    from fxpsim.cli import main

    out = tmp_path / "r"
    code = main(["run", "hw=edge_npu", "model=lenet5", "steps=0", "rounding.a=half_up",
                 f"out={out}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "rounding.a" in err
    assert "mac_array.requantizer.rounding_modes" in err
