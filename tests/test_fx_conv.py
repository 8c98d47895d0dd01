"""Conv passes lowered to array GEMMs == a direct nested-loop Python-int conv oracle that adds
in the documented order (values and events, narrow registers), and == torch float64 convs
when nothing overflows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fxpsim.fixedpoint.conv import (
    conv2d_backward_data,
    conv2d_backward_weight,
    conv2d_forward,
    conv_gemm_shapes,
)
from fxpsim.fixedpoint.macarray import ArrayModel
from fxpsim.fixedpoint.oracle_gemm import register_add

# (B, C, H, W, K, kh, kw, stride, padding, groups)
CASES = [
    (2, 3, 5, 5, 4, 3, 3, 1, 0, 1),
    (1, 2, 6, 5, 4, 3, 3, 2, 1, 1),
    (2, 4, 5, 6, 4, 3, 3, 1, 1, 4),   # depthwise
    (1, 4, 7, 7, 4, 3, 3, 2, 1, 4),   # depthwise, stride 2
    (1, 4, 5, 5, 6, 2, 3, 2, 0, 2),
    (1, 2, 3, 4, 2, 1, 1, 1, 1, 1),   # padding > kh-1: backward-data crops
]


def reduce_products(products, model):
    """Register semantics of ``model`` on an ordered product list -> (value, ev_p, ev_a)."""
    if model.dataflow == "output_stationary":
        acc, ev = 0, 0
        for p in products:
            acc, e = register_add(acc, p, model.acc_bits, model.acc_overflow)
            ev += e
        return acc, 0, ev
    acc, ev_p, ev_a = 0, 0, 0
    for t in range(0, len(products), model.rows):
        psum = 0
        for p in products[t:t + model.rows]:
            psum, e = register_add(psum, p, model.psum_bits_eff, model.psum_overflow_eff)
            ev_p += e
        acc, e = register_add(acc, psum, model.acc_bits, model.acc_overflow)
        ev_a += e
    return acc, ev_p, ev_a


def _at(x, b, c, h, w):
    return int(x[b, c, h, w]) if 0 <= h < x.shape[2] and 0 <= w < x.shape[3] else 0


def oracle_forward(x, w, s, p, g, model):
    bsz, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    kg = k // g
    oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    out = np.zeros((3, bsz, k, oh, ow), dtype=np.int64)
    for b in range(bsz):
        for ko in range(k):
            g0 = (ko // kg) * cg
            for y in range(oh):
                for z in range(ow):
                    prods = [_at(x, b, g0 + ci, y * s + i - p, z * s + j - p) * int(w[ko, ci, i, j])
                             for ci in range(cg) for i in range(kh) for j in range(kw)]
                    out[:, b, ko, y, z] = reduce_products(prods, model)
    return out


def oracle_backward_data(dy, w, x_shape, s, p, g, model):
    """dX[b,c,h,w] = sum over (k, i, j) of dYp[b,k,h+i,w+j] * W[k,c,kh-1-i,kw-1-j], where dYp
    is dY with s-1 zeros between pixels, offset by kh-1-p (zeros are part of the order)."""
    bsz, c, h, wd = x_shape
    k, cg, kh, kw = w.shape
    kg = k // g
    out = np.zeros((3, bsz, c, h, wd), dtype=np.int64)

    def dyp(b, ko, r, q):
        r, q = r - (kh - 1 - p), q - (kw - 1 - p)
        if r < 0 or q < 0 or r % s or q % s:
            return 0
        return _at(dy, b, ko, r // s, q // s)

    for b in range(bsz):
        for co in range(c):
            k0 = (co // cg) * kg
            for y in range(h):
                for z in range(wd):
                    prods = [dyp(b, k0 + kk, y + i, z + j) * int(w[k0 + kk, co % cg, kh - 1 - i,
                                                                  kw - 1 - j])
                             for kk in range(kg) for i in range(kh) for j in range(kw)]
                    out[:, b, co, y, z] = reduce_products(prods, model)
    return out


def oracle_backward_weight(x, dy, w_shape, s, p, g, model):
    k, cg, kh, kw = w_shape
    bsz, _, oh, ow = dy.shape
    kg = k // g
    out = np.zeros((3, *w_shape), dtype=np.int64)
    for ko in range(k):
        g0 = (ko // kg) * cg
        for ci in range(cg):
            for i in range(kh):
                for j in range(kw):
                    prods = [_at(x, b, g0 + ci, y * s + i - p, z * s + j - p) * int(dy[b, ko, y, z])
                             for b in range(bsz) for y in range(oh) for z in range(ow)]
                    out[:, ko, ci, i, j] = reduce_products(prods, model)
    return out


def _result_stack(r):
    return np.stack([r.values, r.events_psum, r.events_acc])


MODELS = [
    ArrayModel(4, 2, "weight_stationary", 9, "saturate", 7, "wrap"),
    ArrayModel(3, 2, "output_stationary", 8, "numeric_std"),
    ArrayModel(5, 3, "input_stationary", 9, "wrap", 7, "saturate_symmetric"),
]


@pytest.mark.parametrize("case", CASES)
def test_passes_match_direct_oracle_with_overflow(case):
    bsz, c, h, wd, k, kh, kw, s, p, g = case
    rng = np.random.default_rng(sum(case))
    x = rng.integers(-8, 8, (bsz, c, h, wd))
    w = rng.integers(-8, 8, (k, c // g, kh, kw))
    events = 0
    for model in MODELS:
        y = conv2d_forward(x, w, stride=s, padding=p, groups=g, model=model, x_bits=4, w_bits=4)
        assert np.array_equal(_result_stack(y), oracle_forward(x, w, s, p, g, model))
        dy = rng.integers(-8, 8, y.values.shape)
        dx = conv2d_backward_data(dy, w, x.shape, stride=s, padding=p, groups=g, model=model,
                                  g_bits=4, w_bits=4)
        assert dx.values.shape == x.shape
        assert np.array_equal(_result_stack(dx),
                              oracle_backward_data(dy, w, x.shape, s, p, g, model))
        dw = conv2d_backward_weight(x, dy, w.shape, stride=s, padding=p, groups=g,
                                    model=model, x_bits=4, g_bits=4)
        assert np.array_equal(_result_stack(dw),
                              oracle_backward_weight(x, dy, w.shape, s, p, g, model))
        events += y.total_events + dx.total_events + dw.total_events
    assert events > 0  # the narrow registers do overflow: the comparison is not vacuous


def test_narrow_registers_do_overflow_in_these_cases():
    """Guard against a vacuous oracle comparison: the narrow models above see events."""
    x = np.full((1, 2, 5, 5), 7)
    w = np.full((2, 2, 3, 3), 7)
    y = conv2d_forward(x, w, padding=1, model=MODELS[0], x_bits=4, w_bits=4)
    assert y.events_psum.sum() > 0 and y.total_events > 0


@pytest.mark.parametrize("case", CASES)
def test_float64_cross_check_without_overflow(case):
    bsz, c, h, wd, k, kh, kw, s, p, g = case
    rng = np.random.default_rng(100 + sum(case))
    model = ArrayModel(4, 4, "weight_stationary", 32, "saturate")
    x = rng.integers(-128, 128, (bsz, c, h, wd))
    w = rng.integers(-128, 128, (k, c // g, kh, kw))
    tx, tw = torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)
    y = conv2d_forward(x, w, stride=s, padding=p, groups=g, model=model)
    ref = torch.nn.functional.conv2d(tx, tw, stride=s, padding=p, groups=g)
    assert np.array_equal(y.values, ref.numpy().astype(np.int64)) and y.total_events == 0
    dy = rng.integers(-128, 128, y.values.shape)
    tdy = torch.tensor(dy, dtype=torch.float64)
    dx = conv2d_backward_data(dy, w, x.shape, stride=s, padding=p, groups=g, model=model)
    ref = torch.nn.grad.conv2d_input(x.shape, tw, tdy, stride=s, padding=p, groups=g)
    assert np.array_equal(dx.values, ref.numpy().astype(np.int64))
    dw = conv2d_backward_weight(x, dy, w.shape, stride=s, padding=p, groups=g, model=model)
    ref = torch.nn.grad.conv2d_weight(tx, w.shape, tdy, stride=s, padding=p, groups=g)
    assert np.array_equal(dw.values, ref.numpy().astype(np.int64))


def test_conv_gemm_shapes():
    sh = conv_gemm_shapes(8, 64, 32, 32, 128, 3, 3, stride=1, padding=1)
    assert sh.as_dict() == {"forward": (8192, 576, 128), "backward_data": (8192, 1152, 64),
                            "backward_weight": (576, 8192, 128)}
    assert sh.groups == 1 and sh.forward.macs == 8192 * 576 * 128
    dw = conv_gemm_shapes(2, 32, 9, 9, 32, 3, 3, stride=2, padding=1, groups=32)
    assert dw.as_dict() == {"forward": (50, 9, 1), "backward_data": (162, 9, 1),
                            "backward_weight": (9, 50, 1)}
    with pytest.raises(ValueError, match="^groups"):
        conv_gemm_shapes(1, 3, 8, 8, 4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="^stride"):
        conv_gemm_shapes(1, 3, 8, 8, 4, 3, 3, stride=0)
    with pytest.raises(ValueError, match="^H"):
        conv_gemm_shapes(1, 3, 2, 8, 4, 5, 3)


def test_bad_conv_arguments():
    m = MODELS[0]
    x = np.zeros((1, 2, 4, 4), np.int8)
    w = np.zeros((2, 2, 3, 3), np.int8)
    with pytest.raises(ValueError, match="^x: expected a 4-D"):
        conv2d_forward(x[0], w, model=m)
    with pytest.raises(ValueError, match="^w:"):
        conv2d_forward(x, w.astype(np.float32), model=m)
    with pytest.raises(ValueError, match="^w:"):
        conv2d_forward(x, np.zeros((2, 1, 3, 3), np.int8), model=m)
    with pytest.raises(ValueError, match="^dy: expected shape"):
        conv2d_backward_data(np.zeros((1, 2, 3, 3), np.int8), w, x.shape, model=m)
    with pytest.raises(ValueError, match="^model"):
        conv2d_forward(x, w, model=None)  # type: ignore[arg-type]
