"""Energy = hand sum of priced actions on hwconfigs/tiny.yaml (round test numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fxpsim.config.hw import HwConfig
from fxpsim.errors import ConfigError
from fxpsim.timing.energy import alu_price, energy_components
from fxpsim.timing.ops import GemmOp, TimingRequest, VectorOp
from fxpsim.timing.simulate import simulate_ops

TINY = Path(__file__).resolve().parents[1] / "hwconfigs" / "tiny.yaml"
INFER = TimingRequest(phase="infer", batch=1)


def tiny() -> HwConfig:
    return HwConfig.model_validate(yaml.safe_load(TINY.read_text()))


def gemm(m: int, k: int, n: int) -> GemmOp:
    return GemmOp(layer="l1", op="linear", pass_name="forward", m=m, k=k, n=n, groups=1,
                  a_kind="activations", b_kind="weights", out_kind="activations",
                  a_bits=8, b_bits=8, out_bits=8, rounding="rne")


def test_gemm_energy_hand_sum() -> None:
    """WS 8x4 @ 4x8 int8 alone: everything fits, A 32 B + B 32 B read, out 64 B written.
    Array: k=4 on 4 rows, n=8 on 2 col folds, T=8: 2 x (8 + 4 load) + fill 6 = 30; DMA
    10 + 128 / 4 = 42; array 10 + P 5 + 30 + E 1 = 46 cycles.
    mac.int8 256 x 1.0 = 256; mac_idle (46 x 16 - 256) x 0.5 x 1.0 = 240;
    global_sram reads 20 x 2.0 + writes 16 x 3.0 = 88 (reads: A 32 elems x 2 col folds = 8,
    B 4, out drain 8 accesses of 64 bits; writes: out 8, fills A 4 + B 4);
    acc_sram 16 writes x 5 + 16 reads x 4 = 144 (64 psums of 32 bits, 4 per access);
    pe_regs 256 x 10 x 0.01 = 25.6; dram 64 B x 10 + 64 B x 20 = 1920; requant 64 x 0.5 =
    32; leakage 46 x 1 pJ = 46."""
    m = simulate_ops([gemm(8, 4, 8)], tiny(), INFER).records[0].metrics
    assert m.cycles == 46
    want = {"mac.int8": 256, "mac_idle": 240, "sram.global_sram": 88, "sram.acc_sram": 144,
            "pe_regs": 25.6, "dram": 1920, "requant": 32, "leakage": 46}
    got = m.energy_by_component.as_dict()
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12), k
    assert m.energy_pj == pytest.approx(2751.6, rel=1e-12)
    assert m.energy_pj == m.energy_by_component.total
    assert m.sram_accesses.as_dict() == {"global_sram.read": 20, "global_sram.write": 16,
                                         "acc_sram.read": 16, "acc_sram.write": 16}


def test_vector_energy_and_stochastic_requant() -> None:
    """quantize of 10 int32 elements: mul + requant (stochastic, 8 random bits each).
    Alone in the list, it reads its 40 B from DRAM and writes its 10 B back: DMA 10 +
    ceil(50 / 4) = 23 cycles > vector ceil(10/4) x (1 + 1) = 6 -> 23 cycles.
    vector.mul 10 x 2.0 = 20; requant 10 x 1.0 = 10; rng 80 x 0.25 = 20; sram: 40 B read =
    5 accesses x 2.0, 10 B write = 2 x 3.0 -> 16; dram 40 x 10 + 10 x 20 = 600; leakage 23."""
    vo = VectorOp(layer="q", op="conv2d", pass_name="grad_quant", kind="quantize", elems=10,
                  alu=(("mul", 1), ("requant", 1)), bits=32, read_bytes=40, write_bytes=10,
                  rng_bits=80, stochastic_roundings=10, rounding="stochastic")
    m = simulate_ops([vo], tiny(), TimingRequest(phase="train")).records[0].metrics
    assert (m.cycles, m.compute_cycles, m.vector_ops, m.requant_events, m.rng_bits) == (
        23, 6, 20, 10, 80)
    assert m.energy_by_component.as_dict() == pytest.approx(
        {"vector.mul": 20.0, "requant": 10.0, "rng": 20.0, "sram.global_sram": 16.0,
         "dram": 600.0, "leakage": 23.0})


def test_missing_price_is_an_error_naming_the_key() -> None:
    hw = tiny()
    with pytest.raises(ConfigError, match=r"energy\.mul\.int16"):
        alu_price(hw, "mul", 16)
    with pytest.raises(ConfigError, match=r"energy\.popcount"):
        alu_price(hw, "popcount", 32)
    assert alu_price(hw, "rsqrt", 32) == 4 * 2.0  # ops_cycles.rsqrt multiplies
    with pytest.raises(ConfigError, match=r"energy\.cmp\.int16"):
        energy_components(hw, cycles=1, vector_alu=[("max", 16, 3)])


def test_leakage_only() -> None:
    assert energy_components(tiny(), cycles=1000).as_dict() == {"leakage": pytest.approx(1000.0)}
