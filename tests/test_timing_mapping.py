"""Mapping: spatial maps, precision-mode selection, tile classes (counts asserted exactly)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from fxpsim.config.hw import HwConfig
from fxpsim.errors import ConfigError, UnsupportedError
from fxpsim.timing.mapping import map_gemm, nbytes, pass_kind, select_mode, spatial_axes
from fxpsim.timing.ops import GemmOp

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
    assert map_gemm(os_map, conv("forward")).stationary == "O"


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


def test_tiles_edge_conv1() -> None:
    """edge WS: k=27 -> 2 row folds (16 + 11), n=64 -> 4 col folds, T=1024 chunked to fit one
    acc buffer: 8 KiB x 8 / (16 cols x 32 bit) = 128 -> 8 chunks; 4 x 8 x 2 = 64 tiles of
    16 + 128 + 30 = 174 cycles."""
    mp = map_gemm(hw("edge_npu"), conv("forward"))
    assert [(lp.axis, lp.trips) for lp in mp.loops] == [("n", 4), ("m", 8), ("k", 2)]
    assert mp.n_tiles == 64
    assert {t.array_cycles for t in mp.tiles} == {174}
    assert sum(t.count * t.macs for t in mp.tiles) == 1024 * 27 * 64
    assert (mp.sweeps("A"), mp.sweeps("B")) == (4, 8)
    assert sum(t.count for t in mp.tiles if t.red_last) == 32


def test_tile_macs_cover_the_gemm() -> None:
    """Random shapes on every dataflow: tile MACs add up to the GEMM, counts are exact."""
    rng = random.Random(7)
    for _ in range(200):
        m, k, n, g = rng.randint(1, 300), rng.randint(1, 300), rng.randint(1, 70), rng.randint(1, 3)
        df = rng.choice(["weight_stationary", "output_stationary", "input_stationary"])
        op = GemmOp("x", "linear", "forward", m, k, n, g, "activations", "weights",
                    "activations", 8, 8, 8, "rne")
        mp = map_gemm(hw(dataflow=df), op)
        assert sum(t.count * t.macs for t in mp.tiles) == op.macs
        trips = 1
        for lp in mp.loops:
            trips *= lp.trips
        assert mp.n_tiles == trips * g


def test_double_buffered_weights_hide_the_load() -> None:
    mp = map_gemm(hw(weight_double_buffered=True), conv("forward"))
    # chunk on tiny: 512 B x 8 / (4 x 32) = 32 -> stream 32 >= load 4: nothing exposed
    assert {t.load_cycles for t in mp.tiles} == {0}


def test_int4_packs_two_per_byte() -> None:
    assert [nbytes(e, 4) for e in (0, 1, 2, 3)] == [0, 1, 1, 2]
    assert nbytes(3, 16) == 6
