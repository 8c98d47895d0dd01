"""Fast LFSR paths (cycle table, jump-ahead chunks, fused stochastic quantize) against the
bit-by-bit Python twin: many (width, taps, kind, lanes, steps_per_draw, n) combinations,
period wrap-around, chunk boundaries, consecutive requests, and 1 vs 2 Numba threads."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from fxpsim.fixedpoint import oracle
from fxpsim.fixedpoint.formats import QFormat
from fxpsim.fixedpoint.quantize import QCHUNK, quantize
from fxpsim.fixedpoint.rng import JUMP_MIN_DRAWS, LFSR, TABLE_MAX_WIDTH, parse_taps

SEED = 2024


def _twin(width, taps, kind, lanes, steps, sizes, bits, seed=SEED):
    """Draws of consecutive requests of `sizes`, replayed lane by lane with oracle.lfsr_step
    (each request restarts the element -> lane mapping at lane 0)."""
    exps = parse_taps(taps, width)
    states = [(oracle.splitmix64(seed + lane) % 2**width) or 1 for lane in range(lanes)]
    out = []
    for n in sizes:
        req = []
        for i in range(n):
            lane = i % lanes
            for _ in range(steps):
                states[lane] = oracle.lfsr_step(states[lane], width, exps, kind)
            req.append(states[lane] % 2**bits)
        out.append(req)
    return out, states


CASES = [  # width, taps, kind, lanes, steps, request sizes, bits
    (4, (4, 3), "galois", 1, 1, [100, 7, 0, 40], 4),  # period 15: many wrap-arounds
    (4, "x^4+x^3+1", "fibonacci", 3, 7, [50, 2, 31], 3),
    (5, (5, 3), "galois", 2, 31, [40, 9], 5),  # steps == period: lanes stand still
    (5, (5, 3), "fibonacci", 4, 100, [37, 5], 2),  # steps > period
    (8, None, "galois", 1, 1, [70_001, 3], 8),  # crosses table chunks (2**15)
    (8, (8, 4), "galois", 5, 1, [3000, 1], 8),  # x^8+x^4+1 is reducible: short cycles
    (8, (8, 4), "fibonacci", 3, 2, [2000], 6),
    (8, (8, 1), "galois", 2, 3, [500, 17], 8),
    (16, None, "galois", 7, 3, [40_003, 11], 16),
    (16, "x^16+x^14+x^13+x^11+1", "fibonacci", 16, 1, [65_536 + 5], 8),
    (16, None, "galois", 1, 1, [65_535 * 2 + 3], 1),  # whole period twice
    (12, (12, 6, 4, 1), "fibonacci", 3, 5, [4097, 1], 12),
    (20, (20, 17), "galois", 2, 1, [5000], 20),
    (24, None, "fibonacci", 1, 1, [3 * JUMP_MIN_DRAWS + 5, 10], 24),  # jump mode, 4 chunks
    (24, None, "galois", 2, 3, [2 * 2 * JUMP_MIN_DRAWS + 3], 24),  # jump mode, 2 lanes
    (32, None, "galois", 3, 2, [3 * JUMP_MIN_DRAWS + 1, 9], 32),  # jump, then sequential
    (32, (32, 22, 2, 1), "fibonacci", 1, 65, [JUMP_MIN_DRAWS + 7], 16),
    (21, (21, 19), "galois", 40, 1, [200], 21),  # few draws per lane: sequential path
]


@pytest.mark.parametrize("width,taps,kind,lanes,steps,sizes,bits", CASES)
def test_fast_draw_vs_twin(width, taps, kind, lanes, steps, sizes, bits) -> None:
    lfsr = LFSR(width, taps, kind=kind, seed=SEED, lanes=lanes, steps_per_draw=steps)
    got = [lfsr.draw(n, bits).tolist() for n in sizes]
    expect, states = _twin(width, taps, kind, lanes, steps, sizes, bits)
    assert got == expect
    assert lfsr.state == tuple(states)


def test_plan_modes() -> None:
    """The paths the cases above are meant to exercise are the ones taken."""
    assert LFSR(TABLE_MAX_WIDTH, (20, 17)).plan(5).table
    jump = LFSR(24).plan(JUMP_MIN_DRAWS)
    assert jump is not None and not jump.table
    lfsr = LFSR(32, lanes=2)
    before = lfsr.state
    assert lfsr.plan(2 * JUMP_MIN_DRAWS - 1) is None and lfsr.state == before  # no advance


def test_many_lanes_table() -> None:
    """More lanes than a table chunk (each element its own lane) and lanes never drawn."""
    lfsr = LFSR(8, seed=9, lanes=40_000, steps_per_draw=3)
    ref = lfsr.copy()
    for n in (33_000, 40_000, 39_999, 5):
        assert lfsr.draw(n, 8).tolist() == ref.draw_sequential(n, 8).tolist()
        assert lfsr.state == ref.state
    expect, states = _twin(8, None, "galois", 40_000, 3, [33_000], 8, seed=9)
    assert LFSR(8, seed=9, lanes=40_000, steps_per_draw=3).draw(33_000, 8).tolist() == expect[0]


@pytest.mark.parametrize("make", [
    lambda: LFSR(16, seed=3, lanes=5, steps_per_draw=2),
    lambda: LFSR(8, (8, 4), kind="fibonacci", seed=3, lanes=3),
    lambda: LFSR(24, seed=3, lanes=2),
    lambda: LFSR(32, kind="fibonacci", seed=3, lanes=1, steps_per_draw=3),
])
def test_fast_draw_vs_sequential_random_requests(make) -> None:
    """Seeded random request sizes (0 .. 50k), checked request by request with the
    sequential kernel and the final state with the twin."""
    fast, seq = make(), make()
    sizes = np.random.default_rng(4).integers(0, 50_000, 6).tolist() + [0, 1]
    for n in sizes:
        assert np.array_equal(fast.draw(n, fast.width), seq.draw_sequential(n, seq.width))
        assert fast.state == seq.state


def _codes_twin(x, fmt, overflow, lfsr_args, r):
    width, taps, kind, lanes, steps = lfsr_args
    rand = _twin(width, taps, kind, lanes, steps, [x.size], r)[0][0]
    return oracle.quantize(x.tolist(), fmt, "stochastic", overflow, rand, r)


@pytest.mark.parametrize("lfsr_args,r,n", [
    ((16, None, "galois", 1, 1), 8, 3 * QCHUNK + 17),  # fused, table mode
    ((16, None, "fibonacci", 6, 5), 16, 2 * QCHUNK + 1),
    ((8, (8, 4), "galois", 3, 1), 5, QCHUNK + 3),  # reducible polynomial
    ((24, None, "galois", 1, 2), 12, 2 * JUMP_MIN_DRAWS + 9),  # fused, jump mode
    ((32, None, "galois", 16, 1), 8, 1000),  # sequential fallback, pre-drawn values
])
@pytest.mark.parametrize("overflow", ["saturate", "saturate_symmetric", "wrap"])
def test_quantize_lfsr_vs_oracle(lfsr_args, r, n, overflow) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(0.0, 6.0, n)
    x[::5] = np.round(x[::5] * 64) / 64  # exact values, ties and fractions with few bits
    x[1::97] = 1e300  # saturates
    fmt = QFormat(8, 3)
    lfsr = LFSR(*lfsr_args[:2], kind=lfsr_args[2], seed=SEED, lanes=lfsr_args[3],
                steps_per_draw=lfsr_args[4])
    got = quantize(x, fmt, "stochastic", overflow, lfsr, random_bits=r, return_stats=True)
    codes, n_ovf, n_inexact = _codes_twin(x, fmt, overflow, lfsr_args, r)
    assert got.codes.tolist() == codes
    assert (got.n_overflow, got.n_inexact) == (n_ovf, n_inexact)
    # the generator advanced by exactly one draw per element
    assert lfsr.state == tuple(_twin(*lfsr_args, [n], 1)[1])


def test_quantize_lfsr_bits_wider_than_lfsr() -> None:
    lfsr = LFSR(8, seed=1)
    before = lfsr.state
    with pytest.raises(ValueError, match="bits"):
        quantize(np.zeros(4), QFormat(8, 0), "stochastic", "saturate", lfsr, random_bits=9)
    assert lfsr.state == before


def test_fast_paths_thread_count_independent() -> None:
    x = np.random.default_rng(8).normal(0.0, 4.0, 3 * QCHUNK + 5)
    old = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append((
                LFSR(16, seed=5, lanes=3).draw(100_001, 16),
                LFSR(24, seed=5).draw(5 * JUMP_MIN_DRAWS + 3, 24),
                quantize(x, QFormat(8, 3), "stochastic", "saturate", LFSR(16, seed=5),
                         random_bits=8),
                quantize(x, QFormat(8, 3), "stochastic", "saturate", LFSR(24, seed=5),
                         random_bits=8),
            ))
    finally:
        numba.set_num_threads(old)
    for a, b in zip(*results, strict=True):
        assert np.array_equal(a, b)
