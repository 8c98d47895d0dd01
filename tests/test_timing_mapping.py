"""Mapping: spatial maps, precision-mode selection, tile classes (counts asserted exactly)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from fxpsim.config.hw import HwConfig
from fxpsim.errors import ConfigError, UnsupportedError
from fxpsim.timing.arraymap import array_candidates, plan_array
from fxpsim.timing.mapping import nbytes, pass_kind, select_mode, spatial_axes
from fxpsim.timing.ops import GemmOp
from fxpsim.timing.search import SearchCache, memory_of, search

HW = Path(__file__).resolve().parents[1] / "hwconfigs"


def hw(name: str = "tiny", **mac_array: object) -> HwConfig:
    raw = yaml.safe_load((HW / f"{name}.yaml").read_text())
    raw["mac_array"].update(mac_array)
    return HwConfig.model_validate(raw)


def conv(which: str, a_bits: int = 8, b_bits: int = 8) -> GemmOp:
    """3x3 conv, C=3 -> K=64, 32x32 output, batch 1, laid out as the lowering does."""
    flt = (("FY", 3), ("FX", 3))
    if which == "forward":
        return GemmOp("c1", "conv2d", "forward", 1024, 27, 64, 1, "activations", "weights",
                      "activations", a_bits, b_bits, 8, "rne",
                      (("B", 1), ("OY", 32), ("OX", 32), ("C", 3), *flt, ("K", 64)))
    if which == "dgrad":
        return GemmOp("c1", "conv2d", "backward_data", 1024, 576, 3, 1, "gradients", "weights",
                      "gradients", a_bits, b_bits, 8, "rne",
                      (("B", 1), ("IY", 32), ("IX", 32), ("K", 64), *flt, ("C", 3)))
    return GemmOp("c1", "conv2d", "backward_weight", 27, 1024, 64, 1, "activations",
                  "gradients", "weight_gradients", a_bits, b_bits, 32, "none",
                  (("C", 3), *flt, ("B", 1), ("OY", 32), ("OX", 32), ("K", 64)))


def test_default_maps_per_dataflow() -> None:
    op = conv("forward")
    assert spatial_axes(hw(), op) == ("k", "n", "m")
    assert spatial_axes(hw(dataflow="output_stationary"), op) == ("m", "n", "k")
    assert spatial_axes(hw(dataflow="input_stationary"), op) == ("k", "m", "n")
    assert [pass_kind(conv(w)) for w in ("forward", "dgrad", "wgrad")] == [
        "forward", "dgrad", "wgrad"]


def test_edge_npu_overrides() -> None:
    edge = hw("edge_npu")
    assert spatial_axes(edge, conv("forward")) == ("k", "n", "m")  # {rows: C, cols: K}
    assert spatial_axes(edge, conv("dgrad")) == ("k", "n", "m")  # {rows: K, cols: C}
    assert spatial_axes(edge, conv("wgrad")) == ("k", "n", "m")  # {rows: B*OY*OX, cols: K}
    os_map = hw(spatial_map={"rows": "B*OY*OX", "cols": "K"})
    assert spatial_axes(os_map, conv("forward")) == ("m", "n", "k")
    mp = search(os_map, conv("forward"), SearchCache())
    assert mp is not None and mp.array.stationary == "O"


def test_bad_maps_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"mac_array\.spatial_map\.rows: loop dim 'Q'"):
        spatial_axes(hw(spatial_map={"rows": "Q", "cols": "K"}), conv("forward"))
    with pytest.raises(ConfigError, match=r"spatial_map\.cols: 'C\*K' mixes"):
        spatial_axes(hw(spatial_map={"rows": "B", "cols": "C*K"}), conv("forward"))
    with pytest.raises(ConfigError, match="must differ"):
        spatial_axes(hw(spatial_map={"rows": "C", "cols": "FY"}), conv("forward"))
    bad = hw(spatial_map_overrides={"wgrad": {"rows": "IY", "cols": "K"}})
    with pytest.raises(ConfigError, match=r"spatial_map_overrides\.wgrad\.rows"):
        spatial_axes(bad, conv("wgrad"))


def test_precision_mode_selection() -> None:
    edge = hw("edge_npu")
    pick = {bits: select_mode(edge, conv("forward", *bits), "B").name
            for bits in [(4, 4), (8, 4), (4, 8), (8, 8), (16, 8), (2, 2)]}
    # (a_bits, b_bits): weights (B, stationary) take the w port
    assert pick == {(4, 4): "int4", (8, 4): "w4a8", (4, 8): "int8", (8, 8): "int8",
                    (16, 8): "int16", (2, 2): "int4"}
    with pytest.raises(UnsupportedError, match=r"c1 \(forward\).*32-bit x 8-bit"):
        select_mode(edge, conv("forward", 8, 32), "B")


def _plan(h: HwConfig, op: GemmOp, used: tuple[int, int], packing: tuple[int, int] = (1, 1)):
    axes = spatial_axes(h, op)
    mode = select_mode(h, op, "B")
    mems = {r: memory_of(h, k) for r, k in zip("ABO", (op.a_kind, op.b_kind, op.out_kind),
                                                 strict=True)}
    return plan_array(h, op, axes, mode, packing, used, mems)


def test_array_plan_edge_conv1() -> None:
    """edge WS: k=27 -> row folds of 14 and 13 (balanced), n=64 -> 4 col folds, T=1024
    chunked to fit one acc buffer: 8 KiB x 8 / (16 cols x 32 bit) = 128 -> 8 chunks; 64
    tiles of 128 streamed; loads 16 x rows x 16 / (16 x 16) = 14 or 13 cycles (32 tiles
    each); fill 14 + 16 - 2 = 28 once."""
    ap = _plan(hw("edge_npu"), conv("forward"), (14, 16))
    assert ap is not None
    assert (ap.folds, ap.chunk, ap.n_tiles) == ((2, 4, 8), 128, 64)
    assert (ap.stream_cycles, ap.load_cycles, ap.fill_cycles) == (64 * 128, 32 * 14 + 32 * 13, 28)
    assert ap.psum_elems == (1024 * 64 * 2, 1024 * 64 * 2)  # 2 reduction folds
    best = search(hw("edge_npu"), conv("forward"), SearchCache())
    assert best is not None and best.array.used == (14, 16)


def test_array_candidates_cover_the_gemm() -> None:
    """Random shapes on every dataflow: every candidate's tiles cover the MACs exactly once
    (streamed elements x used PEs >= MACs, with equality when the folds divide)."""
    rng = random.Random(7)
    for _ in range(100):
        m, k, n, g = rng.randint(1, 300), rng.randint(1, 300), rng.randint(1, 70), rng.randint(1, 3)
        df = rng.choice(["weight_stationary", "output_stationary", "input_stationary"])
        h = hw(dataflow=df)
        op = GemmOp("x", "linear", "forward", m, k, n, g, "activations", "weights",
                    "activations", 8, 8, 8, "rne")
        ext = {"m": m, "k": k, "n": n}
        axes = spatial_axes(h, op)
        for packing, used in array_candidates(h, op, axes, select_mode(h, op, "B")):
            ap = _plan(h, op, used, packing)
            if ap is None:
                continue
            nr, nc, nt = ap.folds
            assert nr == -(-ext[axes[0]] // used[0]) and nc == -(-ext[axes[1]] // used[1])
            assert ap.stream_cycles == g * nr * nc * ext[axes[2]]
            assert ap.stream_cycles * used[0] * used[1] >= op.macs


def test_double_buffered_weights_hide_the_load() -> None:
    ap = _plan(hw(weight_double_buffered=True), conv("forward"), (4, 4))
    # chunk on tiny: 512 B x 8 / (4 x 32) = 32 -> stream 32 >= load 4: nothing exposed
    assert ap is not None and ap.load_cycles == 0


def test_int4_packs_two_per_byte() -> None:
    assert [nbytes(e, 4) for e in (0, 1, 2, 3)] == [0, 1, 1, 2]
    assert nbytes(3, 16) == 6
