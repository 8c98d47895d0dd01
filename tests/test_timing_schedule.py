"""Exact cycles and bytes on hwconfigs/tiny.yaml, computed by hand.

tiny: 4x4 WS array, 1000 MHz, weight load 4 cycles per full tile, systolic fill/drain
4 + 4 - 2 = 6 cycles once per op, DRAM 4 B/cycle with 10 cycles latency paid once per op,
global SRAM 4 KiB double-buffered (2048 B per buffer), psum SRAM 1 KiB double-buffered
(512 B = 32 psums per column), requantizer 4 lanes.

Per GEMM: DMA ``10 + ceil(bytes / 4)`` and array ``10 + P + C + E`` run concurrently
(P = first stationary tile + first streamed vector over 4 B/cycle, E = last output vector).
"""

from __future__ import annotations

import random

from fxpsim.config.load import load_hwconfig
from fxpsim.results import per_pass, total
from fxpsim.timing.ops import GemmOp, TimingRequest, VectorOp
from fxpsim.timing.schedule import OpWork, run_schedule
from fxpsim.timing.simulate import simulate_ops
from fxpsim.timing.trace import TraceEvent

TINY = load_hwconfig("tiny").config
INFER = TimingRequest(phase="infer", batch=1, schedule="sequential")  # each op alone


def lin(layer: str, m: int, k: int, n: int, bits: int = 8) -> GemmOp:
    return GemmOp(layer, "linear", "forward", m, k, n, 1, "activations", "weights",
                  "activations", bits, bits, bits, "rne", (("B", m), ("C", k), ("K", n)))


def conv(c: int, h: int, k: int, r: int = 3) -> GemmOp:
    o = h - r + 1
    dims = (("B", 1), ("OY", o), ("OX", o), ("C", c), ("FY", r), ("FX", r), ("K", k))
    return GemmOp("c", "conv2d", "forward", o * o, c * r * r, k, 1, "activations", "weights",
                  "activations", 8, 8, 8, "rne", dims, in_hw=(h, h))


def test_simpy_equals_the_closed_form() -> None:
    """Two concurrent processes per op: the op ends when DMA and compute both end."""
    rng = random.Random(1234)
    works = [OpWork("x", "forward", dma_cycles=rng.choice([0, 5, 90]),
                    array_start=rng.choice([0, 3, 12]), array_cycles=rng.choice([0, 7, 50]),
                    tail=rng.choice([0, 1, 4]), vector=rng.random() < 0.3)
             for _ in range(300)]
    spans, _ = run_schedule(works)
    assert spans == tuple(w.cycles for w in works)


def test_two_layers_output_stays_on_chip() -> None:
    """l1 8x16 @ 16x16 then l2 8x16 @ 16x4. l1's output (128 B) takes at most half the
    2048 B buffer and l2 consumes it: never written, never read.
    l1: DRAM reads A 128 + W 256 = 384 B -> DMA 10 + 96 = 106. Array: k=16 on 4 rows (4
    folds), n=16 on 4 cols (4 folds), T = m = 8 (fits 32 psums): 16 tiles x (8 + 4 load) +
    fill 6 = 198; P = (16 B W tile + 4 B A vector) / 4 = 5; E = 0 (kept) ->
    10 + 5 + 198 = 213.  l2: W 64 B read, out 32 B written -> DMA 10 + 24 = 34; array 4
    tiles x 12 + 6 = 54; P 5, E = 4 B / 4 = 1 -> 10 + 5 + 54 + 1 = 70."""
    res = simulate_ops([lin("l1", 8, 16, 16), lin("l2", 8, 16, 4)], TINY, INFER, trace=True)
    a, b = res.records
    assert (a.metrics.cycles, a.metrics.compute_cycles, a.on_chip) == (213, 198, "out")
    assert (a.metrics.dram_read_bytes, a.metrics.dram_write_bytes) == (384, 0)
    assert (b.metrics.cycles, b.metrics.compute_cycles, b.on_chip) == (70, 54, "in")
    assert (b.metrics.dram_read_bytes, b.metrics.dram_write_bytes) == (64, 32)
    assert b.metrics.dram_by_kind.as_dict() == {"weights": 64, "activations": 32}
    assert list(res.events) == [
        TraceEvent("dma", "stream", 0, 106, "l1", "forward"),
        TraceEvent("mac_array", "tiles", 15, 213, "l1", "forward"),
        TraceEvent("requantizer", "tiles", 15, 213, "l1", "forward"),
        TraceEvent("dma", "stream", 213, 247, "l2", "forward"),
        TraceEvent("mac_array", "tiles", 228, 282, "l2", "forward"),
        TraceEvent("requantizer", "tiles", 228, 282, "l2", "forward"),
    ]
    assert a.metrics.stalls.as_dict() == {"dram": 15}  # latency + first tile's bytes


def test_conv_input_does_not_fit_halo_rereads() -> None:
    """3x3 conv, C=16, 34x34 input (18,496 B), K=4 -> 32x32 output. One output row over the
    whole width needs 16 x 3 x 34 = 1632 B of input + 576 B of weights > 2048 B, so the
    search tiles one output row by half the width: an input tile is 16 ch x 3 rows x
    (16 - 1 + 3) cols = 864 B, read for 32 x 2 tiles = 55,296 B (3x the tensor: each input
    row is read for the 3 output rows it touches). Weights 576 B and output 4096 B once.
    DMA: 59,968 B / 4 = 14,992 + 10. Array: k = 144 on 4 rows (36 folds), n = 4 (1 fold),
    T = 32 (psum SRAM) -> 1152 tiles x (32 + 4) + 6 = 41,478; 10 + 5 + 41,478 + 1 = 41,494."""
    r = simulate_ops([conv(16, 34, 4)], TINY, INFER).records[0]
    m = r.metrics
    assert r.mapping == ("dram[AO inner] C16 FX3 FY3 K4 OX16 OY1 | array k4xn4 T32 int8 | "
                         "tiles A:864Bx1 B:576Bx1 O:64Bx1")
    assert m.dram_by_kind.as_dict() == {"activations": 55296 + 4096, "weights": 576}
    assert (m.cycles, m.compute_cycles, m.bound_dram_cycles) == (41494, 41478, 14992)
    assert r.binding == "compute"


def test_weights_refetched_because_of_loop_order() -> None:
    """3x3 conv, C=8, 18x18 input, K=64: weights 4608 B do not fit. The best order keeps the
    output-channel loop innermost (inputs read once, 8 ch x 10 rows x 18 cols = 1440 B per
    8-row tile: 2880 B) and streams the weights once per output-row tile: 2 x 4608 B."""
    r = simulate_ops([conv(8, 18, 64)], TINY, INFER).records[0]
    assert r.mapping.startswith("dram[BO inner]") and "B:72Bx2" in r.mapping
    assert r.metrics.dram_by_kind.as_dict() == {"activations": 2880 + 16384, "weights": 9216}


def test_precision_modes() -> None:
    """8x16 @ 16x4 alone. int8: 4 k-folds x (8 + 4) + 6 = 54. int4 packs 4 MACs per PE as a
    16-row virtual array: 1 fold, T = 8, load 4 x (16 x 4 x 4 bits) / (4 x 4 x 8) = 8 ->
    8 + 8 + fill (16/4 + 4 - 2 = 6) = 22. int16 streams each element in 4 cycles and loads
    16-bit weights: 4 folds x (32 + 8) + 6 = 166."""
    got = {}
    for bits in (4, 8, 16):
        r = simulate_ops([lin("l", 8, 16, 4, bits)], TINY, INFER).records[0]
        got[r.precision] = r.metrics.compute_cycles
    assert got == {"int4": 22, "int8": 54, "int16": 166}


def test_dram_requests_in_flight_limit_the_rate() -> None:
    """max_outstanding=1 burst of 64 B per 10-cycle latency: 6.4 B/cycle > 4, no change;
    burst_bytes=16: 1.6 B/cycle -> l1's 384 B take 240 cycles + 10 latency."""
    raw = TINY.model_dump()
    raw["dram"].update(max_outstanding=1, burst_bytes=16)
    slow = type(TINY).model_validate(raw)
    r = simulate_ops([lin("l1", 8, 16, 16), lin("l2", 8, 16, 4)], slow, INFER).records[0]
    assert (r.metrics.cycles, r.metrics.bound_dram_cycles) == (250, 240)
    assert r.binding == "dram"


def test_vector_op_spills_to_dram() -> None:
    """relu over 4096 int8 elements with nothing on chip and no op after it: reads 4096 B
    from DRAM and writes 4096 B back: DMA 10 + 8192 / 4 = 2058 cycles > 4096 / 4 lanes x 1
    = 1024 vector cycles -> 2058 cycles, 1034 of them DRAM stall."""
    relu = VectorOp(layer="relu", op="relu", pass_name="forward", kind="relu", elems=4096,
                    alu=(("cmp", 1),), bits=8, read_bytes=4096, write_bytes=4096)
    m = simulate_ops([relu], TINY, INFER).records[0].metrics
    assert (m.cycles, m.compute_cycles, m.dram_read_bytes, m.dram_write_bytes) == (
        2058, 1024, 4096, 4096)
    assert m.stalls.as_dict() == {"dram": 1034}


def test_rerun_identical_and_summable() -> None:
    ops = [lin("l1", 8, 16, 16), lin("l2", 8, 16, 4)]
    a = simulate_ops(ops, TINY, INFER, trace=True)
    b = simulate_ops(ops, TINY, INFER, trace=True)
    assert a.records == b.records and a.events == b.events
    t = total(a.records)
    assert t.cycles == sum(r.metrics.cycles for r in a.records) == 283
    assert per_pass(a.records)["forward"] == t
    assert t.energy_pj == sum(r.metrics.energy_pj for r in a.records)


def test_buffer_too_small_for_any_tile_is_a_config_error() -> None:
    import pytest

    from fxpsim.errors import ConfigError

    raw = TINY.model_dump()
    raw["memory"][0]["size_kib"] = 0.01  # 10 B: not even one weight column of 16 channels
    small = type(TINY).model_validate(raw)
    with pytest.raises(ConfigError, match=r"memory\[0\]\.size_kib: no tile of c \(forward\)"):
        simulate_ops([conv(16, 34, 4)], small, INFER)
