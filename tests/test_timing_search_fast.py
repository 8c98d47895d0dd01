"""The fast array scan of the mapping search against its plain twin (plan + cost + energy of
every candidate): the same winner and score, on every shipped config, every pass of several models,
each residency and each objective, and on configs varied where the scan branches."""

from __future__ import annotations

import random

import pytest

from fxpsim.config.load import load_hwconfig
from fxpsim.graph.resolve import load_model
from fxpsim.timing.arrayfast import best_array
from fxpsim.timing.arraymap import array_candidates
from fxpsim.timing.loopnest import op_shape
from fxpsim.timing.lowering import lower
from fxpsim.timing.mapping import pass_kind, select_mode, spatial_axes, stationary_tensor
from fxpsim.timing.ops import GemmOp, TimingRequest
from fxpsim.timing.search import (
    SearchCache,
    _capacity,
    _mems,
    best_array_reference,
    best_dram_plan,
)

CONFIGS = ("tiny", "edge_npu", "server_npu", "scalesim_example")
VARIANTS: tuple[dict[str, str], ...] = (
    {},
    {"mac_array.systolic": "false", "mac_array.weight_double_buffered": "false"},
    {"mac_array.dataflow": "output_stationary", "mac_array.spatial_map": "null",
     "mac_array.spatial_map_overrides": "{}"},
    {"mac_array.dataflow": "input_stationary", "mac_array.spatial_map": "null",
     "mac_array.spatial_map_overrides": "{}"},
    {"dram.latency_ns": "0", "dram.bandwidth_gb_s": "0.5"},
)


def _ops(model: str, batch: int, phase: str) -> list[GemmOp]:
    g = load_model(model)
    ops = lower(g, TimingRequest(phase=phase, batch=batch))  # type: ignore[arg-type]
    seen, out = set(), []
    for op in ops:
        if isinstance(op, GemmOp) and (op.m, op.k, op.n, op.pass_name) not in seen:
            seen.add((op.m, op.k, op.n, op.pass_name))
            out.append(op)
    return out


def _compare(hw, ops, objectives=("latency", "energy", "edp")) -> int:  # noqa: ANN001
    checked = 0
    for op in ops:
        axes = spatial_axes(hw, op)
        mode = select_mode(hw, op, stationary_tensor(axes[0], axes[1]))
        acc = hw.mac_array.accumulator
        shape = op_shape(op, pass_kind(op), acc.psum_bits or acc.bits)
        cands = array_candidates(hw, op, axes, mode)
        for obj in objectives:
            consts = SearchCache(objective=obj).hw_consts(hw)
            for carried, keep in ((None, False), ("A", True), (None, True)):
                dp = best_dram_plan(shape, _capacity(hw, op), carried=carried, keep_out=keep,
                                    bytes_first=obj == "latency")
                if dp is None:
                    continue
                fast = best_array(consts, hw, op, axes, mode, dp, _mems(hw, op), cands, obj)
                ref = best_array_reference(hw, op, axes, mode, dp, obj, cands)  # type: ignore[arg-type]
                # the same winner with bit-identical (cycles, energy) scores
                assert fast == ref, (hw.name, op.layer, op.pass_name, obj, carried, keep)
                assert fast[0] is not None
                checked += 1
    return checked


@pytest.mark.parametrize("name", CONFIGS)
def test_fast_scan_matches_reference_on_shipped_configs(name: str) -> None:
    hw = load_hwconfig(name).config
    ops = _ops("lenet5", 2, "train") + _ops("resnet20", 3, "train")
    assert _compare(hw, ops) > 100


@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_scan_matches_reference_on_varied_configs(variant: dict[str, str]) -> None:
    hw = load_hwconfig("edge_npu", variant).config
    assert _compare(hw, _ops("mobilenetv2", 2, "train")) > 100


def test_fast_scan_matches_reference_on_random_gemms() -> None:
    rng = random.Random(13)
    hw = load_hwconfig("server_npu").config
    ops = []
    for i in range(25):
        m, k, n = rng.randint(1, 1500), rng.randint(1, 1000), rng.randint(1, 300)
        bits = rng.choice((4, 8))
        ops.append(GemmOp(f"g{i}", "linear", "forward", m, k, n, rng.choice((1, 1, 2)),
                          "activations", "weights", "activations", bits, bits,
                          rng.choice((8, 32)), "rne", ()))
    assert _compare(hw, ops) > 60


@pytest.mark.parametrize("name", CONFIGS)
def test_pruned_dram_tiling_equals_the_full_scan(name: str) -> None:
    """The DRAM tiling search skips tile pairs by a lower bound on their bytes; with the
    bound off every pair is costed. Same plan (tiles, order, traffic, count) either way."""
    hw = load_hwconfig(name).config
    ops = _ops("resnet20", 3, "train") + _ops("mobilenetv2", 2, "train")
    n = 0
    for op in ops:
        acc = hw.mac_array.accumulator
        shape = op_shape(op, pass_kind(op), acc.psum_bits or acc.bits)
        for carried, keep in ((None, False), ("A", True), ("B", False)):
            for bytes_first in (True, False):
                args = dict(carried=carried, keep_out=keep, bytes_first=bytes_first,
                            read_pj=7.5, write_pj=9.0)
                fast = best_dram_plan(shape, _capacity(hw, op), **args)  # type: ignore[arg-type]
                full = best_dram_plan(shape, _capacity(hw, op), prune=False, **args)  # type: ignore[arg-type]
                assert fast == full, (name, op.layer, op.pass_name, carried, keep)
                n += fast is not None
    assert n > 100
