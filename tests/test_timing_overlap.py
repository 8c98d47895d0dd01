"""The overlapped schedule (``schedule=overlap``, the default): exact cycles on
hwconfigs/tiny.yaml computed by hand, ``schedule=sequential`` equal to the one-op-at-a-time
results on every shipped config, and the step-level physics with overlap on.

tiny (see tests/test_timing_schedule.py): 4x4 WS array at 1 GHz, DRAM 4 B/cycle with 10
cycles latency, global SRAM 4096 B double-buffered, weight load 4 cycles per tile, systolic
fill/drain 6 cycles per op. Alone, an op takes max(DMA, P + C + E): DMA = 10 + bytes / 4,
P = 10 + the first tile's bytes / 4, C the array's cycles, E the last output vector.
With overlap: the DRAM serves waiting reads first (lowest op index), then writes; a GEMM's
stream (its prefetch) may start once the previous GEMM's array has started and its tile set
fits the buffers (twice, double-buffered, while it streams); an engine starts an op once
its inputs exist, its first tile is in (P after its reads begin) and it is free.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from fxpsim.config.hw import HwConfig
from fxpsim.config.load import load_hwconfig
from fxpsim.graph.resolve import list_models, load_model
from fxpsim.timing.ops import GemmOp, TimingRequest, VectorOp
from fxpsim.timing.simulate import simulate, simulate_ops
from fxpsim.timing.trace import Counter, TraceEvent

TINY = load_hwconfig("tiny").config
OVERLAP = TimingRequest(phase="infer", batch=1)
SEQUENTIAL = TimingRequest(phase="infer", batch=1, schedule="sequential")
REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "schedule_sequential_b2.json"


def lin(layer: str, m: int, k: int, n: int, pass_name: str = "forward",
        kinds: tuple[str, str, str] = ("activations", "weights", "activations")) -> GemmOp:
    return GemmOp(layer, "linear", pass_name, m, k, n, 1, *kinds, 8, 8, 8,  # type: ignore[arg-type]
                  "rne", (("B", m), ("C", k), ("K", n)))


def update(layer: str, elems: int) -> VectorOp:
    """An SGD step on ``elems`` weights whose state fits on chip: no DRAM traffic."""
    return VectorOp(layer=layer, op="linear", pass_name="update", kind="sgd_update",
                    elems=elems, alu=(("mul", 1), ("add", 1)), bits=8, read_bytes=elems,
                    write_bytes=elems)


def both(ops: list[Any], hw: HwConfig = TINY) -> tuple[Any, Any]:
    return simulate_ops(ops, hw, SEQUENTIAL), simulate_ops(ops, hw, OVERLAP, trace=True)


def cycles(res: Any) -> list[tuple[str, int, int]]:
    return [(r.layer, r.metrics.cycles, r.metrics.overlap_cycles) for r in res.records]


def test_next_layers_weights_prefetched_under_compute_whole_event_log() -> None:
    """l1 8x16 @ 16x16 then l2 8x16 @ 16x4 (l1's output stays on chip for l2).
    Alone: l1 reads 384 B -> DMA 10 + 96 = 106; array P 15 + C 198 (+ E 0: kept) = 213.
    l2 reads its 64 B of weights (10 + 16 = 26 cycles) and writes 32 B (8): DMA 34; array
    P 15 + C 54 + E 1 = 70. Sequential: 213 + 70 = 283.
    Buffers (global SRAM, 4096 B): a GEMM holds one tile set from its stream's start to its
    end, plus a second buffer for each tensor that moves in more than one tile while its
    reads run past the first tiles. l1: A 128 (read once: one tile) + B 16 (256 B read:
    second buffer 16) + O 8 (kept: nothing written) = 152 + 16; its first tiles are
    10 + (128 + 16) / 4 = 46 cycles of its reads. l2: A is carried (not counted), B 16 (64
    B read: +16), O 8 (32 B written: +8) = 24 + 24; first tiles 10 + 16 / 4 = 14 cycles.
    Overlap: l2's stream may start once l1's reads are in (106) and its tiles fit: reads
    [106, 132). l2's array waits for l1's output (213) and its first tile (106 + 15): [213,
    267); its write goes once its array has started: [213, 221); the last vector leaves at
    268. Step 268: 15 cycles (l2's latency and first tile) hidden."""
    seq, ov = both([lin("l1", 8, 16, 16), lin("l2", 8, 16, 4)])
    assert cycles(seq) == [("l1", 213, 0), ("l2", 70, 0)]
    assert cycles(ov) == [("l1", 213, 0), ("l2", 55, 15)]
    assert (ov.schedule.cycles, ov.schedule.sequential_cycles, ov.schedule.saved_cycles) == (
        268, 283, 15)
    # the array streams 16 tiles x 8 = 128 cycles of l1, then its exposed weight loads
    # (16 x 4) and fill/drain (6) are drawn as stalls; l2: 4 x 8, 4 x 4, 6
    stall = functools.partial(TraceEvent, stall=True)
    assert list(ov.events) == [
        TraceEvent("dma_read", "read", 0, 106, "l1", "forward", 0),
        stall("mac_array", "wait_dram", 0, 15, "l1", "forward", 0),
        TraceEvent("mac_array", "tiles", 15, 143, "l1", "forward", 0),
        TraceEvent("requantizer", "requant", 15, 213, "l1", "forward", 0),
        TraceEvent("dma_read", "read", 106, 132, "l2", "forward", 1),
        stall("mac_array", "weight_load", 143, 207, "l1", "forward", 0),
        stall("mac_array", "fill_drain", 207, 213, "l1", "forward", 0),
        TraceEvent("dma_write", "write", 213, 221, "l2", "forward", 1),
        TraceEvent("mac_array", "tiles", 213, 245, "l2", "forward", 1),
        TraceEvent("requantizer", "requant", 213, 267, "l2", "forward", 1),
        stall("mac_array", "weight_load", 245, 261, "l2", "forward", 1),
        stall("mac_array", "fill_drain", 261, 267, "l2", "forward", 1),
    ]
    # the DRAM turns off and on where a transfer ends and the next begins at one cycle
    assert list(ov.counters) == [
        Counter("buffer global_sram", 0, 152), Counter("dram_bw_in_use", 0, 100),
        Counter("dram_bw_in_use", 46, 0), Counter("buffer global_sram", 46, 168),
        Counter("dram_bw_in_use", 46, 100), Counter("dram_bw_in_use", 106, 0),
        Counter("buffer global_sram", 106, 152), Counter("buffer global_sram", 106, 176),
        Counter("dram_bw_in_use", 106, 100), Counter("dram_bw_in_use", 120, 0),
        Counter("buffer global_sram", 120, 200), Counter("dram_bw_in_use", 120, 100),
        Counter("dram_bw_in_use", 132, 0), Counter("buffer global_sram", 132, 176),
        Counter("buffer global_sram", 213, 24), Counter("dram_bw_in_use", 213, 100),
        Counter("dram_bw_in_use", 221, 0), Counter("buffer global_sram", 268, 0),
    ]
    assert ov.flows == ((0, 1),)
    # engine work is the same in both schedules: DMA reads 106 + 26, writes 8, array
    # streaming 128 + 32 (the requantizer is busy for the array's 198 + 54)
    assert dict(ov.schedule.work) == dict(seq.schedule.work) == {
        "dma_read": 132, "dma_write": 8, "mac_array": 160, "requantizer": 252,
        "vector_unit": 0}
    assert ov.schedule.utilization()["mac_array"] == 160 / 268


def test_buffer_too_small_to_prefetch_no_overlap() -> None:
    """The same two layers with a single-buffered 192 B global SRAM. l1's 128 B output takes
    more than half of it: written (32 cycles) and read back by l2. Alone: l1 DMA
    10 + (384 + 128) / 4 = 138, array 15 + 198 + E 1 = 214; l2 reads A 128 + W 64 = 192 B
    and writes 32 B: DMA 10 + 56 = 66, array 15 + 54 + 1 = 70. Sequential 284.
    Overlap: each holds its tile set, A 128 + B 16 + O 8 = 152 B; 152 + 152 > 192, so l2's
    stream waits for l1's end (214): reads [214, 272), array from 214 + 15 = 229 to 283,
    write [272, 280), last vector 284: the same 284, no overlap."""
    raw = TINY.model_dump()
    raw["memory"][0].update(size_kib=0.1875, double_buffered=False)
    small = HwConfig.model_validate(raw)
    seq, ov = both([lin("l1", 8, 16, 16), lin("l2", 8, 16, 4)], small)
    assert cycles(seq) == [("l1", 214, 0), ("l2", 70, 0)]
    assert cycles(ov) == [("l1", 214, 0), ("l2", 70, 0)]
    assert ov.schedule.cycles == seq.schedule.cycles == 284
    l2 = [e for e in ov.events if e.op == 1]
    assert [(e.track, e.name, e.start, e.end) for e in l2] == [
        ("mac_array", "wait_buffer", 213, 229),
        ("dma_read", "read", 214, 272),
        ("mac_array", "tiles", 229, 261),
        ("requantizer", "requant", 229, 283),
        ("mac_array", "weight_load", 261, 277),
        ("dma_write", "write", 272, 280),
        ("mac_array", "fill_drain", 277, 283),
    ]
    assert [c.value for c in ov.counters if c.name == "buffer global_sram"] == [
        152, 0, 152, 0]


def test_write_back_overlaps_the_next_ops_compute() -> None:
    """tiny with DRAM at 2 B/cycle. l1 4x4 @ 4x512 writes its 2048 B output (more than half
    the 2048 B buffer: it cannot stay), then the SGD update of l1 (64 weights, state on
    chip: 16 lane-steps x (mul + add) = 32 cycles on the vector unit, after l1's output).
    l1 alone: reads 16 + 2048 B -> 10 + 1032 = 1042, writes 1024: DMA 2066; array 128
    n-folds x (4 + 4) + 6 = 1030, P = 10 + (16 + 4) / 2 = 20, E = 4 B / 2 = 2: 1052.
    DRAM-bound: 2066. Sequential 2066 + 32 = 2098.
    Overlap: l1's array is done at 1050 and its output exists at 1052; its write-back
    streams [1042, 2066) while the update runs [1052, 1084): step 2066."""
    raw = TINY.model_dump()
    raw["dram"]["bandwidth_gb_s"] = 2
    slow = HwConfig.model_validate(raw)
    seq, ov = both([lin("l1", 4, 4, 512), update("l1", 64)], slow)
    assert cycles(seq) == [("l1", 2066, 0), ("l1", 32, 0)]
    assert cycles(ov) == [("l1", 2066, 0), ("l1", 0, 32)]
    got = [(e.track, e.start, e.end, e.op) for e in ov.events if not e.stall
           and e.track != "requantizer"]
    assert got == [("dma_read", 0, 1042, 0), ("mac_array", 20, 532, 0),  # 128 x 4 streamed
                   ("dma_write", 1042, 2066, 0), ("vector_unit", 1052, 1084, 1)]
    assert ov.flows == ((0, 1),)  # the update reads l1's weight gradient


def test_two_independent_vector_ops_beside_a_gemm() -> None:
    """Two SGD updates of 64 weights each (16 lane-steps x (mul + add) = 32 cycles, state
    on chip: no DRAM), then a GEMM l1 8x16 @ 16x16 whose output is written (nothing
    follows): DMA 10 + (384 + 128) / 4 = 138, array 15 + 198 + 1 = 214. Sequential
    32 + 32 + 214 = 278. Overlap: nothing links them, so the vector unit runs the updates
    [0, 32), [32, 64) while the array runs l1 [15, 213): the step is l1's 214."""
    seq, ov = both([update("p", 64), update("q", 64), lin("l1", 8, 16, 16)])
    assert seq.schedule.cycles == 278 and ov.schedule.cycles == 214
    assert cycles(ov) == [("p", 32, 0), ("q", 32, 0), ("l1", 150, 64)]
    vec = [(e.start, e.end, e.layer) for e in ov.events if e.track == "vector_unit"]
    assert vec == [(0, 32, "p"), (32, 64, "q")]
    assert ov.flows == ()


def test_same_input_same_events() -> None:
    ops = [update("p", 64), lin("l1", 8, 16, 16), update("l1", 256), lin("l2", 8, 16, 4)]
    a = simulate_ops(ops, TINY, OVERLAP, trace=True)
    b = simulate_ops(ops, TINY, OVERLAP, trace=True)
    assert a.records == b.records and a.events == b.events and a.counters == b.counters


HWDIR = REPO / "hwconfigs"
CONFIGS = sorted(p.name for p in HWDIR.iterdir() if p.suffix in (".yaml", ".cfg"))
MODELS = sorted(m.name for m in list_models())


@functools.cache
def _hw(name: str) -> HwConfig:
    """A shipped config without output-path fusion (the golden numbers predate it)."""
    raw = load_hwconfig(name).config.model_dump()
    raw["vector_unit"].pop("fused_ops", None)
    return HwConfig.model_validate(raw)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_sequential_reproduces_the_one_op_at_a_time_results(cfg: str) -> None:
    """Golden per-record cycles written by the schedule before overlap existed (batch 2,
    every built-in model, train and infer)."""
    golden = json.loads(GOLDEN.read_text())
    hw = _hw(cfg)
    for name in MODELS:
        graph = load_model(name)
        for phase in ("infer", "train"):
            want = golden[f"{cfg}|{name}|{phase}"]
            req = TimingRequest(phase=phase, batch=2, schedule="sequential")  # type: ignore[arg-type]
            res = simulate(graph, hw, req)
            got = [r.metrics.cycles for r in res.records]
            assert [sum(got), got] == want, (cfg, name, phase)
            assert res.schedule.cycles == res.schedule.sequential_cycles == sum(got)


def _fused(names: list[str]) -> HwConfig:
    raw = TINY.model_dump()
    raw["vector_unit"]["fused_ops"] = names
    return HwConfig.model_validate(raw)


def test_fused_relu_and_requant_vs_unfused() -> None:
    """l1 8x16 @ 16x16 leaves its 128 int32 outputs (512 B, kept on chip) to a vector
    requantize (128 elements / 4 lanes x 1 = 32 cycles) and a ReLU (32 cycles), then l2.
    Unfused, both are vector passes with an SRAM round trip each: sequential
    213 + 32 + 32 + 70 = 347; overlapped 332 (l2's first tile prefetched: -15).
    With ``vector_unit.fused_ops: [requant, relu]`` both sit on l1's output path: no pass,
    no SRAM traffic, only their throughput beside the array (32 cycles each < l1's 198):
    sequential 213 + 0 + 0 + 70 = 283, overlapped 268. Their ALU energy stays (128 x 0.5 pJ
    each: tiny's requant_rne and int8 cmp), their SRAM accesses and leakage go."""
    l1 = GemmOp("l1", "linear", "forward", 8, 16, 16, 1, "activations", "weights",
                "activations", 8, 8, 32, "rne", (("B", 8), ("C", 16), ("K", 16)))
    q = VectorOp(layer="q1", op="quantize", pass_name="forward", kind="quantize", elems=128,
                 alu=(("requant", 1),), bits=32, read_bytes=512, write_bytes=128,
                 rounding="half_even")
    r = VectorOp(layer="relu1", op="relu", pass_name="forward", kind="relu", elems=128,
                 alu=(("cmp", 1),), bits=8, read_bytes=128, write_bytes=128)
    ops = [l1, q, r, lin("l2", 8, 16, 4)]
    seq, ov = both(ops)
    assert (seq.schedule.cycles, ov.schedule.cycles) == (347, 332)
    assert [(x.metrics.cycles, x.binding) for x in seq.records[1:3]] == [
        (32, "vector"), (32, "vector")]
    fseq, fov = both(ops, _fused(["requant", "relu"]))
    assert (fseq.schedule.cycles, fov.schedule.cycles) == (283, 268)
    for x in fseq.records[1:3]:
        assert (x.metrics.cycles, x.metrics.dram_bytes, x.binding) == (0, 0, "fused")
        assert x.metrics.sram_accesses.total == 0 and x.metrics.vector_ops == 128
        assert x.metrics.energy_pj == 64.0
    assert fseq.records[0].metrics.compute_cycles == 198  # the path keeps up with the array
    assert not [e for e in fov.events if e.track == "vector_unit"]
    # only one of them fused: the other is still a pass of its own
    assert both(ops, _fused(["requant"]))[0].schedule.cycles == 213 + 32 + 70


def test_bad_schedule_or_fused_op_is_a_one_line_error(tmp_path: Path, capsys: Any) -> None:
    from fxpsim.cli import main

    out = tmp_path / "never"
    for bad in ("schedule=parallel", "vector_unit.fused_ops=[relu,softmax]"):
        assert main(["run", "hw=tiny", "model=lenet5", "steps=0", bad, f"out={out}"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fxpsim: error: ") and err.count("\n") == 1, err
        assert ("schedule" in err) if bad.startswith("schedule") else ("fused_ops" in err)
        assert not out.exists()
