"""matmul (every fast path) == the Python-int sequential oracle, values AND overflow events."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxpsim.fixedpoint.formats import QFormat
from fxpsim.fixedpoint.gemm import (
    Operand,
    bound_flags,
    matmul,
    static_safe,
)
from fxpsim.fixedpoint.oracle import overflow as h1_overflow
from fxpsim.fixedpoint.oracle_gemm import OVERFLOW_MODES, matmul_oracle, register_add

PATHS = ("auto", "sequential", "bound", "static")


def check_all_paths(a, b, bits, mode, chunk=None):
    """Every applicable path equals the oracle; returns the number of paths run."""
    want_v, want_e = matmul_oracle(a, b, bits, mode)
    ran = 0
    max_prod = int(np.abs(np.asarray(a, np.int64)).max(initial=0)) * int(
        np.abs(np.asarray(b, np.int64)).max(initial=0))
    k = np.shape(a)[1]
    for path in PATHS:
        if (path == "static" and not static_safe(k, max_prod, bits, mode)) or (
                path == "bound" and k * max_prod >= 2**63):
            with pytest.raises(ValueError, match="path"):
                matmul(a, b, bits, mode, _path=path)
            continue
        res = matmul(a, b, bits, mode, return_events=True, _path=path, _chunk=chunk)
        assert res.values.dtype == (np.int32 if bits <= 32 else np.int64)
        assert res.events.dtype == np.int64
        assert res.values.tolist() == want_v, (path, bits, mode)
        assert res.events.tolist() == want_e, (path, bits, mode)
        ran += 1
    return ran


def test_register_add_matches_independent_overflow_oracle():
    """Our register_add agrees with the format module's overflow twin for every mode."""
    for bits in (2, 3, 4, 8):
        fmt = QFormat(bits, 0)
        for mode in OVERFLOW_MODES:
            for acc in range(-(1 << (bits - 1)), 1 << (bits - 1)):
                if mode == "saturate_symmetric" and acc == -(1 << (bits - 1)):
                    continue  # not a reachable register state
                for p in range(-40, 41):
                    v, e = register_add(acc, p, bits, mode)
                    assert (v, e) == h1_overflow(acc + p, fmt, mode)


@pytest.mark.parametrize("mode", OVERFLOW_MODES)
def test_exhaustive_int4_pairs(mode):
    """All INT4 x INT4 products (K=1) and all INT4 pairs of pairs (K=2), narrow registers."""
    v = np.arange(-8, 8)
    a1, b1 = v[:, None], v[None, :]
    pairs = np.array([(x, y) for x in v for y in v])
    for bits in (4, 6, 8, 16):
        check_all_paths(a1, b1, bits, mode)
        check_all_paths(pairs, pairs.T.copy(), bits, mode)


@pytest.mark.parametrize("mode", OVERFLOW_MODES)
def test_exhaustive_int8_products(mode):
    """All 65536 INT8 x INT8 products (K=1) and a K=2 variant, acc 8/12/16/32 bits."""
    v = np.arange(-128, 128)
    a1, b1 = v[:, None].astype(np.int8), v[None, :].astype(np.int8)
    a2 = np.stack([v, np.roll(v, 37)], axis=1).astype(np.int8)
    b2 = np.stack([v, np.roll(v, 101)], axis=0).astype(np.int8)
    for bits in (8, 12, 16, 32):
        for a, b in ((a1, b1), (a2, b2)):
            want_v, want_e = matmul_oracle(a, b, bits, mode)
            for path in ("auto", "sequential"):
                res = matmul(a, b, bits, mode, return_events=True, _path=path)
                assert res.values.tolist() == want_v and res.events.tolist() == want_e


def test_saturate_and_recover_hand_value():
    """+100 x10 then -100 x10 in an 8-bit saturating register: -128 with 17 events, not 0."""
    a = np.ones((1, 20), dtype=np.int8)
    b = np.array([100] * 10 + [-100] * 10, dtype=np.int8)[:, None]
    for path in ("auto", "sequential", "bound"):
        res = matmul(a, b, 8, "saturate", return_events=True, _path=path, _chunk=4)
        assert res.values.tolist() == [[-128]] and res.events.tolist() == [[17]]
    assert matmul_oracle(a, b, 8, "saturate") == ([[-128]], [[17]])
    for mode in OVERFLOW_MODES:
        check_all_paths(a, b, 8, mode, chunk=3)
        check_all_paths(np.ones((2, 20), np.int64), b, 9, mode, chunk=7)


@pytest.mark.parametrize("mode", OVERFLOW_MODES)
def test_edge_values(mode):
    """Type limits, +-2^i and alternating signs, including 63/64-bit registers."""
    i32 = np.array([-(2**31), 2**31 - 1, -1, 0, 1, -(2**30), 2**30], dtype=np.int64)
    a = np.stack([i32, i32[::-1], np.roll(i32, 2)])
    b = np.stack([i32, -np.roll(i32, 3).clip(-(2**31) + 1), i32[::-1]], axis=1)
    for bits in (2, 16, 31, 32, 33, 62, 63, 64):
        check_all_paths(a, b, bits, mode)
    pw = np.array([[(-1) ** i * 2**i for i in range(31)]], dtype=np.int64)
    for bits in (8, 17, 32, 40, 64):
        check_all_paths(pw, np.abs(pw).T.copy(), bits, mode)
        check_all_paths(np.ones((1, 31), np.int64) * 127, pw.T.copy(), bits, mode)
    alt = np.array([[127, -128] * 20], dtype=np.int8)
    check_all_paths(alt, np.full((40, 3), -128, np.int8), 16, mode, chunk=5)
    check_all_paths(alt, np.full((40, 3), 127, np.int8), 14, mode, chunk=5)


@pytest.mark.parametrize("mode", OVERFLOW_MODES)
def test_seeded_random_every_path(mode):
    """Seeded int8/int16/int32-range matrices: every path and lane type equals the oracle."""
    rng = np.random.default_rng(1234)
    for trial in range(8):
        m, k, n = (int(x) for x in rng.integers(1, 9, 3))
        k = int(rng.integers(1, 150))
        hi = (8, 128, 2**15, 2**31)[trial % 4]
        a = rng.integers(-hi, hi, (m, k))
        b = rng.integers(-hi, hi, (k, n))
        for bits in (8, 16, 24, 32, 48, 64):
            check_all_paths(a, b, bits, mode, chunk=int(rng.integers(1, 40)))


def test_int16_event_lanes_flush():
    """> 32767 saturating adds in the 16-bit kernel: events are not lost in int16 lanes."""
    k = 40_000
    a = np.ones((1, k), dtype=np.int8)
    b = np.full((k, 2), 100, dtype=np.int8)
    b[:, 1] = -128
    want_v, want_e = matmul_oracle(a, b, 16, "saturate")
    res = matmul(a, b, 16, "saturate", return_events=True, _path="sequential")
    assert res.values.tolist() == want_v == [[32767, -32768]]
    assert res.events.tolist() == want_e and want_e[0][0] > 32767


def test_bound_check_flags_only_some_outputs():
    """Large rows/cols get flagged and go sequential; the rest are exact with 0 events."""
    rng = np.random.default_rng(7)
    a = rng.integers(-3, 4, (6, 80))
    a[2] = 127
    b = rng.integers(-3, 4, (80, 5))
    b[:, 4] = 100
    flags, total = bound_flags(Operand(a, -3, 127), Operand(b, -3, 100), 16, "saturate", 16)
    assert 0 < flags.sum() < flags.size
    assert flags[2, 4] and not flags[0, 0]
    assert total.tolist() == (a @ b).tolist()
    for mode in OVERFLOW_MODES:
        assert check_all_paths(a, b, 16, mode, chunk=16) == 3
    res = matmul(a, b, 16, "saturate", return_events=True, _path="bound", _chunk=16)
    assert res.events[2, 4] > 0 and res.events[0, 0] == 0


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (33, 300)).astype(np.int8)
    b = rng.integers(-128, 128, (300, 17)).astype(np.int8)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = matmul(a, b, 16, "saturate", return_events=True, _path="sequential")
    finally:
        numba.set_num_threads(old)
    many = matmul(a, b, 16, "saturate", return_events=True, _path="sequential")
    assert np.array_equal(one.values, many.values) and np.array_equal(one.events, many.events)


def test_empty_and_k0():
    res = matmul(np.zeros((3, 0), np.int8), np.zeros((0, 2), np.int8), 8, "wrap",
                 return_events=True)
    assert res.values.tolist() == [[0, 0]] * 3 and res.events.tolist() == [[0, 0]] * 3
    assert matmul(np.zeros((0, 4), np.int8), np.zeros((4, 2), np.int8)).shape == (0, 2)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros((2, 2)), np.zeros((2, 2), np.int8)), {}, "^a:"),
        ((np.zeros((2, 2), np.int8), np.zeros(2, np.int8)), {}, "^b:"),
        ((np.zeros((2, 3), np.int8), np.zeros((2, 3), np.int8)), {}, "^b:"),
        ((np.array([[2**31]]), np.ones((1, 1), np.int8)), {}, "^a: values must fit int32"),
        ((np.ones((1, 1), np.int8), np.array([[-(2**31) - 1]])), {}, "^b: values"),
        ((np.ones((1, 1), np.int8),) * 2, {"acc_bits": 1}, "^acc_bits"),
        ((np.ones((1, 1), np.int8),) * 2, {"acc_bits": 65}, "^acc_bits"),
        ((np.ones((1, 1), np.int8),) * 2, {"acc_bits": True}, "^acc_bits"),
        ((np.ones((1, 1), np.int8),) * 2, {"overflow": "clamp"}, "^overflow"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        matmul(*args, **kwargs)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 4), k=st.integers(0, 40), n=st.integers(1, 4),
    hi=st.sampled_from([1, 8, 128, 2**15, 2**31]), bits=st.integers(2, 64),
    mode=st.sampled_from(OVERFLOW_MODES), chunk=st.integers(1, 12), seed=st.integers(0, 2**32),
)
def test_property_matches_oracle(m, k, n, hi, bits, mode, chunk, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-hi, hi, (m, k))
    b = rng.integers(-hi, hi, (k, n))
    check_all_paths(a, b, bits, mode, chunk=chunk)
