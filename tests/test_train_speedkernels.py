"""Kernels added for training speed, each against its plain-Python twin: the per-column
accumulator min/max of the forward output stage and the vectorized int32 multiplier/shift
of the requantizer's scales."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from fxpsim.fixedpoint.outstage import mult_shift_vec, stored_scales
from fxpsim.fixedpoint.requantize import MAX_SHIFT
from fxpsim.training.qkernels import col_minmax, scaled_flat, scaled_kcij, weight_mat


def _py_minmax(acc: np.ndarray) -> tuple[list[int], list[int]]:
    cols = [[int(v) for v in acc[:, j]] for j in range(acc.shape[1])]
    return [min(c) for c in cols], [max(c) for c in cols]


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 1), (63, 5), (64, 3), (65, 9),
                                   (1000, 16)])
def test_col_minmax_matches_python(dtype, shape):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    acc = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    # the extremes of the dtype in some rows (the most negative one has no int32 negation)
    acc[rng.integers(0, shape[0]), rng.integers(0, shape[1])] = info.min
    acc[rng.integers(0, shape[0]), rng.integers(0, shape[1])] = info.max
    lo, hi = np.empty(shape[1], np.int64), np.empty(shape[1], np.int64)
    col_minmax(acc, lo, hi)
    ref_lo, ref_hi = _py_minmax(acc)
    assert lo.tolist() == ref_lo and hi.tolist() == ref_hi


def _py_mult_shift(real: float) -> tuple[int, int] | None:
    """Exact rational rounding: multiplier = round-half-away(q·2^31), q = real/2^e."""
    if not (math.isfinite(real) and real >= 2.0**-32):
        return None
    frac = Fraction(real)
    e = math.floor(math.log2(real)) + 1
    while Fraction(2) ** e <= frac:
        e += 1
    while Fraction(2) ** (e - 1) > frac:
        e -= 1
    scaled = frac / Fraction(2) ** e * 2**31
    mult = math.floor(scaled + Fraction(1, 2))
    if mult == 2**31:
        mult, e = mult // 2, e + 1
    shift = 31 - e
    return (mult, shift) if 0 <= shift <= MAX_SHIFT else None


def test_mult_shift_vec_matches_exact_rounding():
    rng = np.random.default_rng(5)
    ties = (np.arange(1, 4096) + 0.5) / 2**31 * np.exp2(rng.integers(-20, 20, 4095))
    near = np.nextafter(ties, np.where(rng.random(4095) < 0.5, 0.0, np.inf))
    edges = np.array([2.0**-32, 1.0, 0.5, 2.0**30, np.nextafter(2.0**31, 0.0),
                      np.nextafter(1.0, 0.0), np.nextafter(0.5, 1.0), 1 - 2.0**-33])
    vals = np.concatenate([np.exp2(rng.uniform(-32, 30.9, 20000)), ties, near, edges])
    ok = [v for v in vals.tolist() if _py_mult_shift(v) is not None]
    got = mult_shift_vec(np.asarray(ok))
    assert got is not None
    mult, shift = got
    assert list(zip(mult.tolist(), shift.tolist(), strict=True)) == [_py_mult_shift(v)
                                                                      for v in ok]


def test_mult_shift_vec_defers_special_cases_to_the_scalar_path():
    for bad in ([0.0], [np.inf], [np.nan], [2.0**-40], [2.0**31], [-1.0], []):
        assert mult_shift_vec(np.asarray(bad, dtype=np.float64)) is None
    # the scalar path stores a scale below 2^-32 as multiplier 0
    s = stored_scales(np.array([0.75, 2.0**-40]), "int32_mult_shift")
    assert s.multiplier is not None and s.shift is not None
    assert s.multiplier.tolist() == [3 << 29, 0] and s.shift.tolist() == [31, 0]


@pytest.mark.parametrize("shape,k0,k1", [((4, 3, 3, 3), 0, 4), ((6, 2, 1, 3), 2, 5),
                                          ((8, 5, 2, 2), 4, 8), ((1, 1, 1, 1), 0, 1)])
def test_weight_mat_matches_python_layout(shape, k0, k1):
    k, c, kh, kw = shape
    w = np.random.default_rng(k * c).integers(-128, 128, shape, dtype=np.int8)
    ng = k1 - k0
    for src in (w, np.asfortranarray(w)):  # any strides
        fwd = np.empty((kh * kw * c, ng), np.int8)
        weight_mat(src, k0, k1, False, fwd)
        bwd = np.empty((kh * kw * ng, c), np.int8)
        weight_mat(src, k0, k1, True, bwd)
        for kk in range(ng):
            for cc in range(c):
                for i in range(kh):
                    for j in range(kw):
                        assert fwd[(i * kw + j) * c + cc, kk] == w[k0 + kk, cc, i, j]
                        assert bwd[(i * kw + j) * ng + kk, cc] == \
                            w[k0 + kk, cc, kh - 1 - i, kw - 1 - j]


def _f32_of(v: int, scale: float) -> np.float32:
    """fp32 of the float64 product: Python float (binary64) math, then one rounding."""
    return np.float32(float(v) * scale)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_rescale_kernels_match_python(dtype):
    rng = np.random.default_rng(3)
    info = np.iinfo(np.int32)
    vals = rng.integers(info.min, info.max, (5, 2 * 3 * 4), dtype=dtype, endpoint=True)
    vals[0, :4] = [info.min, info.max, 0, -1]
    if dtype == np.int64:
        vals[1, :2] = [2**62, -(2**62) - 1]  # products beyond fp32's range become inf
    with np.errstate(over="ignore"):
        for scale in (0.37e-7, 1.0, 2.0**-30 * 3, 1e30):
            flat = np.empty(vals.size, np.float32)
            scaled_flat(vals.reshape(-1), scale, flat)
            assert [x.tobytes() for x in flat] == \
                [_f32_of(int(v), scale).tobytes() for v in vals.reshape(-1)]
            out = np.empty((5, 4, 2, 3), np.float32)  # (K, C, kh, kw)
            scaled_kcij(vals, scale, out)
            for k in range(5):
                for c in range(4):
                    for i in range(2):
                        for j in range(3):
                            want = _f32_of(int(vals[k, (i * 3 + j) * 4 + c]), scale)
                            assert out[k, c, i, j].tobytes() == want.tobytes()


@pytest.mark.parametrize("shift", [[16, 40, 1, 62], [16, 40, 0, 62]])
@pytest.mark.parametrize("rounding", ["half_even", "half_away", "floor"])
def test_requant_kernel_matches_oracle(shift, rounding):
    """The fused output-stage kernel (its branch-free half-even path needs every shift > 0)
    against the Python-int requantizer, on ties, saturation and the int32 extremes."""
    from fxpsim.fixedpoint import oracle
    from fxpsim.fixedpoint.formats import QFormat
    from fxpsim.fixedpoint.modes import rounding_id
    from fxpsim.training.qkernels import requant_pix_to_nchw

    rng = np.random.default_rng(4)
    nb, oh, ow, n = 2, 3, 5, 4
    acc = rng.integers(-2**20, 2**20, (nb * oh * ow, n)).astype(np.int32)
    acc[:4] = [[2**15, -(2**15), 3, -3]] * 4  # ties at shift 16 (and at shift 1)
    acc[4:6] = 2**31 - 1
    acc[6:8] = -(2**31)
    mult = np.array([1, 2**30, 12345, 2**31 - 1], dtype=np.int64)
    sh = np.array(shift, dtype=np.int64)
    out = np.empty((nb, n, oh, ow), dtype=np.float32)
    n_ovf = requant_pix_to_nchw(acc, mult, sh, rounding_id(rounding), -128, 127, 0.25, out)
    flat = acc.ravel().tolist()
    want, want_ovf, _ = oracle.requantize(flat, mult.tolist(), shift, [i % n for i in
                                                                       range(len(flat))],
                                          QFormat(8, 0), rounding)
    codes = np.asarray(want).reshape(nb, oh, ow, n).transpose(0, 3, 1, 2)
    assert np.array_equal(out, (codes * 0.25).astype(np.float32))
    assert n_ovf == want_ovf > 0


def test_default_probe_spacing_gives_about_ten_pairs():
    """The zig-zag probe's default spacing (each probed step is one more forward and
    backward pass): the default 60-step run probes 20 steps, 10 consecutive pairs."""
    from types import SimpleNamespace

    from fxpsim.training.loop import probe_every_for
    from fxpsim.training.metrics import probe_steps

    auto = SimpleNamespace(zigzag_probe_every=None)
    assert probe_every_for(auto, 60) == 6
    at = probe_steps(probe_every_for(auto, 60), 60)
    assert len(at) == 20 and sum(1 for t in at if t + 1 in at) == 10
    assert probe_every_for(auto, 300) == 30 and probe_every_for(auto, 6) == 1
    assert probe_every_for(SimpleNamespace(zigzag_probe_every=1), 60) == 1
