"""Hardware RNGs (Philox known answers, LFSR periods, kernel == Python twin) and stochastic
rounding statistics (exact up-probability over all R, stated 5-sigma bounds, determinism
across thread counts)."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from fxpsim.fixedpoint import oracle
from fxpsim.fixedpoint.formats import QFormat
from fxpsim.fixedpoint.quantize import quantize
from fxpsim.fixedpoint.requantize import requantize
from fxpsim.fixedpoint.rng import DEFAULT_POLYNOMIALS, LFSR, Philox, parse_taps, philox_block

KAT = [  # Random123 kat_vectors, philox4x32_10: (ctr, key, expected output)
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_philox_known_answers(ctr, key, expected) -> None:
    assert tuple(int(w) for w in philox_block(*ctr, *key)) == expected
    assert oracle.philox4x32_10(ctr, key) == expected


def test_philox_draw_vs_oracle_and_state() -> None:
    p = Philox(0xDEADBEEF12345678, counter=2**32 - 3)  # crosses into counter word 1
    a = p.draw(5000, 32)
    assert a.dtype == np.uint64
    assert a.tolist() == oracle.philox_draw(0xDEADBEEF12345678, 2**32 - 3, 5000, 32)
    snap = p.copy()
    b = p.draw(100, 7)
    assert b.tolist() == snap.draw(100, 7).tolist()
    assert p.state == snap.state == (0xDEADBEEF12345678, 2**32 - 3 + 5100)
    assert b.tolist() == oracle.philox_draw(0xDEADBEEF12345678, 2**32 + 4997, 100, 7)
    with pytest.raises(ValueError, match="seed"):
        Philox(-1)
    with pytest.raises(ValueError, match="bits"):
        p.draw(3, 33)


def test_parse_taps() -> None:
    assert parse_taps("x^16+x^14+x^13+x^11+1", 16) == (16, 14, 13, 11)
    assert parse_taps("x^32 + x^22 + x^2 + x + 1", 32) == (32, 22, 2, 1)
    assert parse_taps([4, 8, 5, 6], 8) == (8, 6, 5, 4)
    for bad, width in (("x^16+x^14", 16), ("x^15+x^14+1", 16), ("y^3+1", 3), ((9, 1), 8)):
        with pytest.raises(ValueError, match="taps"):
            parse_taps(bad, width)


@pytest.mark.parametrize("width", [8, 16])
@pytest.mark.parametrize("kind", ["galois", "fibonacci"])
def test_lfsr_maximal_period(width: int, kind: str) -> None:
    """The default polynomials give an m-sequence: 2**w - 1 distinct nonzero states, then the
    sequence repeats."""
    period = 2**width - 1
    states = LFSR(width, kind=kind, seed=7).draw(period + 1, width)
    assert len(set(states[:period].tolist())) == period
    assert 0 not in states.tolist()
    assert states[period] == states[0]
    # an m-sequence's output bit stream is balanced: 2**(w-1) ones per period
    assert int((states[:period] & 1).sum()) == 2 ** (width - 1)


def _gf2_mulmod(a: int, b: int, poly: int, deg: int) -> int:
    r = 0
    while b:
        if b & 1:
            r ^= a
        b >>= 1
        a <<= 1
        if a >> deg & 1:
            a ^= poly
    return r


def _gf2_powmod_x(e: int, poly: int, deg: int) -> int:
    result, base = 1, 2
    while e:
        if e & 1:
            result = _gf2_mulmod(result, base, poly, deg)
        base = _gf2_mulmod(base, base, poly, deg)
        e >>= 1
    return result


def _prime_factors(n: int) -> set[int]:
    out, p = set(), 2
    while p * p <= n:
        while n % p == 0:
            out.add(p)
            n //= p
        p += 1
    return out | ({n} if n > 1 else set())


@pytest.mark.parametrize("width", sorted(DEFAULT_POLYNOMIALS))
def test_default_polynomials_primitive(width: int) -> None:
    """x has order exactly 2**w - 1 modulo each default polynomial (so the LFSR period is
    maximal, also for the widths too long to step through)."""
    poly = sum(1 << e for e in DEFAULT_POLYNOMIALS[width]) | 1
    order = 2**width - 1
    assert _gf2_powmod_x(order, poly, width) == 1
    for q in _prime_factors(order):
        assert _gf2_powmod_x(order // q, poly, width) != 1


@pytest.mark.parametrize("width,taps,kind,lanes,steps,bits", [
    (8, None, "galois", 1, 1, 8),
    (16, "x^16+x^14+x^13+x^11+1", "fibonacci", 1, 1, 16),
    (16, None, "galois", 5, 3, 4),
    (24, None, "fibonacci", 2, 1, 24),
    (32, "x^32+x^22+x^2+x+1", "galois", 16, 8, 8),
    (32, None, "fibonacci", 3, 2, 32),
])
def test_lfsr_vs_oracle(width, taps, kind, lanes, steps, bits) -> None:
    """First 10**4 draws equal the bit-by-bit Python twin; state continues across calls."""
    lfsr = LFSR(width, taps, kind=kind, seed=2024, lanes=lanes, steps_per_draw=steps)
    got = lfsr.draw(6000, bits).tolist() + lfsr.draw(4000, bits).tolist()
    exps = parse_taps(taps, width)
    # two requests of 6000 and 4000: lane i % lanes restarts at lane 0 for each request
    expect = oracle.lfsr_draw(width, exps, kind, 2024, lanes, steps, 6000, bits)
    rest = _continue(width, exps, kind, lanes, steps, 6000, 4000, bits)
    assert got == expect + rest


def _continue(width, taps, kind, lanes, steps, done, n, bits):
    """Draws done+1..done+n when the first request had `done` elements (lane-wise replay)."""
    states = [(oracle.splitmix64(2024 + lane) % 2**width) or 1 for lane in range(lanes)]
    for i in range(done):
        for _ in range(steps):
            states[i % lanes] = oracle.lfsr_step(states[i % lanes], width, taps, kind)
    out = []
    for i in range(n):
        for _ in range(steps):
            states[i % lanes] = oracle.lfsr_step(states[i % lanes], width, taps, kind)
        out.append(states[i % lanes] % 2**bits)
    return out


def test_lfsr_copy_state_and_validation() -> None:
    a = LFSR(16, seed=1, lanes=2)
    b = a.copy()
    assert a.state == b.state
    assert a.draw(10, 16).tolist() == b.draw(10, 16).tolist()
    assert all(0 < s < 2**16 for s in a.state)
    with pytest.raises(ValueError, match="bits"):
        a.draw(3, 17)
    with pytest.raises(ValueError, match="width"):
        LFSR(40)
    with pytest.raises(ValueError, match="taps"):
        LFSR(12)  # no default polynomial for width 12
    with pytest.raises(ValueError, match="kind"):
        LFSR(16, kind="xorshift")


class _AllValues:
    """Fake RNG yielding each r-bit value exactly once (in a scrambled order)."""

    def __init__(self, bits: int) -> None:
        self.values = np.random.default_rng(0).permutation(2**bits).astype(np.uint64)

    def draw(self, n: int, bits: int) -> np.ndarray:
        assert n == self.values.size == 2**bits
        return self.values

    def copy(self) -> _AllValues:
        return self


@pytest.mark.parametrize("r", [1, 3, 8])
@pytest.mark.parametrize("value", [0.3, 0.375, -0.3, 2.0 - 2.0**-30, 5.0, -7.125])
def test_stochastic_up_probability_exact(r: int, value: float) -> None:
    """Over all 2**r values of R the number of round-ups is exactly floor(f * 2**r)."""
    x = np.full(2**r, value)
    codes = quantize(x, QFormat(16, 0), "stochastic", "saturate", _AllValues(r),
                     random_bits=r)
    n = math.floor(value)
    f = value - n
    assert set(codes.tolist()) <= {n, n + 1}
    assert int((codes == n + 1).sum()) == math.floor(f * 2**r)
    eq = quantize(x[:2], QFormat(16, 0), "stochastic_equal", "saturate", _AllValues(1))
    assert sorted(eq.tolist()) == ([n, n + 1] if f else [n, n])


def test_requantize_stochastic_up_probability_exact() -> None:
    """acc * m / 2**s with discarded bits 0b10110 (f = 22/32): r = 3 -> floor(5.5) = 5 ups."""
    acc = np.full(8, 3 * 32 + 22)
    codes = requantize(acc, 1, 5, QFormat(8, 0), "stochastic", "saturate", _AllValues(3),
                       random_bits=3)
    assert int((codes == 4).sum()) == 5 and int((codes == 3).sum()) == 3


@pytest.mark.parametrize("make_rng", [lambda: Philox(77), lambda: LFSR(16, seed=77)])
@pytest.mark.parametrize("f,r", [(0.375, 3), (0.3, 3), (0.3, 16)])
def test_stochastic_statistics(make_rng, f: float, r: int) -> None:
    """N = 2e5 roundings of n + f: the mean up-rate p_hat is within 5 sigma
    (sigma = sqrt(p(1-p)/N)) of p = floor(f * 2**r) / 2**r; the bias p - f equals the
    documented truncation bias -(f - floor(f*2**r)/2**r) (0 for f = 3/8 with r = 3, -0.05 for
    f = 0.3 with r = 3, which the test must be able to see: |p - f| > 5 sigma there)."""
    n_samples = 200_000
    x = np.full(n_samples, 2.0 + f)
    codes = quantize(x, QFormat(8, 0), "stochastic", "saturate", make_rng(), random_bits=r)
    p_hat = float((codes - 2).mean())
    p = math.floor(f * 2**r) / 2**r
    sigma = math.sqrt(p * (1 - p) / n_samples)
    assert abs(p_hat - p) < 5 * sigma
    bias = -(f - math.floor(f * 2**r) / 2**r)
    assert p - f == pytest.approx(bias, abs=1e-15)
    if abs(bias) > 10 * sigma:
        assert abs(p_hat - f) > 5 * sigma


def test_same_seed_same_codes_any_thread_count() -> None:
    """Same seed -> identical codes, with 1 and 2 Numba threads (Philox and multi-lane LFSR)."""
    x = np.random.default_rng(1).normal(0, 4, 100_003)
    acc = np.random.default_rng(2).integers(-(2**31), 2**31, 100_003)
    old = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append((
                quantize(x, QFormat(8, 3), "stochastic", "saturate", Philox(5), random_bits=8),
                quantize(x, QFormat(8, 3), "stochastic", "wrap", LFSR(16, seed=5, lanes=7)),
                requantize(acc, 1 << 30, 40, QFormat(8, 0), "stochastic_equal", "saturate", 9),
                LFSR(32, seed=3, lanes=5).draw(50_000, 32),
            ))
    finally:
        numba.set_num_threads(old)
    for a, b in zip(*results, strict=True):
        assert np.array_equal(a, b)
    again = quantize(x, QFormat(8, 3), "stochastic", "saturate", Philox(5), random_bits=8)
    assert np.array_equal(results[0][0], again)
    other = quantize(x, QFormat(8, 3), "stochastic", "saturate", Philox(6), random_bits=8)
    assert not np.array_equal(results[0][0], other)
