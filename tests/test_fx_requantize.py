"""requantize / requantize_fp32 / quantize_multiplier vs the Python-int oracle: every int8 and
int16 accumulator, dense int32 edges, shift 0 and large shifts, per-channel broadcasting."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from fxpsim.fixedpoint import oracle
from fxpsim.fixedpoint.formats import QFormat
from fxpsim.fixedpoint.modes import OVERFLOW_MODES, ROUNDING_MODES
from fxpsim.fixedpoint.requantize import quantize_multiplier, requantize, requantize_fp32
from fxpsim.fixedpoint.rng import Philox

DETERMINISTIC = [m for m in ROUNDING_MODES if not m.startswith("stochastic")]
MULT_SHIFT = [(1, 0), (1, 1), (3, 2), (1 << 30, 31), (2**31 - 1, 36), (-(2**31 - 1), 40),
              (12345, 13), (-77, 4), (1, 62), (2**31 - 1, 62), (0, 5)]


def _check(acc, mult, shift, fmt, rounding, overflow, channels=None, **kw) -> None:
    acc = np.asarray(acc)
    got = requantize(acc, mult, shift, fmt, rounding, overflow, return_stats=True, **kw)
    nch = max(np.size(mult), np.size(shift))
    m = np.broadcast_to(mult, (nch,)).tolist()
    s = np.broadcast_to(shift, (nch,)).tolist()
    if channels is None:
        channels = [0] * acc.size
    codes, n_ovf, n_inexact = oracle.requantize(acc.ravel().tolist(), m, s, channels, fmt,
                                                rounding, overflow)
    assert got.codes.shape == acc.shape
    assert got.codes.ravel().tolist() == codes, (mult, shift, fmt, rounding, overflow)
    assert (got.n_overflow, got.n_inexact) == (n_ovf, n_inexact)


def test_all_int8_acc_every_mode() -> None:
    """Every int8 accumulator value x every rounding x overflow x (multiplier, shift)."""
    acc = np.arange(-128, 128)
    for rounding in DETERMINISTIC:
        for overflow in OVERFLOW_MODES:
            for mult, shift in MULT_SHIFT:
                _check(acc, mult, shift, QFormat(4, 0), rounding, overflow)
            _check(acc, 5, 3, QFormat(6, 0, signed=False), rounding, overflow)


@pytest.mark.parametrize("rounding,overflow", [("half_even", "saturate"), ("floor", "wrap"),
                                               ("half_away", "numeric_std"),
                                               ("jam_unbiased", "saturate_symmetric")])
def test_all_int16_acc(rounding: str, overflow: str) -> None:
    acc = np.arange(-(2**15), 2**15)
    for mult, shift in [(1, 0), (1 << 30, 35), (1717986918, 34), (-(2**31 - 1), 38)]:
        _check(acc, mult, shift, QFormat(8, 0), rounding, overflow)


def _int32_edges() -> np.ndarray:
    vals = {0, 1, -1, 2**31 - 1, -(2**31), 2**32, -(2**32)}
    for i in range(33):
        for d in (-1, 0, 1):
            vals |= {2**i + d, -(2**i) + d}
    for s in (1, 2, 7, 15, 31):  # ties produced by the shift (with multiplier 1)
        for k in range(-5, 6):
            vals |= {k * 2**s + 2 ** (s - 1), k * 2**s - 2 ** (s - 1)}
    return np.array(sorted(v for v in vals if abs(v) <= 2**32))


def test_int32_edges_every_mode() -> None:
    acc = _int32_edges()
    for rounding in DETERMINISTIC:
        for overflow in OVERFLOW_MODES:
            for mult, shift in [(1, 0), (1, 1), (1, 7), (1, 31), (2**31 - 1, 62), (3, 2),
                                (-(2**31 - 1), 31)]:
                _check(acc, mult, shift, QFormat(16, 0), rounding, overflow)


def test_wide_acc_with_small_multiplier() -> None:
    """|acc * multiplier| < 2**63 is the real limit: 62-bit accumulators with multiplier 1."""
    acc = np.array([2**62, -(2**62), 2**62 - 1, 2**63 - 1, -(2**63 - 1), 3 << 40])
    for rounding in ("half_even", "ceil", "half_odd"):
        _check(acc, 1, 40, QFormat(32, 0), rounding, "wrap")
        _check(acc, 1, 0, QFormat(32, 0), rounding, "numeric_std")


def test_per_channel_broadcasting() -> None:
    rng = np.random.default_rng(3)
    acc = rng.integers(-(2**31), 2**31, (3, 5, 4))
    mult = np.array([1 << 30, 1717986918, 3, -(2**31 - 1)])
    shift = np.array([31, 34, 0, 50])
    ch_last = [i % 4 for i in range(acc.size)]
    _check(acc, mult, shift, QFormat(8, 0), "half_even", "saturate", ch_last)
    _check(acc, mult, 33, QFormat(8, 0), "floor", "wrap", ch_last)  # scalar shift broadcast
    acc_mid = np.moveaxis(acc, 2, 1).copy()  # shape (3, 4, 5), channels on axis 1
    ch_mid = [(i // 5) % 4 for i in range(acc_mid.size)]
    _check(acc_mid, mult, shift, QFormat(8, 0), "half_up", "saturate", ch_mid, axis=1)
    with pytest.raises(ValueError, match="multiplier: per-channel"):
        requantize(acc, mult, shift, QFormat(8, 0), axis=1)
    with pytest.raises(ValueError, match="shift: per-channel"):
        requantize(acc, 1, np.array([1, 2]), QFormat(8, 0))


def test_stochastic_vs_oracle() -> None:
    acc = np.random.default_rng(4).integers(-(2**20), 2**20, (40, 25))
    mult = np.arange(25) * 1000 + 7
    shift = np.arange(25) % 20
    ch = [i % 25 for i in range(acc.size)]
    for mode, bits in (("stochastic", 5), ("stochastic", 24), ("stochastic_equal", 16)):
        got = requantize(acc, mult, shift, QFormat(8, 0), mode, "saturate", Philox(9),
                         random_bits=bits)
        r = 1 if mode == "stochastic_equal" else bits
        rand = oracle.philox_draw(9, 0, acc.size, r)
        codes, _, _ = oracle.requantize(acc.ravel().tolist(), mult.tolist(), shift.tolist(),
                                        ch, QFormat(8, 0), mode, "saturate", rand, bits)
        assert got.ravel().tolist() == codes


def test_fp32_stage_vs_oracle() -> None:
    rng = np.random.default_rng(5)
    acc = np.concatenate([_int32_edges(), rng.integers(-(2**40), 2**40, 300),
                          np.array([2**53 + 1, 2**60 + 2**36 + 1, -(2**62) - 2**37 - 1])])
    for scale in (0.1, 1.0 / 3.0, 2.0**-20, 7.5, -0.37, 1e-30):
        for rounding in ("half_even", "half_away", "floor", "jam"):
            got = requantize_fp32(acc, scale, QFormat(8, 0), rounding, "saturate",
                                  return_stats=True)
            codes, n_ovf, n_inexact = oracle.requantize_fp32(acc.tolist(), [scale],
                                                             [0] * acc.size, QFormat(8, 0),
                                                             rounding, "saturate")
            assert got.codes.tolist() == codes
            assert (got.n_overflow, got.n_inexact) == (n_ovf, n_inexact)
    acc2 = acc[: 300].reshape(100, 3)
    scales = [0.01, 3.0, 1e-5]
    got = requantize_fp32(acc2, np.array(scales), QFormat(16, 0), "half_even", "wrap")
    codes, _, _ = oracle.requantize_fp32(acc2.ravel().tolist(), scales,
                                         [i % 3 for i in range(acc2.size)], QFormat(16, 0),
                                         "half_even", "wrap")
    assert got.ravel().tolist() == codes
    with pytest.raises(ValueError, match="scale"):
        requantize_fp32(acc, float("nan"), QFormat(8, 0))


def test_quantize_multiplier() -> None:
    for real in (0.1, 1.0 / 3.0, 0.5, 0.75, 1.0, 1.5, 2.0**-31, 1234.5678,
                 1.0 - 2.0**-40, 2.0**30 * 1.999):
        m, s = quantize_multiplier(real)
        assert 2**30 <= m < 2**31 and 0 <= s <= 62
        err = abs(Fraction(m, 2**s) - Fraction(real))
        assert err <= Fraction(1, 2 ** (s + 1))  # within half a multiplier LSB
    assert quantize_multiplier(0.5) == (2**30, 31)
    assert quantize_multiplier(1.0 - 2.0**-40) == (2**30, 30)  # rounds up to 2**31, renormalised
    assert quantize_multiplier(0.1) == (1717986918, 34)
    for bad in (0.0, -1.0, math.inf, math.nan, 2.0**31, 2.0**-40):
        with pytest.raises(ValueError, match="real_scale"):
            quantize_multiplier(bad)


def test_argument_validation() -> None:
    fmt = QFormat(8, 0)
    acc = np.array([1, 2, 3])
    with pytest.raises(ValueError, match="acc: must be an integer"):
        requantize(acc.astype(float), 1, 0, fmt)
    with pytest.raises(ValueError, match="multiplier"):
        requantize(acc, 2**31, 0, fmt)
    with pytest.raises(ValueError, match="shift"):
        requantize(acc, 1, 63, fmt)
    with pytest.raises(ValueError, match="shift"):
        requantize(acc, 1, -1, fmt)
    with pytest.raises(ValueError, match="acc: 1 element"):
        requantize(np.array([2**32 + 5, 4]), 2**31 - 1, 0, fmt)
    with pytest.raises(ValueError, match="rounding"):
        requantize(acc, 1, 0, fmt, "bankers")
    with pytest.raises(ValueError, match="rng"):
        requantize(acc, 1, 0, fmt, "stochastic")
    with pytest.raises(ValueError, match="out_fmt"):
        requantize(acc, 1, 0, 8)
