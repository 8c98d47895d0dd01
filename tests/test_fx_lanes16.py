"""16-bit-lane register kernels (gemm_kernels16) == the Python-int oracles, values AND events.

Data is built to saturate and recover in both directions many times per output, over every
overflow mode, register widths 2..16, both add orders (one register per output; psum tile +
accumulator), every block layout (row groups, column strips, transposed problems) and int16
event counters that must be flushed."""

from __future__ import annotations

import numpy as np
import pytest

from fxpsim.fixedpoint import gemm_kernels16 as k16
from fxpsim.fixedpoint.gemm import matmul
from fxpsim.fixedpoint.macarray import ArrayModel, array_gemm
from fxpsim.fixedpoint.oracle_gemm import OVERFLOW_MODES, matmul_oracle, two_level_oracle


def swinging(rng: np.random.Generator, m: int, k: int, n: int, run: int = 12, lo: int = 40,
             hi: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """INT8 operands whose products come in runs of one sign (per output, shifted runs), so
    every register rides into a rail, sits there, and swings to the other one."""
    phase = rng.integers(0, run, (m, 1))
    sign = np.where(((np.arange(k)[None, :] + phase) // run) % 2 == 0, 1, -1)
    a = (rng.integers(lo, hi, (m, k)) * sign).astype(np.int8)
    b = rng.integers(lo, hi, (k, n)).astype(np.int8)
    b[::5] = -b[::5]  # some products against the run: recoveries inside a run too
    return a, b


@pytest.mark.parametrize("mode", OVERFLOW_MODES)
@pytest.mark.parametrize("bits", [2, 5, 8, 12, 15, 16])
def test_one_level_saturate_and_recover(mode, bits):
    rng = np.random.default_rng(bits)
    for m, k, n in ((5, 90, 70), (70, 60, 3), (9, 40, 130)):
        a, b = swinging(rng, m, k, n)
        v, e = k16.sequential16(a, b, bits, mode)
        want_v, want_e = matmul_oracle(a, b, bits, mode)
        assert v.tolist() == want_v and e.tolist() == want_e, (m, k, n)
        assert e.sum() > m * n  # many events per output on average


@pytest.mark.parametrize("mode", OVERFLOW_MODES)
@pytest.mark.parametrize(("pbits", "abits", "tile"), [(16, 16, 16), (12, 16, 3), (16, 10, 5),
                                                      (8, 9, 1), (15, 15, 7)])
def test_two_level_saturate_and_recover(mode, pbits, abits, tile):
    rng = np.random.default_rng(pbits * 100 + abits)
    for m, k, n in ((6, 80, 70), (70, 45, 4), (33, 30, 65)):
        a, b = swinging(rng, m, k, n, run=int(rng.integers(3, 20)))
        got = k16.two_level16(a, b, tile, pbits, mode, abits, mode)
        want = two_level_oracle(a, b, tile, pbits, mode, abits, mode)
        assert [x.tolist() for x in got] == list(want), (m, k, n)
        assert got[1].sum() + got[2].sum() > 0


def test_two_level_mixed_modes():
    """psum and accumulator registers with different overflow modes."""
    rng = np.random.default_rng(3)
    a, b = swinging(rng, 7, 64, 40, run=9)
    for pm in OVERFLOW_MODES:
        for am in OVERFLOW_MODES:
            got = k16.two_level16(a, b, 8, 13, pm, 14, am)
            want = two_level_oracle(a, b, 8, 13, pm, 14, am)
            assert [x.tolist() for x in got] == list(want), (pm, am)


@pytest.mark.parametrize("mode", OVERFLOW_MODES)
def test_edge_products(mode):
    """-128*-128 = 2^14 (the largest INT8 product) and 127*-128 hammering a 16-bit register,
    full-range random data, and products of 16-bit-range codes whose product still fits."""
    rng = np.random.default_rng(11)
    a = np.full((3, 50), -128, dtype=np.int8)
    a[1, ::2] = 127
    b = np.full((50, 33), -128, dtype=np.int8)
    b[:, ::3] = 127
    for bits in (16, 15, 9):
        v, e = k16.sequential16(a, b, bits, mode)
        assert (v.tolist(), e.tolist()) == matmul_oracle(a, b, bits, mode)
    a = rng.integers(-128, 128, (40, 70)).astype(np.int8)
    b = rng.integers(-128, 128, (70, 35)).astype(np.int8)
    v, e = k16.sequential16(a, b, 16, mode)
    assert (v.tolist(), e.tolist()) == matmul_oracle(a, b, 16, mode)
    a16 = rng.integers(-181, 182, (4, 60)).astype(np.int16)  # |a*b| <= 181^2 = 32761
    b16 = rng.integers(-181, 182, (60, 40)).astype(np.int16)
    assert k16.fits(181, 181, 16) and not k16.fits(182, 181, 16)
    v, e = k16.sequential16(a16, b16, 16, mode)
    assert (v.tolist(), e.tolist()) == matmul_oracle(a16, b16, 16, mode)


def test_exhaustive_small_register():
    """Every pair of INT4 codes as K=2 products into every 4..6-bit register and mode."""
    codes = np.arange(-8, 8)
    pairs = np.array([(x, y) for x in codes for y in codes], dtype=np.int8)  # (256, 2)
    b = np.array([[1, 3, -8, 7], [1, -5, -8, 7]], dtype=np.int8)
    for bits in (4, 5, 6):
        for mode in OVERFLOW_MODES:
            v, e = k16.sequential16(pairs, b, bits, mode)
            assert (v.tolist(), e.tolist()) == matmul_oracle(pairs, b, bits, mode)
            got = k16.two_level16(pairs, b, 1, bits, mode, bits, mode)
            assert [x.tolist() for x in got] == list(
                two_level_oracle(pairs, b, 1, bits, mode, bits, mode))


def test_event_counters_flush_past_int16():
    """> 32767 events in one lane (one-level and psum) and in both orientations."""
    k = 40_000
    a = np.ones((2, k), dtype=np.int8)
    a[1] = -1
    b = np.full((k, 3), 100, dtype=np.int8)
    b[:, 1] = -128
    b[::1000, 2] = -1
    for x, y in ((a, b), (np.ascontiguousarray(b.T), np.ascontiguousarray(a.T))):
        v, e = k16.sequential16(x, y, 16, "saturate")
        want_v, want_e = matmul_oracle(x, y, 16, "saturate")
        assert v.tolist() == want_v and e.tolist() == want_e
        assert max(map(max, want_e)) > 32767
    got = k16.two_level16(a, b, 1, 8, "saturate", 16, "saturate")
    want = two_level_oracle(a, b, 1, 8, "saturate", 16, "saturate")
    assert [x.tolist() for x in got] == list(want) and max(map(max, want[1])) > 32767


def test_empty_shapes():
    for shape_a, shape_b in (((0, 4), (4, 3)), ((3, 0), (0, 5)), ((2, 4), (4, 0))):
        v, e = k16.sequential16(np.zeros(shape_a, np.int8), np.zeros(shape_b, np.int8), 16,
                                "saturate")
        assert v.shape == e.shape == (shape_a[0], shape_b[1]) and not v.any() and not e.any()


def test_public_paths_take_the_lanes_and_match():
    """matmul (sequential path) and array_gemm WS/OS reach the 16-bit lanes and agree with
    the oracles on saturating data; strided (transposed-view) operands too."""
    rng = np.random.default_rng(8)
    a, b = swinging(rng, 20, 100, 45, run=15)
    res = matmul(a, b, 16, "saturate", return_events=True, _path="sequential")
    assert (res.values.tolist(), res.events.tolist()) == matmul_oracle(a, b, 16, "saturate")
    model = ArrayModel(16, 8, "weight_stationary", 16, "saturate")
    want = two_level_oracle(a, b, 16, 16, "saturate", 16, "saturate")
    for x, y in ((a, b), (np.asfortranarray(a), np.asfortranarray(b))):
        r = array_gemm(x, y, model)
        assert [r.values.tolist(), r.events_psum.tolist(), r.events_acc.tolist()] == list(want)
    rt = array_gemm(np.ascontiguousarray(b.T).T.T, np.ascontiguousarray(a.T).T.T, model)
    assert rt.values.tolist() == np.array(want[0]).T.tolist()


@pytest.mark.parametrize("threads", [1, 2])
def test_parallel_blocks_match_oracle(monkeypatch, threads):
    """The multi-threaded driver (forced on small data) equals the oracle at any thread count:
    each output belongs to one (row group, column strip) block."""
    import numba

    monkeypatch.setattr(k16, "PARALLEL_MACS", 0)
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        rng = np.random.default_rng(21)
        for m, k, n in ((9, 70, 130), (130, 40, 70), (66, 50, 66)):
            a, b = swinging(rng, m, k, n, run=10)
            v, e = k16.sequential16(a, b, 16, "saturate")
            assert (v.tolist(), e.tolist()) == matmul_oracle(a, b, 16, "saturate")
            got = k16.two_level16(a, b, 16, 16, "wrap", 16, "wrap")
            assert [x.tolist() for x in got] == list(
                two_level_oracle(a, b, 16, 16, "wrap", 16, "wrap"))
    finally:
        numba.set_num_threads(old)


def test_most_negative_code_does_not_pass_for_a_small_one():
    """-32768 in an int16 operand (np.abs would wrap it to itself): its products leave int16,
    so the two-level kernel must not take the 16-bit lanes; the result still equals the
    oracle."""
    from fxpsim.fixedpoint import gemm_kernels as kern

    a = np.array([[-32768, 3, -32768], [1, 2, 3]], dtype=np.int16)
    b = np.array([[-1, 2], [5, -7], [-1, 1]], dtype=np.int16)
    assert kern.max_abs(a) == 32768 and not k16.fits(kern.max_abs(a), kern.max_abs(b), 16)
    got = kern.two_level(a, b, 2, 16, "saturate", 16, "saturate")
    assert [x.tolist() for x in got] == list(
        two_level_oracle(a, b, 2, 16, "saturate", 16, "saturate"))


def test_training_wrapper_transposed_views_match_oracle():
    """array_matmul (the training layers' entry) on a 16-bit WS array: wide outputs go in as
    transposed views, strided torch inputs too; values and the event total equal the oracle."""
    import torch

    from fxpsim.fixedpoint.intmm import array_matmul

    rng = np.random.default_rng(4)
    model = ArrayModel(16, 16, "weight_stationary", 16, "saturate")
    for m, k, n in ((6, 75, 140), (140, 75, 6)):
        a, b = swinging(rng, m, k, n, run=7)
        want_v, want_p, want_a = two_level_oracle(a, b, 16, 16, "saturate", 16, "saturate")
        total = sum(map(sum, want_p)) + sum(map(sum, want_a))
        ta = torch.from_numpy(np.ascontiguousarray(a.T)).T  # strided view of the same codes
        for x in (torch.from_numpy(a), ta):
            vals, ev = array_matmul(x, torch.from_numpy(b), model, 127, 127)
            assert vals.tolist() == want_v and ev == total > 0
