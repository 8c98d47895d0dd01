"""Exact cycles of the SimPy schedule on hwconfigs/tiny.yaml, computed by hand.

tiny: 4x4 WS array, 1000 MHz, weight load 4 cycles, systolic fill/drain 4+4-2 = 6,
DRAM 4 B/cycle with 10 cycles latency per burst, global SRAM 4 KiB double-buffered
(2048 B per buffer), requantizer 4 lanes.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from fxpsim.config.hw import HwConfig
from fxpsim.results import per_pass, total
from fxpsim.timing.ops import GemmOp, TimingRequest, VectorOp
from fxpsim.timing.schedule import OpWork, TileGroup, reference_pipeline, run_schedule
from fxpsim.timing.simulate import simulate_ops
from fxpsim.timing.trace import TraceEvent

TINY = Path(__file__).resolve().parents[1] / "hwconfigs" / "tiny.yaml"
INFER = TimingRequest(phase="infer", batch=1)


def tiny(**mac_array: object) -> HwConfig:
    raw = yaml.safe_load(TINY.read_text())
    raw["mac_array"].update(mac_array)
    return HwConfig.model_validate(raw)


def gemm(m: int, k: int, n: int, layer: str = "l1", bits: int = 8) -> GemmOp:
    return GemmOp(layer=layer, op="linear", pass_name="forward", m=m, k=k, n=n, groups=1,
                  a_kind="activations", b_kind="weights", out_kind="activations",
                  a_bits=bits, b_bits=bits, out_bits=bits, rounding="rne",
                  loop_dims=(("B", m), ("C", k), ("K", n)))


def test_grouped_simpy_equals_per_tile_recurrence() -> None:
    """The macro items of the SimPy schedule reproduce the per-tile recurrence exactly."""
    rng = random.Random(1234)
    for _ in range(300):
        groups = tuple(TileGroup(rng.randint(1, 9), rng.choice([0, 1, 3, 7, 20]),
                                 rng.choice([0, 2, 5, 7, 19])) for _ in range(rng.randint(1, 5)))
        spans, _ = run_schedule([OpWork("x", "forward", groups=groups)])
        assert spans == (reference_pipeline(groups),), groups


def test_large_group_costs_few_events() -> None:
    groups = (TileGroup(10**6, 3, 5), TileGroup(10**5, 9, 2))
    spans, events = run_schedule([OpWork("x", "forward", groups=groups)], trace=True)
    # d=3 < c=5: 3 + 10**6 * 5; then the DMA-bound group adds 9 per tile (+2 tail)
    assert spans == (reference_pipeline(groups),)
    assert len(events) <= 12


def test_ws_data_fits() -> None:
    """8x4 @ 4x8, int8, WS: 1 row fold (k=4), 2 col folds (n=8), T = m = 8.
    tile cycles = load 4 + stream 8 + fill 6 = 18 (= 2R + C + T - 2).
    A (32 B) is swept twice but resident: fetched by tile 1 only.
    tile 1 DMA: A 32 + B 16 + out 32 = 80 B -> 10 + 80/4 = 30; tile 2: B 16 + out 32 -> 22.
    DMA1 [0,30] C1 [30,48]; DMA2 [30,52] C2 [52,70] -> 70 cycles."""
    r = simulate_ops([gemm(8, 4, 8)], tiny(), INFER).records[0]
    m = r.metrics
    assert (m.cycles, m.compute_cycles, m.stall_cycles) == (70, 36, 34)
    assert m.stalls.as_dict() == {"dram": 34}
    assert (m.dram_read_bytes, m.dram_write_bytes) == (64, 64)
    assert m.macs == 256 and m.requant_events == 64
    assert m.bound_compute_cycles == 16  # 256 MACs / 16 per cycle
    assert m.bound_dram_cycles == 32  # 128 B / 4 B per cycle
    assert r.gemm == (8, 4, 8) and r.precision == "int8"
    assert r.utilization == 256 / (70 * 16)


def test_ws_dram_bound() -> None:
    """1024x4 @ 4x8: A = 4096 B > 2048 B buffer -> re-fetched on each of its 2 sweeps.
    tile: 4 + 1024 + 6 = 1034 cycles; DMA A 4096 + B 16 + out 4096 = 8208 B -> 10 + 2052.
    DMA1 [0,2062] C1 [2062,3096]; DMA2 [2062,4124] C2 [4124,5158]."""
    m = simulate_ops([gemm(1024, 4, 8)], tiny(), INFER).records[0].metrics
    assert (m.cycles, m.compute_cycles) == (5158, 2068)
    assert m.stalls.as_dict() == {"dram": 3090}
    assert (m.dram_read_bytes, m.dram_write_bytes) == (8224, 8192)


def test_os_cycles() -> None:
    """OS, 8x4 @ 4x8: rows <- m (2 folds), cols <- n (2 folds), T = k = 4; no weight load.
    tile = 4 + 6 = 10 (= T + R + C - 2). Loops: col folds, then row folds.
    DMA bytes: t1 A16+B16+out16 = 48 -> 22; t2 A16+out16 -> 18; t3 B16+out16 -> 18;
    t4 out16 -> 14. DMA [0,22] C [22,32]; [22,40] C [40,50]; [40,58] C [58,68];
    [58,72] C [72,82]."""
    m = simulate_ops([gemm(8, 4, 8)], tiny(dataflow="output_stationary"), INFER).records[0]
    assert (m.metrics.cycles, m.metrics.compute_cycles) == (82, 40)
    assert m.metrics.sram_accesses.get("acc_sram.write") == 0  # psums stay in the PEs


def test_is_cycles() -> None:
    """IS, 8x4 @ 4x8: rows <- k (1 fold), cols <- m (2 folds), T = n = 8; A stationary.
    tile = 4 + 8 + 6 = 18. t1: A16 + B32 + out32 = 80 B -> 30; t2: A16 + out32 -> 22
    (B resident after its first sweep). Same timeline as WS: 70."""
    m = simulate_ops([gemm(8, 4, 8)], tiny(dataflow="input_stationary"), INFER).records[0]
    assert (m.metrics.cycles, m.metrics.compute_cycles) == (70, 36)


def test_precision_modes_change_stream_cycles() -> None:
    """int4 (4 MACs/PE/cycle): stream ceil(8/4) = 2 -> tile 12; int16 (1/4): 32 -> 42.
    int4 single tile 8x4 @ 4x4: DMA A 16 + B 8 + out 16 = 40 B -> 20; total 20 + 12.
    int16: A 64 + B 32 + out 64 = 160 B -> 50; total 50 + 42."""
    r4 = simulate_ops([gemm(8, 4, 4, bits=4)], tiny(), INFER).records[0]
    r16 = simulate_ops([gemm(8, 4, 4, bits=16)], tiny(), INFER).records[0]
    assert (r4.precision, r4.metrics.cycles, r4.metrics.compute_cycles) == ("int4", 32, 12)
    assert (r16.precision, r16.metrics.cycles, r16.metrics.compute_cycles) == ("int16", 92, 42)
    assert r4.metrics.bound_compute_cycles == 2  # 128 MACs / (16 PEs x 4)
    assert r16.metrics.bound_compute_cycles == 32  # 128 / (16 x 1/4)


def two_layer() -> list:
    relu = VectorOp(layer="relu", op="relu", pass_name="forward", kind="relu", elems=32,
                    alu=(("cmp", 1),), bits=8, read_bytes=32, write_bytes=32)
    return [gemm(8, 4, 4, "l1"), relu, gemm(8, 4, 4, "l2")]


def test_event_log_two_layers() -> None:
    """l1: A 32 + B 16 = 48 B -> DMA 22 (its output stays on chip for relu -> l2);
    tile 4 + 8 + 6 = 18. relu: 32 elems / 4 lanes x 1 cycle = 8. l2: input carried on chip;
    B 16 + out 32 (last op -> DRAM) = 48 B -> 22; tile 18."""
    res = simulate_ops(two_layer(), tiny(), INFER, trace=True)
    assert [r.metrics.cycles for r in res.records] == [40, 8, 40]
    assert list(res.events) == [
        TraceEvent("dma", "tile", 0, 22, "l1", "forward"),
        TraceEvent("mac_array", "tile", 22, 40, "l1", "forward"),
        TraceEvent("requantizer", "tile", 22, 40, "l1", "forward"),
        TraceEvent("vector_unit", "vector", 40, 48, "relu", "forward"),
        TraceEvent("dma", "tile", 48, 70, "l2", "forward"),
        TraceEvent("mac_array", "tile", 70, 88, "l2", "forward"),
        TraceEvent("requantizer", "tile", 70, 88, "l2", "forward"),
    ]
    assert res.records[0].metrics.dram_write_bytes == 0
    assert res.records[2].metrics.dram_read_bytes == 16


def test_vector_op_spills_to_dram() -> None:
    """relu over 4096 int8 elements with nothing on chip and no op after it: reads 4096 B
    from DRAM and writes 4096 B back: DMA 10 + 8192 / 4 = 2058 cycles > 4096 / 4 lanes x 1
    = 1024 vector cycles -> 2058 cycles, 1034 of them DRAM stall."""
    relu = VectorOp(layer="relu", op="relu", pass_name="forward", kind="relu", elems=4096,
                    alu=(("cmp", 1),), bits=8, read_bytes=4096, write_bytes=4096)
    m = simulate_ops([relu], tiny(), INFER).records[0].metrics
    assert (m.cycles, m.compute_cycles, m.dram_read_bytes, m.dram_write_bytes) == (
        2058, 1024, 4096, 4096)
    assert m.stalls.as_dict() == {"dram": 1034}


def test_rerun_identical_and_summable() -> None:
    a = simulate_ops(two_layer(), tiny(), INFER, trace=True)
    b = simulate_ops(two_layer(), tiny(), INFER, trace=True)
    assert a == b and repr(a) == repr(b)
    t = total(a.records)
    assert t.cycles == sum(r.metrics.cycles for r in a.records) == 88
    assert t.macs == 2 * 128
    assert per_pass(a.records)["forward"] == t
    assert t.energy_pj == sum(r.metrics.energy_pj for r in a.records)
