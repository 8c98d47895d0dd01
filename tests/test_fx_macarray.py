"""MAC-array GEMM: OS = one register over K; WS/IS = psum per k-tile of `rows`, then the
accumulator; every path equals the Python-int two-level oracle, values and events."""

from __future__ import annotations

import numpy as np
import pytest

from fxpsim.fixedpoint.macarray import ArrayModel, array_gemm
from fxpsim.fixedpoint.oracle_gemm import OVERFLOW_MODES, matmul_oracle, two_level_oracle

DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary")


def expected(a, b, model):
    if model.dataflow == "output_stationary":
        v, e = matmul_oracle(a, b, model.acc_bits, model.acc_overflow)
        return v, [[0] * len(v[0]) for _ in v], e
    return two_level_oracle(a, b, model.rows, model.psum_bits_eff, model.psum_overflow_eff,
                            model.acc_bits, model.acc_overflow)


def test_ws_psum_saturation_differs_from_os_hand_example():
    """rows=2, 8-bit saturating psum, 16-bit acc: tile sums saturate to 127 and -128.

    WS: psum 100, 200->127 (event); acc 127; psum -100, -200->-128 (event); acc -1.
    OS with a 16-bit acc gives the exact 0; OS with an 8-bit acc gives 100, 127(e), 27, -73.
    """
    a = np.ones((1, 4), dtype=np.int8)
    b = np.array([[100], [100], [-100], [-100]], dtype=np.int8)
    ws = ArrayModel(2, 1, "weight_stationary", 16, "saturate", psum_bits=8)
    for path in ("auto", "sequential", "bound"):
        r = array_gemm(a, b, ws, _path=path)
        assert r.values.tolist() == [[-1]]
        assert r.events_psum.tolist() == [[2]] and r.events_acc.tolist() == [[0]]
        assert r.tile_events.tolist() == [[2]] and r.total_events == 2
    assert expected(a, b, ws) == ([[-1]], [[2]], [[0]])
    os16 = array_gemm(a, b, ArrayModel(2, 1, "output_stationary", 16, "saturate"))
    assert os16.values.tolist() == [[0]] and os16.total_events == 0
    os8 = array_gemm(a, b, ArrayModel(2, 1, "output_stationary", 8, "saturate"))
    assert os8.values.tolist() == [[-73]] and os8.events_acc.tolist() == [[1]]


def test_accumulator_overflow_across_tiles_hand_example():
    """Wide psum, 8-bit wrapping acc: tile sums 120, 120 -> acc 120, 240 wraps to -16."""
    a = np.ones((1, 4), dtype=np.int8)
    b = np.array([[60], [60], [60], [60]], dtype=np.int8)
    r = array_gemm(a, b, ArrayModel(2, 1, "input_stationary", 8, "wrap", psum_bits=16))
    assert r.values.tolist() == [[-16]]
    assert r.events_psum.tolist() == [[0]] and r.events_acc.tolist() == [[1]]


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_seeded_random_every_path_matches_oracle(dataflow):
    rng = np.random.default_rng(11)
    for t in range(40):
        m, n = (int(x) for x in rng.integers(1, 6, 2))
        k = int(rng.integers(0, 90))
        bits = (4, 8, 16)[t % 3]
        a = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (m, k))
        b = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (k, n))
        model = ArrayModel(int(rng.integers(1, 9)), int(rng.integers(1, 5)), dataflow,
                           int(rng.integers(6, 40)), OVERFLOW_MODES[t % 4],
                           int(rng.integers(4, 34)), OVERFLOW_MODES[(t // 4) % 4])
        want = expected(a, b, model)
        ran = 0
        for path in ("auto", "sequential", "bound", "static"):
            try:
                r = array_gemm(a, b, model, w_bits=bits, a_bits=bits, _path=path)
            except ValueError as exc:
                assert path == "static" and "path" in str(exc)
                continue
            got = (r.values.tolist(), r.events_psum.tolist(), r.events_acc.tolist())
            assert got == want, (t, path)
            assert int(r.tile_events.sum()) == r.total_events
            ran += 1
        assert ran >= 3


def test_ws_and_is_add_in_the_same_order():
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (7, 50))
    b = rng.integers(-128, 128, (50, 9))
    ws = array_gemm(a, b, ArrayModel(8, 4, "weight_stationary", 20, "saturate", 14, "wrap"))
    is_ = array_gemm(a, b, ArrayModel(8, 4, "input_stationary", 20, "saturate", 14, "wrap"))
    assert np.array_equal(ws.values, is_.values) and ws.total_events == is_.total_events > 0
    assert np.array_equal(ws.events_psum, is_.events_psum)
    # tiles: WS = cols output columns x all M; IS = cols output rows x all N
    assert ws.tile_events.shape == (1, 3) and is_.tile_events.shape == (2, 1)
    both = ws.events_psum + ws.events_acc
    assert ws.tile_events[0].tolist() == [int(both[:, j:j + 4].sum()) for j in (0, 4, 8)]
    assert is_.tile_events[:, 0].tolist() == [int(both[:4].sum()), int(both[4:].sum())]


def test_os_tile_events_are_rows_by_cols_blocks():
    a = np.full((3, 30), 127, dtype=np.int8)
    b = np.full((30, 3), 127, dtype=np.int8)
    b[:, 2] = 1
    r = array_gemm(a, b, ArrayModel(2, 2, "output_stationary", 16, "saturate"))
    ev = r.events_acc
    assert ev[0, 0] > 0 and ev[0, 2] == 0
    assert r.tile_events.tolist() == [[int(ev[:2, :2].sum()), int(ev[:2, 2:].sum())],
                                      [int(ev[2:, :2].sum()), int(ev[2:, 2:].sum())]]


def test_operand_precision_checks():
    m = ArrayModel(4, 4, "weight_stationary")
    with pytest.raises(ValueError, match="^a: codes must fit signed 4-bit"):
        array_gemm(np.array([[8]]), np.array([[1]]), m, a_bits=4)
    with pytest.raises(ValueError, match="^b: codes must fit signed 4-bit"):
        array_gemm(np.array([[1]]), np.array([[-9]]), m, w_bits=4)
    with pytest.raises(ValueError, match="^a: codes must fit signed 8-bit"):
        array_gemm(np.array([[128]]), np.array([[1]]), m)
    with pytest.raises(ValueError, match="^w_bits"):
        array_gemm(np.array([[1]]), np.array([[1]]), m, w_bits=5)
    r = array_gemm(np.array([[-8, 7]]), np.array([[7], [-8]]), m, w_bits=4, a_bits=4)
    assert r.values.tolist() == [[-112]]
    r = array_gemm(np.array([[-32768]]), np.array([[32767]]), m, w_bits=16, a_bits=16)
    assert r.values.tolist() == [[-32768 * 32767]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": 0}, "^rows"),
        ({"cols": 2.5}, "^cols"),
        ({"dataflow": "row_stationary"}, "^dataflow"),
        ({"acc_bits": 65}, "^acc_bits"),
        ({"acc_overflow": "clip"}, "^acc_overflow"),
        ({"psum_bits": 1}, "^psum_bits"),
        ({"psum_overflow": "x"}, "^psum_overflow"),
    ],
)
def test_bad_model(kwargs, match):
    base = {"rows": 4, "cols": 4, "dataflow": "weight_stationary"}
    with pytest.raises(ValueError, match=match):
        ArrayModel(**{**base, **kwargs})


def test_model_must_be_array_model():
    with pytest.raises(ValueError, match="^model"):
        array_gemm(np.ones((1, 1), np.int8), np.ones((1, 1), np.int8), "ws")  # type: ignore


@pytest.mark.parametrize("dataflow", ["weight_stationary", "output_stationary"])
@pytest.mark.parametrize("ovf", ["saturate", "wrap", "saturate_symmetric", "numeric_std"])
def test_saturate_and_recover_long_k_matches_oracle(dataflow, ovf):
    """Runs of same-sign products drive the registers into the rail and back out, on tall and
    wide outputs (the fused kernel may transpose the problem; the k order stays)."""
    rng = np.random.default_rng(5)
    k = 300
    sign = np.repeat(np.where(np.arange(k // 20) % 2 == 0, 1, -1), 20)
    for m, n in ((70, 3), (3, 70)):
        a = (rng.integers(60, 128, (m, k)) * sign).astype(np.int8)
        b = rng.integers(40, 128, (k, n)).astype(np.int8)
        b[::7] = -b[::7]
        model = ArrayModel(16, 4, dataflow, 16, ovf, psum_bits=15, psum_overflow=ovf)
        r = array_gemm(a, b, model)
        want = expected(a.tolist(), b.tolist(), model)
        assert (r.values.tolist(), r.events_psum.tolist(), r.events_acc.tolist()) == want
        assert r.total_events > m * n  # saturated, recovered, saturated again
