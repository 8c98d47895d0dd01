"""SCALE-Sim .cfg import: mapping to HwConfig, documented assumptions, bad inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fxpsim.config.load import load_hwconfig
from fxpsim.config.scalesim_cfg import CLOCK_MHZ, EDGE_ENERGY
from fxpsim.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "hwconfigs" / "scalesim_example.cfg"

GOOGLE_V2 = """\
[general]
run_name = "GoogleTPU_v1_os"

[architecture_presets]
ArrayHeight:    256
ArrayWidth:     128
IfmapSramSzkB:    6144
FilterSramSzkB:   6144
OfmapSramSzkB:    2048
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Dataflow : os
Bandwidth : 32
MemoryBanks: 4

[run_presets]
InterfaceBandwidth: CALC
"""


def write(tmp_path: Path, text: str, name: str = "arch.cfg") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_example_cfg_imports():
    loaded = load_hwconfig(str(EXAMPLE))
    hw = loaded.config
    assert (hw.mac_array.rows, hw.mac_array.cols) == (16, 16)
    assert hw.mac_array.dataflow == "weight_stationary"
    assert [m.name for m in hw.memory] == ["ifmap_sram", "filter_sram", "ofmap_sram", "pe_regs"]
    assert [m.size_kib for m in hw.memory[:3]] == [64.0, 64.0, 32.0]
    assert [m.name for m in hw.memories_holding("weights")] == ["filter_sram"]
    assert [m.name for m in hw.memories_holding("psums")] == ["ofmap_sram"]
    assert [m.name for m in hw.memories_holding("gradients")] == ["ifmap_sram"]
    # 10 words/cycle x 1 B/word x 1000 MHz = 10 GB/s = 10 B per cycle
    assert hw.clock.freq_mhz == CLOCK_MHZ == 1000.0
    assert hw.dram.bandwidth_gb_s == 10.0 and hw.dram_bytes_per_cycle == 10.0
    assert [m.name for m in hw.mac_array.precision_modes] == ["int8"]
    assert hw.mac_array.precision_modes[0].macs_per_pe_per_cycle == 1.0
    assert hw.mac_array.accumulator.bits == 32
    assert hw.energy.mac == EDGE_ENERGY["mac"]
    assert "assumption" in hw.technology.energy_reference
    # a 32 KiB bank read 128 bits wide costs what edge_npu's global_sram bank does (20.3 pJ)
    assert hw.memory[2].read_energy_pj == pytest.approx(20.3, abs=0.05)


def test_example_resolves_by_name_and_takes_overrides():
    a = load_hwconfig("scalesim_example.cfg")
    b = load_hwconfig("scalesim_example", {"memory.filter_sram.size_kib": "128"})
    assert a.config.name == "scalesim_example_16x16_ws"
    assert b.config.memory[1].size_kib == 128.0 and a.digest != b.digest


def test_v2_style_file_with_banks_and_lowercase_keys(tmp_path):
    text = GOOGLE_V2.replace("IfmapSramSzkB", "ifmapsramszkB")  # SCALE-Sim lower-cases keys
    hw = load_hwconfig(write(tmp_path, text)).config
    assert hw.name == "GoogleTPU_v1_os"
    assert (hw.mac_array.rows, hw.mac_array.cols) == (256, 128)
    assert hw.mac_array.dataflow == "output_stationary"
    ifmap, filt, _ofmap, _regs = hw.memory
    assert ifmap.banks == 4 and ifmap.width_bits == 256 * 8 and filt.width_bits == 128 * 8
    expected = 10.0 * math.sqrt(6144 / 4 / 8) * (2048 / 64) * 0.507
    assert ifmap.read_energy_pj == pytest.approx(expected, abs=1e-3)
    assert hw.dram.bandwidth_gb_s == 32.0


@pytest.mark.parametrize(
    ("edit", "key_path", "message"),
    [
        (("ArrayHeight:    256", "ArrayHeight: tall"), "architecture_presets.ArrayHeight",
         "expected an integer, got 'tall'"),
        (("ArrayHeight:    256", "ArrayHeight: 0"), "architecture_presets.ArrayHeight",
         "expected a positive number, got '0'"),
        (("Dataflow : os", "Dataflow : rs"), "architecture_presets.Dataflow",
         "expected one of os, ws, is, got 'rs'"),
        (("MemoryBanks: 4", "MemoryBanks: 4\nArrayDepth: 3"), "architecture_presets.ArrayDepth",
         "unknown key (valid: ArrayHeight, ArrayWidth,"),
        (("[run_presets]", "[accelergy]\nfoo = 1\n[run_presets]"), "accelergy",
         "unknown section (valid: general,"),
        (("Bandwidth : 32\n", ""), "architecture_presets.Bandwidth", "required key is missing"),
        (("Bandwidth : 32", "Bandwidth : 10,20"), "architecture_presets.Bandwidth",
         "expected one number (words/cycle), got '10,20'"),
        (("CALC", "MAYBE"), "run_presets.InterfaceBandwidth", "expected USER or CALC"),
        (("MemoryBanks: 4", "MemoryBanks: 4\nArrayWidth: 8"), "architecture_presets.ArrayWidth",
         "duplicate key"),
        (("[run_presets]", "[sparsity]\nSparsitySupport: true\n[run_presets]"),
         "sparsity.SparsitySupport", "fxpsim does not model sparsity"),
        (("CALC", "USER\n[architecture_presets]"), "architecture_presets", "duplicate section"),
        (("[run_presets]", "[layout]\nIfmapCustomLayout: True\n[run_presets]"), "layout",
         "fxpsim does not model custom SRAM layouts"),
    ],
)
def test_bad_cfg(tmp_path, edit, key_path, message):
    old, new = edit
    assert old in GOOGLE_V2
    src = write(tmp_path, GOOGLE_V2.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_hwconfig(src)
    err = info.value
    assert err.source == src and err.key_path == key_path, str(err)
    assert err.message.startswith(message), err.message
    assert "\n" not in str(err)


def test_cfg_without_section_header(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_hwconfig(write(tmp_path, "ArrayHeight: 4\n"))
    assert "expected a [section] header" in info.value.message


def test_cfg_out_of_schema_range_is_caught_by_schema(tmp_path):
    src = write(tmp_path, GOOGLE_V2.replace("ArrayHeight:    256", "ArrayHeight: 5000"))
    with pytest.raises(ConfigError) as info:
        load_hwconfig(src)
    assert info.value.key_path == "mac_array.rows" and "1..4096" in info.value.message


def test_interface_bandwidth_modes(tmp_path):
    """SCALE-Sim 3.0.0 in USER mode: ifmap/filter DRAM words/cycle from [layout], the ofmap's
    from Bandwidth; without [layout] all three are Bandwidth (v2's meaning)."""
    calc = load_hwconfig(write(tmp_path, GOOGLE_V2)).config.scalesim
    assert calc is not None and calc.interface_bandwidth == "CALC"
    user = GOOGLE_V2.replace("CALC", "USER")
    plain = load_hwconfig(write(tmp_path, user, "u.cfg")).config.scalesim
    assert plain is not None and plain.interface_bandwidth == "USER"
    assert (plain.ifmap_words_per_cycle, plain.filter_words_per_cycle,
            plain.ofmap_words_per_cycle) == (32, 32, 32)
    layout = user.replace("[run_presets]", "[layout]\nIfmapSRAMBankBandwidth: 8\n"
                          "FilterSRAMBankBandwidth: 4\n[run_presets]")
    lay = load_hwconfig(write(tmp_path, layout, "l.cfg")).config.scalesim
    assert lay is not None
    assert (lay.ifmap_words_per_cycle, lay.filter_words_per_cycle,
            lay.ofmap_words_per_cycle) == (8, 4, 32)
    example = load_hwconfig(str(EXAMPLE)).config.scalesim
    assert example is not None and example.interface_bandwidth == "USER"


def test_user_mode_needs_whole_words_per_cycle(tmp_path):
    src = write(tmp_path, GOOGLE_V2.replace("CALC", "USER").replace(": 32", ": 2.5"))
    with pytest.raises(ConfigError) as info:
        load_hwconfig(src)
    assert info.value.key_path == "architecture_presets.Bandwidth"
    assert "whole words/cycle" in info.value.message
    # CALC never reads it as words: a fractional GB/s stays fine
    calc = write(tmp_path, GOOGLE_V2.replace(": 32", ": 2.5"), "c.cfg")
    assert load_hwconfig(calc).config.dram.bandwidth_gb_s == 2.5
