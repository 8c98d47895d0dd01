"""Fast paths of the quantized layers (fxpsim.training.qkernels) against Python-int / Python
float references: the fused quantizer, im2col layouts, the direct int8 GEMM at its static
proof's boundary, the fp32 rescale, and whole conv layers on geometries the flat layout and
the `terms` bound must get right."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from test_train_layers import (
    _as_acc,
    _check_output,
    _ints,
    _nc,
    _probe,
    _probe_nchw,
    _runtime,
    conv_ref,
    dgrad_ref,
    wgrad_ref,
)

from fxpsim.fixedpoint import intmm, oracle
from fxpsim.fixedpoint.formats import QFormat
from fxpsim.fixedpoint.im2col import im2col, pixel_cols, place_nhwc
from fxpsim.fixedpoint.intmm import array_matmul, static_limit, static_ok
from fxpsim.fixedpoint.quantize import QCHUNK
from fxpsim.fixedpoint.rng import LFSR, Philox
from fxpsim.training.formats import NumericsConfig, TensorNumerics
from fxpsim.training.qkernels import (
    FIXED_ROUNDINGS,
    pix_to_nchw,
    quantize_fixed,
    rows_to_nchw,
)
from fxpsim.training.qlayers import ConvGeom, QConv2dFn
from fxpsim.training.quantizers import (
    quantize_padded_nhwc,
    quantize_symmetric,
    scale_from_clip,
)

# ---- quantizer ------------------------------------------------------------------------------


def _ref_codes(xs, delta, rounding, bits):
    """clamp(round(fl64(x)/Δ), ±qmax): Python float division (one IEEE rounding), then the
    oracle's exact rounding of that float and its symmetric saturation."""
    q = [float(v) / float(delta) for v in xs]
    codes, n_ovf, _ = oracle.quantize(q, QFormat(bits, 0), rounding, "saturate_symmetric")
    return codes, n_ovf


def _edge_values(delta: float) -> np.ndarray:
    d32 = np.float32(delta)
    ties = [(k + 0.5) * float(d32) for k in range(-4, 5)]  # exact ties when Δ is a power of 2
    near = [float(np.nextafter(np.float32(t), np.float32(s))) for t in ties for s in (-9, 9)]
    limits = [127 * float(d32), 127.5 * float(d32), 128 * float(d32), -127.5 * float(d32),
              1e30, -1e30, 0.0, -0.0, 1e-40, -1e-40]
    return np.array(ties + near + limits, dtype=np.float32)


@pytest.mark.parametrize("rounding", sorted(FIXED_ROUNDINGS))
@pytest.mark.parametrize("delta", [2.0 ** -6, 0.0123456789, 3.0])
def test_quantize_fixed_matches_oracle(rounding, delta):
    rng = np.random.default_rng(1)
    x = np.concatenate([_edge_values(delta),
                        (rng.standard_normal(3000) * 60 * delta).astype(np.float32)])
    out = np.empty(x.size, dtype=np.int8)
    n_bad, n_clip = quantize_fixed(x, delta, FIXED_ROUNDINGS[rounding], 127, out)
    want, n_ovf = _ref_codes(x.tolist(), delta, rounding, 8)
    assert n_bad == 0
    assert out.tolist() == want
    assert n_clip == n_ovf and n_clip > 0


def test_quantize_symmetric_fused_and_stochastic_paths_match_oracle():
    """Per-tensor fp32-scale codes (fused path) and stochastic codes (Philox draws in C
    order) equal the oracle on x/Δ; NaN raises naming x."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, 5, 5, generator=gen) * 3
    x[0, 0, 0, :3] = torch.tensor([0.0, -0.0, 1e-30])
    q = quantize_symmetric(x, TensorNumerics(8, "half_even"))
    c = float(x.abs().max())
    assert float(q.scale) >= c / 127 and np.float32(q.scale) == q.scale
    want, n_ovf = _ref_codes(x.flatten().tolist(), q.scale, "half_even", 8)
    assert q.codes.flatten().tolist() == want and q.n_clipped == n_ovf == 0
    qp, buf = quantize_padded_nhwc(x, TensorNumerics(8, "half_even"), (2, 1))
    assert qp.codes.tolist() == q.codes.tolist() and float(qp.scale) == float(q.scale)
    assert buf.shape == (4, 9, 7, 3) and buf.permute(0, 3, 1, 2)[:, :, 2:7, 1:6].tolist() \
        == q.codes.tolist()
    assert int(buf.abs().sum()) == int(q.codes.abs().sum())  # the border is zero
    assert quantize_padded_nhwc(x, TensorNumerics(8, "stochastic"), (1, 1)) is None
    qs = quantize_symmetric(x, TensorNumerics(6, "stochastic"), rng=Philox(77), random_bits=8,
                            clip_factor=0.5)
    rand = oracle.philox_draw(77, 0, x.numel(), 8)
    vals = [float(v) / float(qs.scale) for v in x.flatten().tolist()]
    want_s, n_ovf_s, _ = oracle.quantize(vals, QFormat(6, 0), "stochastic",
                                         "saturate_symmetric", rand, 8)
    assert qs.codes.flatten().tolist() == want_s
    assert qs.n_clipped == n_ovf_s > 0
    x[1, 1, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="x:"):
        quantize_symmetric(x, TensorNumerics(8, "half_even"), rng=None)


# ---- im2col layouts / rescale ---------------------------------------------------------------


def _window(x, b, c, t, u, dil):
    """xd[b, c, t, u] of x zero-dilated by dil (Python ints)."""
    (dh, dw), h, w = dil, len(x[0][0]), len(x[0][0][0])
    if t < 0 or u < 0 or t % dh or u % dw or t // dh >= h or u // dw >= w:
        return 0
    return x[b][c][t // dh][u // dw]


GEOMS = [  # (kernel, stride, pad, dil, (H, W))
    ((3, 3), (1, 1), (1, 1), (1, 1), (5, 4)),
    ((3, 2), (2, 1), (1, 0), (1, 1), (6, 5)),
    ((3, 3), (1, 1), (2, 0), (2, 3), (3, 3)),  # dilated (backward-data of a strided conv)
    ((1, 1), (1, 1), (-1, -1), (1, 1), (4, 4)),  # negative pad: dgrad of a 1x1 pad-1 conv
    ((2, 2), (1, 1), (0, 1), (3, 1), (2, 3)),
]


@pytest.mark.parametrize("kernel,stride,pad,dil,hw", GEOMS)
def test_im2col_layouts_match_definition(kernel, stride, pad, dil, hw):
    """Channel-major im2col, and place_nhwc + pixel_cols (pixel-major, (i, j, c) order),
    both equal the windows of the zero-dilated, padded codes."""
    gen = torch.Generator().manual_seed(3)
    codes = torch.randint(-127, 128, (2, 3, *hw), dtype=torch.int8, generator=gen)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    hd, wd = (hw[0] - 1) * dil[0] + 1, (hw[1] - 1) * dil[1] + 1
    oh, ow = (hd + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    cm = im2col(codes, 1, 3, kernel, stride, pad, dil, (oh, ow)).numpy()
    buf = place_nhwc(codes, ph, pw, dil, ((oh - 1) * sh + kh, (ow - 1) * sw + kw))
    pm = pixel_cols(buf, 1, 3, kernel, stride, (oh, ow)).numpy()
    x = _ints(codes)
    for b in range(2):
        for y in range(oh):
            for z in range(ow):
                col = (b * oh + y) * ow + z
                win = {(c, i, j): _window(x, b, c, y * sh + i - ph, z * sw + j - pw, dil)
                       for c in (1, 2) for i in range(kh) for j in range(kw)}
                assert cm[:, col].tolist() == [win[c, i, j] for c in (1, 2)
                                               for i in range(kh) for j in range(kw)]
                assert pm[col].tolist() == [win[c, i, j] for i in range(kh)
                                            for j in range(kw) for c in (1, 2)]


def _f32_of_product(v: int, s: float) -> Fraction:
    return oracle.round_to_float32(Fraction(float(v) * s))  # Python float product: fl64


def test_rescales_are_fp32_of_float64_product():
    rng = np.random.default_rng(5)
    vals = rng.integers(-2**31, 2**31, (3, 2 * 12), dtype=np.int64).astype(np.int32)
    vals[0, :4] = [2**31 - 1, -2**31, 2**24 + 1, -(2**24 + 3)]
    scale = np.array([0.1, 3.0 ** -20, 1.0 + 2.0 ** -30])
    out = np.zeros((2, 5, 12), dtype=np.float32)
    rows_to_nchw(vals, scale, 1, out)
    pix = np.zeros((2, 5, 3, 4), dtype=np.float32)
    pix_to_nchw(np.ascontiguousarray(vals.T), scale, 2, pix)
    for b in range(2):
        for n in range(3):
            for p in range(12):
                want = _f32_of_product(int(vals[n, b * 12 + p]), float(scale[n]))
                assert Fraction(float(out[b, n + 1, p])) == want
                assert Fraction(float(pix[b, n + 2, p // 4, p % 4])) == want
    assert not out[:, 0].any() and not out[:, 4].any() and not pix[:, :2].any()


# ---- the direct int8 GEMM ---------------------------------------------------------------------


def test_static_limit_and_proof_boundary():
    nc = NumericsConfig(acc_bits=32, acc_overflow="saturate").array_model
    assert static_limit(nc) == 2**31 - 1
    k_max = (2**31 - 1) // (127 * 127)
    assert static_ok(k_max, 127, 127, nc) and not static_ok(k_max + 1, 127, 127, nc)
    # int32 inside _int_mm
    assert static_limit(NumericsConfig(acc_bits=40).array_model) == 2**31 - 1
    assert static_limit(NumericsConfig(acc_bits=20, acc_overflow="saturate_symmetric")
                        .array_model) == 2**19 - 1
    ws = NumericsConfig(acc_bits=32, psum_bits=18, dataflow="weight_stationary", rows=4)
    assert static_limit(ws.array_model) == 2**17 - 1


def _py_mm_cols(a, b, cols):
    """Python-int sums of a (M, K) x b[:, cols] for a few columns."""
    a_l, b_l = a.tolist(), b.T.tolist()
    return [[sum(x * y for x, y in zip(row, b_l[j], strict=True)) for j in cols]
            for row in a_l]


def test_int_mm_shortcut_at_the_int32_boundary_is_exact(monkeypatch):
    """K = floor((2^31-1)/127^2): the largest sums the proof admits, all ±127 and mixed."""
    k = (2**31 - 1) // (127 * 127)
    rng = np.random.default_rng(6)
    a = np.full((3, k), 127, dtype=np.int8)
    a[1] = -127
    a[2] = rng.choice(np.array([-127, 127, -1, 0], dtype=np.int8), k)
    b = np.full((k, 3), 127, dtype=np.int8)
    b[:, 1] = rng.integers(-127, 128, k)
    b[::2, 2] = -127
    nc = NumericsConfig(acc_bits=32, acc_overflow="saturate")

    def boom(*_, **__):
        raise AssertionError("fallback used")

    monkeypatch.setattr(intmm, "array_gemm", boom)
    vals, ev = array_matmul(torch.from_numpy(a), torch.from_numpy(b), nc.array_model, 127, 127)
    assert ev == 0 and vals.dtype == torch.int32
    assert vals.numpy().tolist() == _py_mm_cols(a, b, [0, 1, 2])
    assert vals[0, 0] == k * 127 * 127 and vals[1, 0] == -k * 127 * 127


def test_array_matmul_runs_the_array_model_past_the_proof(monkeypatch):
    a = torch.full((2, 40), 127, dtype=torch.int8)
    b = torch.full((40, 2), 127, dtype=torch.int8)
    model = NumericsConfig(acc_bits=16, acc_overflow="saturate").array_model  # 40*127^2 > 2^15-1
    calls = []
    real = intmm.array_gemm

    def fallback(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(intmm, "array_gemm", fallback)
    vals, ev = array_matmul(a, b, model, 127, 127)
    assert calls and vals.tolist() == [[2**15 - 1] * 2] * 2 and ev == 2 * 2 * (40 - 2)
    b[2:] = 0  # two nonzero products per output: the proof holds with terms=2
    calls.clear()
    vals, ev = array_matmul(a, b, model, 127, 127, terms=2)
    assert not calls and ev == 0 and vals.tolist() == [[2 * 127 * 127] * 2] * 2


# ---- whole conv layers ----------------------------------------------------------------------

LAYER_CASES = [  # (kernel, stride, pad, acc_bits, bits, (H, W), batch)
    ((3, 3), (1, 1), (1, 1), 20, 8, (4, 4), 2),  # 20-bit acc: wgrad at 32*127^2 <= 2^19-1
    ((1, 1), (1, 1), (1, 1), 32, 8, (3, 4), 2),  # dgrad padding -1
    ((2, 3), (3, 2), (1, 1), 32, 8, (7, 6), 2),  # strided, non-square, truncated rows
    ((3, 3), (2, 2), (1, 1), 32, 8, (5, 5), 3),
]


@pytest.mark.parametrize("kernel,stride,pad,acc_bits,bits,hw,nb", LAYER_CASES)
def test_conv_fast_paths_match_python_int_reference(monkeypatch, kernel, stride, pad,
                                                    acc_bits, bits, hw, nb):
    """Values equal the Python-int convolutions; the proof holds for every GEMM here, so the
    sequential fallback must not run."""
    def boom(*_, **__):
        raise AssertionError("fallback used")

    monkeypatch.setattr(intmm, "array_gemm", boom)
    gen = torch.Generator().manual_seed(8)
    c, k = 2, 3
    x = torch.randn(nb, c, *hw, generator=gen).requires_grad_()
    w = torch.randn(k, c, *kernel, generator=gen).requires_grad_()
    nc = _nc(bits, bits, bits, acc_bits, "saturate")
    rt = _runtime(nc, seed=5)
    seen = _probe(rt)
    y = QConv2dFn.apply(x, w, rt, ConvGeom(kernel, stride, pad, 1))
    gy = torch.randn(y.shape, generator=gen)
    y.backward(gy)
    xq = quantize_symmetric(x, nc.activations)
    wq = quantize_symmetric(w, nc.weights)
    gq = quantize_symmetric(gy, nc.gradients, rng=Philox(nc.rng.stream_seed(5, 0)),
                            random_bits=8)
    ref_y, _ = conv_ref(_ints(xq.codes), _ints(wq.codes), stride, pad, 1, acc_bits, "saturate")
    ref_dx, _ = dgrad_ref(_ints(gq.codes), _ints(wq.codes), hw, stride, pad, 1, acc_bits,
                          "saturate")
    ref_dw, _ = wgrad_ref(_ints(xq.codes), _ints(gq.codes), kernel, stride, pad, 1, acc_bits,
                          "saturate")
    assert np.array_equal(_probe_nchw(seen, 1, tuple(y.shape)), ref_y.astype(np.int64))
    _check_output(y, seen)
    assert np.array_equal(_as_acc(x.grad, gq.scale * wq.scale), ref_dx.astype(np.int64))
    assert np.array_equal(_as_acc(w.grad, xq.scale * gq.scale), ref_dw.astype(np.int64))
    assert [r.acc_events for r in rt.counters.gemms] == [0, 0, 0]


# ---- fused stochastic gradient quantizer, reused buffers, serial Numba ---------------------


class _Drawn:
    """An RNG with ``draw(n, bits)`` only (the pre-drawn array source)."""

    def __init__(self, seed: int) -> None:
        self.gen = np.random.default_rng(seed)

    def draw(self, n: int, bits: int) -> np.ndarray:
        return self.gen.integers(0, 1 << bits, n, dtype=np.uint64)


def _stochastic_ref_rand(kind: str, n: int, bits: int) -> tuple[list[int], list[int]]:
    """(draws of a request of n, draws of a following request of 5)."""
    if kind == "philox":
        both = oracle.philox_draw(91, 0, n + 5, bits)
        return both[:n], both[n:]
    if kind == "lfsr":  # the sequential (one lane step at a time) reference draws
        ref = LFSR(16, "x^16+x^14+x^13+x^11+1", seed=0xACE1, lanes=16)
        return ref.draw_sequential(n, bits).tolist(), ref.draw_sequential(5, bits).tolist()
    return _Drawn(4).draw(n, bits).tolist(), []


def _stochastic_rng(kind: str):
    if kind == "philox":
        return Philox(91)
    if kind == "lfsr":
        return LFSR(16, "x^16+x^14+x^13+x^11+1", seed=0xACE1, lanes=16)
    return _Drawn(4)


@pytest.mark.parametrize("kind", ["philox", "lfsr", "array"])
@pytest.mark.parametrize("scale", ["fp32", "pow2"])
def test_stochastic_quantizer_matches_oracle_for_every_random_source(kind, scale):
    """The fused divide + stochastic kernel (chunks of QCHUNK, int8 out) equals the oracle's
    stochastic rounding of the Python-float quotients with the reference draws, over several
    chunks and a ragged tail, on exact ties, near-ties, clipped and zero values; the
    generator advances by exactly one draw per element."""
    n = 2 * QCHUNK + 37
    gen = np.random.default_rng(11)
    x = (gen.standard_normal(n) * 0.02).astype(np.float32)
    amax = float(np.abs(x).max())
    d = float(scale_from_clip(np.asarray(amax * 0.5), 8, scale))
    edges = [(k + 0.5) * d for k in range(-3, 3)] + [k * d for k in (-127, 127, 126)]
    edges += [float(np.nextafter(np.float32(e), np.float32(s))) for e in edges[:6]
              for s in (-1, 1)]
    edges += [0.0, -0.0, 1e-40, amax, -amax, 0.9 * amax]  # |x| <= amax: Δ stays d
    x[QCHUNK - 10:QCHUNK - 10 + len(edges)] = np.array(edges, dtype=np.float32)
    xt = torch.from_numpy(x.reshape(1, 1, 1, n))
    rng = _stochastic_rng(kind)
    q = quantize_symmetric(xt, TensorNumerics(8, "stochastic", scale=scale), rng=rng,
                           random_bits=8, clip_factor=0.5)
    assert float(q.scale) == d and q.codes.dtype == torch.int8
    rand, after = _stochastic_ref_rand(kind, n, 8)
    vals = [float(v) / d for v in x.tolist()]
    want, n_ovf, _ = oracle.quantize(vals, QFormat(8, 0), "stochastic", "saturate_symmetric",
                                     rand, 8)
    assert q.codes.flatten().tolist() == want
    assert q.n_clipped == n_ovf > 0
    if kind != "array":  # the next draws continue the reference stream
        assert np.asarray(rng.draw(5, 8)).tolist() == after
    x[3] = np.inf
    with pytest.raises(ValueError, match="x:"):
        quantize_symmetric(torch.from_numpy(x), TensorNumerics(8, "stochastic"), rng=Philox(1))


def test_reused_buffers_equal_fresh_ones():
    """pixel_cols / place_nhwc / quantize_padded_nhwc / array_matmul given a buffer from an
    earlier call (dirty where they write) give the definition's values, not stale ones."""
    gen = torch.Generator().manual_seed(12)
    a = torch.randint(-127, 128, (2, 3, 5, 4), dtype=torch.int8, generator=gen)
    b = torch.randint(-127, 128, (2, 3, 5, 4), dtype=torch.int8, generator=gen)
    size = (11, 9)
    buf_a = place_nhwc(a, 1, 1, (2, 2), size)
    buf_b = place_nhwc(b, 1, 1, (2, 2), size, buf_a)
    assert buf_b.data_ptr() == buf_a.data_ptr()
    x = _ints(b)
    for t in range(size[0]):
        for u in range(size[1]):
            for c in range(3):
                assert int(buf_b[0, t, u, c]) == _window(x, 0, c, t - 1, u - 1, (2, 2))
    dirty = torch.full((2 * 9 * 7, 9 * 3), 99, dtype=torch.int8)
    cols = pixel_cols(buf_b, 0, 3, (3, 3), (1, 1), (9, 7), dirty)
    assert cols.data_ptr() == dirty.data_ptr()
    for y in range(9):
        for z in range(7):
            row = (1 * 9 + y) * 7 + z
            assert cols[row].tolist() == [_window(x, 1, c, y + i - 1, z + j - 1, (2, 2))
                                          for i in range(3) for j in range(3) for c in range(3)]
    xf = torch.randn(2, 3, 5, 4, generator=gen)
    q1, pbuf = quantize_padded_nhwc(xf * 5, TensorNumerics(8, "half_even"), (1, 2))
    q2, pbuf2 = quantize_padded_nhwc(xf, TensorNumerics(8, "half_even"), (1, 2), pbuf)
    fresh, fbuf = quantize_padded_nhwc(xf, TensorNumerics(8, "half_even"), (1, 2))
    assert pbuf2.data_ptr() == pbuf.data_ptr() and torch.equal(pbuf2, fbuf)
    assert q2.codes.tolist() == fresh.codes.tolist()
    am = torch.randint(-127, 128, (7, 40), dtype=torch.int8, generator=gen)
    bm = torch.randint(-127, 128, (40, 5), dtype=torch.int8, generator=gen)
    out = torch.full((7, 5), -5, dtype=torch.int32)
    vals, ev = array_matmul(am, bm, _nc(8, 8, 8, 32, "saturate").array_model, 127, 127,
                            out=out)
    assert ev == 0 and vals.data_ptr() == out.data_ptr()
    assert vals.tolist() == [[sum(int(am[i, k]) * int(bm[k, j]) for k in range(40))
                              for j in range(5)] for i in range(7)]


def test_conv_layer_reusing_buffers_over_interleaved_steps(monkeypatch):
    """Two forwards, then their backwards in reverse order, then a third step, on one layer
    runtime (the pooled column / GEMM buffers): every output and gradient equals the
    Python-int reference of its own step."""
    monkeypatch.setattr(intmm, "array_gemm", None)  # the proof holds: no fallback
    kernel, stride, pad, hw, nb = (3, 3), (2, 2), (1, 1), (5, 5), 2
    nc = _nc(8, 8, 8, 32, "saturate")
    rt = _runtime(nc, seed=5)
    gen = torch.Generator().manual_seed(13)
    w = torch.randn(3, 2, *kernel, generator=gen).requires_grad_()
    steps = []
    for _ in range(3):
        x = torch.randn(nb, 2, *hw, generator=gen).requires_grad_()
        steps.append([x, None, None])
    for s in steps[:2]:
        s[2] = _probe(rt)
        s[1] = QConv2dFn.apply(s[0], w, rt, ConvGeom(kernel, stride, pad, 1))
    draws = Philox(nc.rng.stream_seed(5, 0))
    order = [1, 0, 2]
    for i in order:
        x = steps[i][0]
        if steps[i][1] is None:
            steps[i][2] = _probe(rt)
            steps[i][1] = QConv2dFn.apply(x, w, rt, ConvGeom(kernel, stride, pad, 1))
        y = steps[i][1]
        gy = torch.randn(y.shape, generator=gen)
        w.grad = None
        y.backward(gy)
        xq = quantize_symmetric(x, nc.activations)
        wq = quantize_symmetric(w, nc.weights)
        gq = quantize_symmetric(gy, nc.gradients, rng=draws, random_bits=8)
        ref_y, _ = conv_ref(_ints(xq.codes), _ints(wq.codes), stride, pad, 1, 32, "saturate")
        ref_dx, _ = dgrad_ref(_ints(gq.codes), _ints(wq.codes), hw, stride, pad, 1, 32,
                              "saturate")
        ref_dw, _ = wgrad_ref(_ints(xq.codes), _ints(gq.codes), kernel, stride, pad, 1, 32,
                              "saturate")
        assert np.array_equal(_probe_nchw(steps[i][2], 1, tuple(y.shape)),
                              ref_y.astype(np.int64))
        _check_output(y, steps[i][2])
        assert np.array_equal(_as_acc(x.grad, gq.scale * wq.scale), ref_dx.astype(np.int64))
        assert np.array_equal(_as_acc(w.grad, xq.scale * gq.scale), ref_dw.astype(np.int64))
    assert set(rt.scratch) >= {"cols0", "mm0", "dmm", "dcols", "dbuf"}
