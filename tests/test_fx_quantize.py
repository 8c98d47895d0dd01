"""quantize/dequantize: seeded random values in random formats and stochastic modes vs the
Python-int oracle (exact), input conversion, stats, and argument validation."""

from __future__ import annotations

import numpy as np
import pytest

from fxpsim.fixedpoint import oracle
from fxpsim.fixedpoint.formats import QFormat, QuantResult
from fxpsim.fixedpoint.modes import OVERFLOW_MODES, ROUNDING_MODES
from fxpsim.fixedpoint.quantize import dequantize, quantize
from fxpsim.fixedpoint.rng import LFSR, Philox

DETERMINISTIC = [m for m in ROUNDING_MODES if not m.startswith("stochastic")]


def _random_inputs(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = 2.0 ** rng.integers(-30, 30, n)
    x = rng.normal(0.0, 1.0, n) * scale
    x[::7] = np.round(x[::7] * 4) / 4  # plenty of exact values and ties
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_formats_vs_oracle(seed: int) -> None:
    """Random bits/frac/signedness, random values over 60 binades, every mode pair."""
    rng = np.random.default_rng(1000 + seed)
    x = _random_inputs(seed, 300)
    for rounding in DETERMINISTIC:
        for overflow in OVERFLOW_MODES:
            fmt = QFormat(int(rng.integers(2, 33)), int(rng.integers(-64, 65)),
                          bool(rng.integers(0, 2)))
            got = quantize(x, fmt, rounding, overflow, return_stats=True)
            codes, n_ovf, n_inexact = oracle.quantize(x.tolist(), fmt, rounding, overflow)
            assert got.codes.tolist() == codes, (fmt, rounding, overflow)
            assert (got.n_overflow, got.n_inexact) == (n_ovf, n_inexact)


@pytest.mark.parametrize("mode", ["stochastic", "stochastic_equal"])
@pytest.mark.parametrize("random_bits", [1, 3, 16, 32])
def test_stochastic_philox_vs_oracle(mode: str, random_bits: int) -> None:
    """Kernel (Philox inlined) == oracle fed by the Python Philox twin, element by element."""
    x = _random_inputs(7, 2000)
    fmt = QFormat(16, 6)
    rng = Philox(12345, counter=2**64 - 700)  # the 64-bit counter wraps inside this call
    got = quantize(x, fmt, mode, "saturate", rng, random_bits=random_bits)
    r = 1 if mode == "stochastic_equal" else random_bits
    rand = oracle.philox_draw(12345, 2**64 - 700, x.size, r)
    codes, _, _ = oracle.quantize(x.tolist(), fmt, mode, "saturate", rand, random_bits)
    assert got.tolist() == codes
    assert rng.counter == (2**64 - 700 + x.size) % 2**64


def test_stochastic_lfsr_and_int_seed_vs_oracle() -> None:
    x = _random_inputs(8, 3000).reshape(30, 100)
    fmt = QFormat(8, 3, signed=False)
    lfsr = LFSR(16, "x^16+x^14+x^13+x^11+1", kind="fibonacci", seed=99, lanes=4)
    got = quantize(x, fmt, "stochastic", "wrap", lfsr, random_bits=8)
    rand = oracle.lfsr_draw(16, (16, 14, 13, 11), "fibonacci", 99, 4, 1, x.size, 8)
    codes, _, _ = oracle.quantize(x.ravel().tolist(), fmt, "stochastic", "wrap", rand, 8)
    assert got.shape == x.shape and got.ravel().tolist() == codes
    got_seed = quantize(x, fmt, "stochastic", "numeric_std", 5, random_bits=12)
    rand = oracle.philox_draw(5, 0, x.size, 12)
    codes, _, _ = oracle.quantize(x.ravel().tolist(), fmt, "stochastic", "numeric_std", rand,
                                  12)
    assert got_seed.ravel().tolist() == codes


def test_stochastic_edge_fractions_vs_oracle() -> None:
    """Negative values, tiny fractions (|v| < 2**-1000 after scaling), huge values."""
    vals = [-(2.0**-1070), 2.0**-1070, -0.3, 0.3, -2.5, 2.5, 1e300, -1e300, -0.0, 7.0,
            -(1 - 2.0**-40), 1 - 2.0**-40]
    vals += [2.0**-1060, -(2.0**-1060), 5e-324, -5e-324, 127.5, -128.5, 128.25, -129.75,
             -127.999, 2.0**62, -(2.0**70)]
    x = np.array(vals * 4)
    # saturate/saturate_symmetric with frac >= 0 take the branch-free stochastic kernel
    for overflow in ("wrap", "saturate", "saturate_symmetric"):
        for frac in (0, -20, 12):
            for fmt in (QFormat(8, frac), QFormat(8, frac, signed=False)):
                for r in (1, 5, 32):
                    got = quantize(x, fmt, "stochastic", overflow, Philox(3), random_bits=r,
                                   return_stats=True)
                    rand = oracle.philox_draw(3, 0, x.size, r)
                    codes, n_ovf, n_inexact = oracle.quantize(x.tolist(), fmt, "stochastic",
                                                              overflow, rand, r)
                    assert got.codes.tolist() == codes, (overflow, fmt, r)
                    assert (got.n_overflow, got.n_inexact) == (n_ovf, n_inexact)
                    lfsr_got = quantize(x, fmt, "stochastic", overflow, LFSR(8, seed=4),
                                        random_bits=min(r, 8))
                    rand = oracle.lfsr_draw(8, (8, 6, 5, 4), "galois", 4, 1, 1, x.size,
                                            min(r, 8))
                    codes, _, _ = oracle.quantize(x.tolist(), fmt, "stochastic", overflow,
                                                  rand, min(r, 8))
                    assert lfsr_got.tolist() == codes, (overflow, fmt, r)


def test_fast_and_generic_paths_agree_with_oracle() -> None:
    """half_even/floor/ceil/trunc + saturate use a vectorized loop when frac >= 0; check both
    it and the general kernel (frac < 0, wrap) on identical data."""
    x = _random_inputs(11, 2000)
    for rounding in ("half_even", "floor", "ceil", "trunc"):
        for fmt in (QFormat(12, 5), QFormat(12, -5), QFormat(12, 0, signed=False)):
            for overflow in ("saturate", "saturate_symmetric", "wrap"):
                got = quantize(x, fmt, rounding, overflow, return_stats=True)
                codes, n_ovf, n_inexact = oracle.quantize(x.tolist(), fmt, rounding, overflow)
                assert got.codes.tolist() == codes
                assert (got.n_overflow, got.n_inexact) == (n_ovf, n_inexact)


def test_input_conversion_and_shape() -> None:
    fmt = QFormat(8, 4)
    x32 = np.array([[0.1, -0.7], [3.3, 100.0]], dtype=np.float32)
    got = quantize(x32, fmt)
    assert got.dtype == np.int64 and got.shape == (2, 2)
    codes, _, _ = oracle.quantize([float(v) for v in x32.ravel()], fmt)  # exact float32 values
    assert got.ravel().tolist() == codes
    assert quantize(np.array([3, -2, 200]), fmt).tolist() == [48, -32, 127]
    assert quantize(2.25, fmt).shape == ()
    assert int(quantize(2.25, fmt)) == 36
    with pytest.raises(ValueError, match="x"):
        quantize(np.array([2**60], dtype=np.int64), fmt)
    with pytest.raises(ValueError, match="x"):
        quantize(np.array(["a"]), fmt)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_rejected(bad: float) -> None:
    for rounding in ("half_even", "half_away", "stochastic"):
        with pytest.raises(ValueError, match="x: 1 non-finite"):
            quantize(np.array([1.0, bad, 2.0]), QFormat(8, 0), rounding, rng=1)


def test_stats_and_dequantize_roundtrip() -> None:
    fmt = QFormat(6, 2)
    codes = np.arange(fmt.lo, fmt.hi + 1)
    x = dequantize(codes, fmt)
    assert x.dtype == np.float64 and x.tolist() == [c / 4 for c in codes.tolist()]
    res = quantize(x, fmt, "half_even", "saturate", return_stats=True)
    assert isinstance(res, QuantResult)
    assert res.codes.tolist() == codes.tolist()
    assert (res.n_overflow, res.n_inexact) == (0, 0)
    sym = quantize(x, fmt, "half_even", "saturate_symmetric", return_stats=True)
    assert sym.n_overflow == 1 and sym.codes.min() == -fmt.hi


def test_argument_validation() -> None:
    fmt = QFormat(8, 0)
    x = np.zeros(3)
    with pytest.raises(ValueError, match="rounding: unknown rounding mode 'nearest'.*half_even"):
        quantize(x, fmt, "nearest")
    with pytest.raises(ValueError, match="overflow: unknown overflow mode 'clip'.*saturate"):
        quantize(x, fmt, "floor", "clip")
    with pytest.raises(ValueError, match="rng"):
        quantize(x, fmt, "stochastic")
    with pytest.raises(ValueError, match="rng"):
        quantize(x, fmt, "stochastic_equal", rng="seed")
    for bad in (0, 33):
        with pytest.raises(ValueError, match="random_bits"):
            quantize(x, fmt, "stochastic", rng=1, random_bits=bad)
    with pytest.raises(ValueError, match="bits"):
        quantize(x, fmt, "stochastic", rng=LFSR(8), random_bits=9)
    with pytest.raises(ValueError, match="fmt"):
        quantize(x, (8, 0))
    with pytest.raises(ValueError, match="codes"):
        dequantize(np.array([0.5]), fmt)
