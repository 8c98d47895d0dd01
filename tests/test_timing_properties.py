"""Physics of the time plane, per layer x pass, over every shipped hwconfig x built-in model x
train/infer: the roofline, more hardware is never worse, INT4 speed-up, batch scaling and
compulsory DRAM traffic. Timing only (no training), searches cached per run."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from fxpsim.config.hw import HwConfig
from fxpsim.config.load import load_hwconfig
from fxpsim.graph.ir import Graph
from fxpsim.graph.resolve import list_models, load_model
from fxpsim.results import LayerPassResult
from fxpsim.timing.loopnest import ceil_div
from fxpsim.timing.lowering import lower
from fxpsim.timing.ops import GemmOp, TimingRequest
from fxpsim.timing.search import SearchCache, dram_latency_cycles, dram_rate, search
from fxpsim.timing.simulate import simulate

HWDIR = Path(__file__).resolve().parents[1] / "hwconfigs"
CONFIGS = sorted(p.name for p in HWDIR.iterdir() if p.suffix in (".yaml", ".cfg"))
MODELS = sorted(m.name for m in list_models())
PHASES = ("infer", "train")
CASES = [(c, m, p) for c in CONFIGS for m in MODELS for p in PHASES]
BATCH = 2


@functools.cache
def base_hw(name: str) -> HwConfig:
    return load_hwconfig(name).config


@functools.cache
def model(name: str) -> Graph:
    return load_model(name)


def variant(hw: HwConfig, change: str) -> HwConfig:
    raw: dict[str, Any] = hw.model_dump()
    if change == "bw":
        raw["dram"]["bandwidth_gb_s"] *= 2
    elif change in ("rows", "cols"):
        raw["mac_array"][change] *= 2
    elif change == "sram":
        for m in raw["memory"]:
            if m.get("size_kib"):
                m["size_kib"] *= 2
    elif change == "free_dram":
        raw["dram"]["bandwidth_gb_s"] *= 1000
        raw["dram"]["latency_ns"] = 0.0
    elif change == "huge_sram":
        for m in raw["memory"]:
            if m.get("size_kib"):
                m["size_kib"] = float(1 << 20)
    return HwConfig.model_validate(raw)


def run(hw: HwConfig, graph: Graph, phase: str, batch: int = BATCH,
        bits: int = 8) -> tuple[LayerPassResult, ...]:
    """Each layer x pass costed alone (``schedule=sequential``): the per-op cost model.
    The overlapped step is checked by :func:`test_overlapped_step_physics`."""
    req = TimingRequest(phase=phase, batch=batch, w_bits=bits, a_bits=bits, g_bits=bits,  # type: ignore[arg-type]
                        schedule="sequential")
    return simulate(graph, hw, req).records


def key(r: LayerPassResult) -> tuple[str, str, tuple[int, int, int] | None]:
    return (r.layer, r.pass_name, r.gemm)


@pytest.mark.parametrize("cfg,name,phase", CASES)
def test_roofline_and_more_hardware_never_worse(cfg: str, name: str, phase: str) -> None:
    hw, graph = base_hw(cfg), model(name)
    base = run(hw, graph, phase)
    for r in base:
        m = r.metrics
        assert m.cycles >= max(m.bound_compute_cycles, m.bound_dram_cycles), key(r)
        assert m.energy_pj == pytest.approx(m.energy_by_component.total, rel=1e-12)
        assert m.dram_by_kind.total == m.dram_bytes, key(r)
    for change in ("bw", "rows", "cols", "sram"):
        other = run(variant(hw, change), graph, phase)
        assert [key(r) for r in other] == [key(r) for r in base]
        for a, b in zip(base, other, strict=True):
            assert b.metrics.cycles <= a.metrics.cycles, (change, key(a), a.mapping, b.mapping)
            if change == "sram":
                assert b.metrics.dram_bytes <= a.metrics.dram_bytes, (key(a), a.mapping,
                                                                      b.mapping)


@pytest.mark.parametrize("cfg,name,phase", CASES)
def test_overlapped_step_physics(cfg: str, name: str, phase: str) -> None:
    """With overlap on (the default): the step never takes longer than one op at a time,
    never beats its busiest engine (the DRAM's reads + writes, the MAC array, the vector
    unit) nor the roofline of its totals; 2x DRAM bandwidth, rows, columns or SRAM never add
    step cycles; energy components sum to the total; the records' cycles sum to the step."""
    from fxpsim.results import total

    hw, graph = base_hw(cfg), model(name)
    req = TimingRequest(phase=phase, batch=BATCH)  # type: ignore[arg-type]
    res = simulate(graph, hw, req)
    st, t = res.schedule, total(res.records)
    work = dict(st.work)
    assert st.mode == "overlap" and st.cycles == t.cycles
    assert st.cycles <= st.sequential_cycles
    assert st.cycles >= max(work["dma_read"] + work["dma_write"], work["mac_array"],
                            work["vector_unit"], t.bound_compute_cycles, t.bound_dram_cycles)
    assert t.energy_pj == pytest.approx(t.energy_by_component.total, rel=1e-12)
    for change in ("bw", "rows", "cols", "sram"):
        other = simulate(graph, variant(hw, change), req).schedule.cycles
        assert other <= st.cycles, (change, other, st.cycles)


def _has_int4(hw: HwConfig) -> bool:
    return any(m.w_bits == 4 and m.a_bits == 4 for m in hw.mac_array.precision_modes)


@pytest.mark.parametrize("cfg,name,phase", CASES)
def test_int4_reaches_its_peak_or_names_the_binding_resource(cfg: str, name: str,
                                                             phase: str) -> None:
    """With DRAM made free, every GEMM that is compute-bound in INT8 runs >= 3.5x faster in
    INT4, unless the INT4 record names another binding resource (an SRAM port, the weight
    load path or the requantizer) or the layer's shape cannot fill the INT4 array (checked:
    its MACs per array tile are < 3.5x the INT8 ones)."""
    hw = variant(base_hw(cfg), "free_dram")
    if not _has_int4(hw):
        pytest.skip(f"{cfg} has no INT4 mode")
    graph = model(name)
    r8, r4 = run(hw, graph, phase), run(hw, graph, phase, bits=4)
    for a, b in zip(r8, r4, strict=True):
        if a.gemm is None or a.binding != "compute":
            continue
        if b.binding != "compute":
            assert b.binding.startswith("sram:") or b.binding in ("requant", "weight_load"), (
                key(b), b.binding)
            continue
        speed = a.metrics.cycles / b.metrics.cycles
        if speed < 3.5:
            # the shape limits: the INT4 peak needs 4x the MACs per stationary tile
            fill8 = a.metrics.macs / _tiles(a.mapping)
            fill4 = b.metrics.macs / _tiles(b.mapping)
            assert fill4 < 3.5 * fill8, (key(a), speed, a.mapping, b.mapping)


def test_int4_speedup_on_edge_vgg16() -> None:
    """CIFAR VGG16 on edge_npu, DRAM free: conv1_2 to conv3_1 are compute-bound in INT8 and
    INT4 runs them 3.6x faster (4x the MACs per tile; the 16-cycle weight load of a 16x16
    INT8 tile becomes 32 cycles for the 64x16 INT4 tile: (16 + 128) / (32 + 128) x 4)."""
    hw = variant(base_hw("edge_npu.yaml"), "free_dram")
    r8, r4 = run(hw, model("vgg16"), "infer"), run(hw, model("vgg16"), "infer", bits=4)
    fast = [a.layer for a, b in zip(r8, r4, strict=True)
            if a.gemm and a.binding == "compute" and a.metrics.cycles >= 3.5 * b.metrics.cycles]
    assert fast == ["conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3"]


def _tiles(mapping: str) -> float:
    """Array-tile capacity of a mapping notation ``... | array k16xn16 T128 int8``."""
    arr = mapping.split("| array ")[1].split("|")[0].split()
    rows, cols = arr[0].split("x")
    return int(rows[1:]) * int(cols[1:]) * int(arr[1][1:])


@pytest.mark.parametrize("cfg,name,phase", CASES)
def test_batch_doubling_at_most_doubles_cycles(cfg: str, name: str, phase: str) -> None:
    """Per layer x pass: twice the batch costs at most twice the cycles plus one fill/drain,
    plus the DRAM time of the bytes that no longer stay on chip at the bigger batch (a
    tensor that takes half the buffer at batch 1 does not at batch 2: that traffic is new
    work, not a scheduling loss)."""
    hw, graph = base_hw(cfg), model(name)
    fill = hw.mac_array.rows + hw.mac_array.cols - 2
    rate, lat = dram_rate(hw), dram_latency_cycles(hw)
    one, two = run(hw, graph, phase, batch=1), run(hw, graph, phase, batch=2)
    assert [(r.layer, r.pass_name) for r in one] == [(r.layer, r.pass_name) for r in two]
    for a, b in zip(one, two, strict=True):
        spilled = b.metrics.dram_bytes - 2 * a.metrics.dram_bytes
        extra = lat + ceil_div(spilled * rate.denominator, rate.numerator) if spilled > 0 else 0
        assert b.metrics.cycles <= 2 * a.metrics.cycles + fill + extra, (
            key(a), a.mapping, b.mapping)


@pytest.mark.parametrize("cfg,name", [(c, m) for c in CONFIGS for m in MODELS])
def test_dram_traffic_is_at_least_compulsory_and_equal_when_all_fits(cfg: str,
                                                                   name: str) -> None:
    for hw, exact in ((base_hw(cfg), False), (variant(base_hw(cfg), "huge_sram"), True)):
        cache = SearchCache()
        for op in lower(model(name), TimingRequest(phase="train", batch=BATCH)):
            if not isinstance(op, GemmOp):
                continue
            mp = search(hw, op, cache)
            assert mp is not None, op.layer
            sizes = [-(-mp.shape.size(r) * b // 8)  # type: ignore[arg-type]
                     for r, b in zip("ABO", (op.a_bits, op.b_bits, op.out_bits), strict=True)]
            got = [mp.dram.reads[0], mp.dram.reads[1], mp.dram.writes[2] - mp.dram.psum_bytes[1]]
            for g, s in zip(got, sizes, strict=True):
                assert g >= s, (op.layer, op.pass_name, got, sizes, mp.notation())
                if exact:
                    assert g == s, (op.layer, op.pass_name, got, sizes, mp.notation())
            if exact:
                assert mp.dram.psum_bytes == (0, 0)


@pytest.mark.parametrize("cfg", ["tiny.yaml", "server_npu.yaml"])
def test_search_objectives_pull_their_way(cfg: str) -> None:
    """A resnet20 training step: the latency objective gives the fewest cycles, the energy
    objective the least energy, edp the smallest product (totals)."""
    from fxpsim.results import total

    got = {}
    for obj in ("latency", "energy", "edp"):
        # the objective picks each op's mapping: compare the ops' own costs
        req = TimingRequest(phase="train", batch=8, objective=obj,  # type: ignore[arg-type]
                            schedule="sequential")
        t = total(simulate(model("resnet20"), base_hw(cfg), req).records)
        got[obj] = (t.cycles, t.energy_pj)
    assert got["latency"][0] <= got["energy"][0]
    assert got["energy"][1] <= got["latency"][1]
    assert got["energy"] != got["latency"]  # the objectives pick different mappings here
    edp = {k: c * e for k, (c, e) in got.items()}
    assert edp["edp"] <= min(edp["latency"], edp["energy"])
