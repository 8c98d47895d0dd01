"""Loading hwconfigs: every kind of bad input gives one line naming file, key path and
expectation; good files load, resolve by name, and have a stable digest."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from fxpsim.config.hw import HwConfig
from fxpsim.config.load import config_digest, load_hwconfig
from fxpsim.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
EDGE = REPO / "hwconfigs" / "edge_npu.yaml"


@pytest.fixture(scope="module")
def edge_raw() -> dict:
    return yaml.safe_load(EDGE.read_text())


def write(tmp_path: Path, raw: object, name: str = "hw.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False) if not isinstance(raw, str) else raw)
    return str(path)


def error_of(ref: str, overrides: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_hwconfig(ref, overrides or {})
    text = str(info.value)
    assert "\n" not in text, "errors must be one line"
    return info.value


def mutated(edge_raw: dict, fn) -> dict:
    raw = copy.deepcopy(edge_raw)
    fn(raw)
    return raw


# ---- the shipped configs -------------------------------------------------------------------
def test_examples_load_with_documented_peaks():
    edge = load_hwconfig(str(EDGE)).config
    server = load_hwconfig(str(REPO / "hwconfigs" / "server_npu.yaml")).config
    assert (edge.mac_array.rows, edge.mac_array.cols, edge.clock.freq_mhz) == (16, 16, 800)
    # README (accelerator configs): edge 204.8 GMAC/s INT8; roofline knee = 204.8e9 / (12.8e9 * 0.8) = 20 MAC/B
    peak = edge.mac_array.rows * edge.mac_array.cols * edge.freq_hz
    assert peak == 204.8e9
    assert peak / (edge.dram_bytes_per_cycle * edge.freq_hz) == pytest.approx(20.0)
    assert edge.mac_array.stochastic_rounding.seed == 0xACE1
    assert [m.name for m in edge.memories_holding("psums")] == ["acc_sram"]
    assert server.mac_array.rows * server.mac_array.cols * server.freq_hz * 4 == 65536e9
    assert edge.leakage_mw_total == pytest.approx(3.0 + 6.0 + 0.5)


def test_every_energy_line_has_a_source_comment():
    """Energies (pJ, mW, the energy: table) each carry a source or 'assumption' comment."""
    for name in ("edge_npu", "server_npu"):
        text = (REPO / "hwconfigs" / f"{name}.yaml").read_text()
        section = ""
        for line in text.splitlines():
            if line[:1].isalpha():
                section = line.split(":")[0]
            key = line.split("#")[0]
            priced = ("_pj" in key or "_mw" in key) and ":" in key
            if priced or (section == "energy" and any(c.isdigit() for c in key)):
                assert "#" in line, f"{name}: energy without a source comment: {line!r}"


# ---- resolution ----------------------------------------------------------------------------
def test_name_resolves_to_packaged_copy_outside_the_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./hwconfigs here: only the packaged copy can match
    for ref in ("edge_npu", "edge_npu.yaml"):
        loaded = load_hwconfig(ref)
        assert loaded.config.name == "edge_npu"
        assert Path(loaded.source).name == "edge_npu.yaml"
        assert loaded.digest == load_hwconfig(str(EDGE)).digest


def test_local_hwconfigs_dir_shadows_packaged(tmp_path, monkeypatch, edge_raw):
    (tmp_path / "hwconfigs").mkdir()
    raw = mutated(edge_raw, lambda r: r["mac_array"].update(rows=8))
    (tmp_path / "hwconfigs" / "edge_npu.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    loaded = load_hwconfig("edge_npu")
    assert loaded.config.mac_array.rows == 8
    assert loaded.source == os.path.join("hwconfigs", "edge_npu.yaml")


def test_missing_file_names_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = error_of("no_such_npu")
    assert err.key_path == "hw"
    assert "no_such_npu" in str(err)
    assert "hwconfigs/no_such_npu.yaml" in str(err).replace("\\", "/")
    assert "edge_npu" in str(err)  # lists the built-ins
    err = error_of(str(tmp_path / "sub" / "x.yaml"))
    assert "x.yaml" in str(err)


# ---- digest --------------------------------------------------------------------------------
def test_digest_stable_and_changed_by_override():
    a, b = load_hwconfig(str(EDGE)), load_hwconfig(str(EDGE))
    assert a.digest == b.digest and len(a.digest) == 64
    c = load_hwconfig(str(EDGE), {"dram.bandwidth_gb_s": "25.6"})
    assert c.digest != a.digest
    assert c.digest == config_digest(c.config)
    # an override equal to the file's value resolves to the same hardware, same digest
    assert load_hwconfig(str(EDGE), {"mac_array.rows": "16"}).digest == a.digest


# ---- bad files: one test per kind ----------------------------------------------------------
def test_unknown_top_level_key(tmp_path, edge_raw):
    src = write(tmp_path, mutated(edge_raw, lambda r: r.update(colour="red")))
    err = error_of(src)
    assert str(err).startswith(f"{src}: colour: unknown key 'colour' (valid: schema_version,")
    assert "mac_array" in err.message


def test_unknown_nested_key_lists_valid_keys_of_that_section(tmp_path, edge_raw):
    src = write(tmp_path, mutated(edge_raw, lambda r: r["mac_array"].update(rowz=3)))
    err = error_of(src)
    assert err.source == src and err.key_path == "mac_array.rowz"
    assert "unknown key 'rowz' (valid: rows, cols, dataflow," in err.message


@pytest.mark.parametrize(
    ("value", "given"),
    [("16", "'16' (a string)"), (True, "true (a boolean)"), (16.0, "16.0 (a float)")],
)
def test_wrong_type_for_int(tmp_path, edge_raw, value, given):
    src = write(tmp_path, mutated(edge_raw, lambda r: r["mac_array"].update(rows=value)))
    assert str(error_of(src)) == (
        f"{src}: mac_array.rows: expected an integer in 1..4096, got {given}"
    )


def test_negative_size_in_list_entry(tmp_path, edge_raw):
    src = write(tmp_path, mutated(edge_raw, lambda r: r["memory"][1].update(size_kib=-4)))
    assert str(error_of(src)) == (
        f"{src}: memory[1].size_kib: expected a number >= 0.0009765625 and <= 1073741824, got -4"
    )


def test_zero_rows(tmp_path, edge_raw):
    src = write(tmp_path, mutated(edge_raw, lambda r: r["mac_array"].update(rows=0)))
    assert str(error_of(src)) == f"{src}: mac_array.rows: expected an integer in 1..4096, got 0"


def test_huge_rows_bounded(tmp_path, edge_raw):
    src = write(tmp_path, mutated(edge_raw, lambda r: r["mac_array"].update(rows=10**30)))
    err = error_of(src)
    assert err.key_path == "mac_array.rows" and "1..4096" in err.message


def test_efficiency_above_one(tmp_path, edge_raw):
    src = write(tmp_path, mutated(edge_raw, lambda r: r["dram"].update(efficiency=1.5)))
    assert str(error_of(src)) == f"{src}: dram.efficiency: expected a number >= 0.001 and <= 1, got 1.5"


def test_missing_required_section(tmp_path, edge_raw):
    src = write(tmp_path, mutated(edge_raw, lambda r: r.pop("dram")))
    err = error_of(src)
    assert err.key_path == "dram"
    assert err.message.startswith("required section is missing (expected a mapping with keys")
    assert "bandwidth_gb_s" in err.message


def test_bad_literal(tmp_path, edge_raw):
    src = write(tmp_path, mutated(edge_raw, lambda r: r["mac_array"].update(dataflow="diagonal")))
    assert str(error_of(src)) == (
        f"{src}: mac_array.dataflow: expected one of weight_stationary, output_stationary, "
        "input_stationary, got 'diagonal' (a string)"
    )


def test_default_rounding_not_in_rounding_modes(tmp_path, edge_raw):
    def fn(r):
        r["mac_array"]["requantizer"].update(rounding_modes=["rne"], default_rounding="rtz")

    src = write(tmp_path, mutated(edge_raw, fn))
    assert str(error_of(src)) == (
        f"{src}: mac_array.requantizer.default_rounding: expected one of rounding_modes (rne), "
        "got 'rtz'"
    )


def test_precision_mode_without_energy_price(tmp_path, edge_raw):
    src = write(tmp_path, mutated(edge_raw, lambda r: r["energy"]["mac"].pop("int4")))
    err = error_of(src)
    assert err.key_path == "energy.mac" and "missing int4" in err.message


def test_empty_file(tmp_path):
    src = write(tmp_path, "")
    assert str(error_of(src)) == f"{src}: file is empty"
    src = write(tmp_path, "# only a comment\n", "c.yaml")
    assert str(error_of(src)).startswith(f"{src}: file is empty")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert str(error_of(str(path))) == f"{path}: not UTF-8 text (byte 0xe9 at offset 9)"


def test_too_large_file(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * (1 << 20) + "\n")
    assert "larger than 1048576 bytes" in str(error_of(str(path)))


def test_duplicate_key(tmp_path):
    text = EDGE.read_text().replace("  cols: 16", "  cols: 16\n  rows: 32", 1)
    src = write(tmp_path, text)
    err = error_of(src)
    assert err.key_path == "mac_array.rows"
    assert err.message.startswith("duplicate key (first at line")


def test_yaml_alias_bomb_refused(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    src = write(tmp_path, "\n".join(lines) + "\n")
    err = error_of(src)
    assert err.key_path == "line 2" and "aliases" in err.message


def test_non_mapping_top_level(tmp_path):
    src = write(tmp_path, "- a\n- b\n")
    assert str(error_of(src)) == (
        f"{src}: expected a mapping at the top level (schema_version: 1, ...), got a list"
    )


@pytest.mark.parametrize("literal", [".nan", ".inf", "-.inf"])
def test_non_finite_number(tmp_path, literal):
    text = EDGE.read_text().replace("bandwidth_gb_s: 12.8", f"bandwidth_gb_s: {literal}")
    src = write(tmp_path, text)
    err = error_of(src)
    assert err.key_path == "dram.bandwidth_gb_s"
    assert err.message.startswith("expected a finite number, got")


def test_yaml_syntax_error_names_line(tmp_path):
    src = write(tmp_path, "name: [unclosed\n")
    err = error_of(src)
    assert err.key_path.startswith("line ") and err.message.startswith("invalid YAML")


def test_exponent_float_is_a_number(tmp_path, edge_raw):
    text = EDGE.read_text().replace("bandwidth_gb_s: 12.8", "bandwidth_gb_s: 1.28e1")
    assert load_hwconfig(write(tmp_path, text)).config.dram.bandwidth_gb_s == 12.8
    text = EDGE.read_text().replace("bandwidth_gb_s: 12.8", "bandwidth_gb_s: 128e-1")
    assert load_hwconfig(write(tmp_path, text, "b.yaml")).config.dram.bandwidth_gb_s == 12.8


def test_schema_is_frozen(edge_raw):
    cfg = HwConfig.model_validate(edge_raw)
    with pytest.raises(Exception):  # noqa: B017 (pydantic raises ValidationError)
        cfg.mac_array.rows = 3  # type: ignore[misc]


def test_deep_nesting_and_huge_integer_literal(tmp_path):
    src = write(tmp_path, "a: " + "[" * 20000 + "]" * 20000 + "\n")
    assert "nesting too deep" in str(error_of(src))
    src = write(tmp_path, EDGE.read_text().replace("  rows: 16", "  rows: " + "9" * 5000), "i.yaml")
    assert str(error_of(src)) == f"{src}: invalid YAML value: a number with too many digits"


def test_non_string_dict_key_and_non_mapping_list_entry(tmp_path, edge_raw):
    src = write(tmp_path, mutated(edge_raw, lambda r: r["energy"]["mac"].update({1: 0.1})))
    assert str(error_of(src)) == f"{src}: energy.mac: expected string keys, got 1 (an integer)"
    src = write(tmp_path, mutated(edge_raw, lambda r: r["memory"].insert(0, "oops")), "m.yaml")
    err = error_of(src)
    assert err.key_path == "memory[0]"
    assert err.message.startswith("expected a mapping with keys name, size_kib,")
    assert err.message.endswith("got 'oops' (a string)")


def test_cross_field_error_caused_by_override_blames_command_line():
    err = error_of(str(EDGE), {"mac_array.precision_modes[0].name": "int9"})
    assert str(err) == (
        "command line: energy.mac: expected a price (pJ) for every precision mode, missing int9"
    )
