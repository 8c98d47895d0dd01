"""Dotted overrides: by index, by memory name, nested lists; bad paths and values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fxpsim.config.load import load_hwconfig
from fxpsim.config.overrides import apply_overrides, parse_key_path
from fxpsim.errors import ConfigError

EDGE = Path(__file__).resolve().parents[1] / "hwconfigs" / "edge_npu.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(EDGE.read_text())


def load(**overrides: str):
    return load_hwconfig(str(EDGE), {k.replace("__", "."): v for k, v in overrides.items()})


def test_parse_key_path():
    assert parse_key_path("memory[1].size_kib") == ["memory", 1, "size_kib"]
    assert parse_key_path("mac_array.precision_modes[0].name") == [
        "mac_array", "precision_modes", 0, "name"]
    with pytest.raises(ConfigError, match="malformed key path"):
        parse_key_path("mac_array..rows")
    with pytest.raises(ConfigError, match="malformed key path"):
        parse_key_path("memory[x].size_kib")


def test_scalar_types_from_yaml(raw):
    out = apply_overrides(raw, {"mac_array.rows": "32", "dram.bandwidth_gb_s": "25.6",
                                "mac_array.systolic": "false"})
    assert out["mac_array"]["rows"] == 32 and isinstance(out["mac_array"]["rows"], int)
    assert out["dram"]["bandwidth_gb_s"] == 25.6
    assert out["mac_array"]["systolic"] is False
    assert raw["mac_array"]["rows"] == 16, "input must not be mutated"


def test_by_index_and_by_name_agree():
    by_index = load(**{"memory[0].size_kib": "512"})
    by_name = load(**{"memory.global_sram.size_kib": "512"})
    assert by_index.config.memory[0].size_kib == 512.0
    assert by_index.digest == by_name.digest
    assert by_index.config.memory[1].size_kib == 16.0  # others untouched


def test_list_value_and_nested_list_index():
    hw = load(**{"mac_array.requantizer.rounding_modes": "[rne,stochastic]",
                 "mac_array.precision_modes[1].macs_per_pe_per_cycle": "2"}).config
    assert hw.mac_array.requantizer.rounding_modes == ["rne", "stochastic"]
    assert hw.mac_array.precision_modes[1].macs_per_pe_per_cycle == 2.0


def test_new_dict_entry_and_absent_optional_section():
    hw = load(**{"energy.mac.int2": "0.01", "mac_array.weight_double_buffered": "true"}).config
    assert hw.energy.mac["int2"] == 0.01
    assert hw.mac_array.weight_double_buffered is True


def test_overrides_apply_in_order():
    hw = load_hwconfig(str(EDGE), {"mac_array.rows": "8", "mac_array.cols": "4"}).config
    assert (hw.mac_array.rows, hw.mac_array.cols) == (8, 4)


@pytest.mark.parametrize(
    ("key", "path", "message"),
    [
        ("mac_array.rowz", "mac_array.rowz",
         "unknown key 'rowz' (valid: rows, cols, dataflow, spatial_map,"),
        ("dramm.bandwidth_gb_s", "dramm.bandwidth_gb_s",
         "unknown key 'dramm' (valid: schema_version, name,"),
        ("memory.scratch.size_kib", "memory.scratch.size_kib",
         "no entry named 'scratch' in memory (names: global_sram, acc_sram, pe_regs)"),
        ("memory[9].size_kib", "memory[9].size_kib",
         "index 9 out of range (memory has 3 entries)"),
        ("mac_array.rows.x", "mac_array.rows.x", "mac_array.rows is a value (16), not a section"),
        ("mac_array.spatial_map.depth", "mac_array.spatial_map.depth",
         "unknown key 'depth' (valid: rows, cols)"),
    ],
)
def test_bad_override_key_path(key, path, message):
    with pytest.raises(ConfigError) as info:
        load_hwconfig(str(EDGE), {key: "1"})
    err = info.value
    assert err.source == "command line" and err.key_path == path
    assert err.message.startswith(message), err.message


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("mac_array.rows", "abc", "expected an integer in 1..4096, got 'abc' (a string)"),
        ("mac_array.rows", "2.5", "expected an integer in 1..4096, got 2.5 (a float)"),
        ("dram.efficiency", "1.2", "expected a number >= 0.001 and <= 1, got 1.2"),
        ("dram.bandwidth_gb_s", ".inf", "expected a finite number, got inf"),
        ("mac_array.dataflow", "diagonal", "expected one of weight_stationary,"),
        ("memory[1].size_kib", "-4", "expected a number >= 0.0009765625 and <= 1073741824, got -4"),
    ],
)
def test_bad_override_value_reported_against_command_line(key, value, message):
    with pytest.raises(ConfigError) as info:
        load_hwconfig(str(EDGE), {key: value})
    assert str(info.value).startswith(f"command line: {key}: {message}"), str(info.value)


def test_unparsable_override_value():
    with pytest.raises(ConfigError) as info:
        load_hwconfig(str(EDGE), {"mac_array.requantizer.rounding_modes": "[rne, "})
    assert info.value.key_path == "mac_array.requantizer.rounding_modes"
    assert "cannot parse value" in info.value.message


def test_override_cannot_reintroduce_file_error_source(tmp_path):
    """An error in an untouched key still names the file, not the command line."""
    text = EDGE.read_text().replace("  cols: 16", "  cols: 0", 1)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_hwconfig(str(path), {"mac_array.rows": "8"})
    assert info.value.source == str(path) and info.value.key_path == "mac_array.cols"
