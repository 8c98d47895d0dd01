"""``fxpsim check`` / ``fxpsim list`` through the real entry point: output, exit codes, and
one-line errors without tracebacks."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import yaml

from fxpsim.cli import main

REPO = Path(__file__).resolve().parents[1]
EDGE = REPO / "hwconfigs" / "edge_npu.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_prints_resolved_yaml_and_derived_numbers(capsys):
    code, out, err = run(capsys, "check", "hw=edge_npu")
    assert code == 0 and err == ""
    yaml_part = out.split("\n# derived")[0]
    resolved = yaml.safe_load(yaml_part)
    assert resolved["mac_array"]["rows"] == 16 and resolved["name"] == "edge_npu"
    assert "peak int8        204.8 GMAC/s (409.6 GOPS), roofline knee 20.0 MAC/B" in out
    assert "peak int4        819.2 GMAC/s" in out
    assert "DRAM achievable  10.24 GB/s (12.80 B/cycle)" in out
    assert "leakage total    9.5 mW" in out
    assert "digest           sha256:" in out


def test_check_with_override_changes_numbers_and_digest(capsys):
    _, base, _ = run(capsys, "check", f"hw={EDGE}")
    code, out, _ = run(capsys, "check", f"hw={EDGE}", "mac_array.rows=32",
                       "dram.bandwidth_gb_s=25.6")
    assert code == 0
    assert "peak int8        409.6 GMAC/s" in out
    assert "DRAM achievable  20.48 GB/s" in out
    digest = [ln for ln in out.splitlines() if ln.startswith("digest")]
    assert digest != [ln for ln in base.splitlines() if ln.startswith("digest")]


def test_check_scalesim_cfg(capsys):
    code, out, _ = run(capsys, "check", "hw=scalesim_example.cfg")
    assert code == 0 and "peak int8        256.0 GMAC/s" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["check", "hw=edge_npu", "mac_array.rowz=3"],
         "fxpsim: error: command line: mac_array.rowz: unknown key 'rowz' (valid: rows, cols,"),
        (["check", "hw=edge_npu", "mac_array.rows=abc"],
         "fxpsim: error: command line: mac_array.rows: expected an integer in 1..4096, "
         "got 'abc' (a string)"),
        (["check", "hw=edge_npu", "batch=x"],
         "fxpsim: error: command line: batch: expected a positive integer, got 'x'"),
        (["check", "hw=edge_npu", "colour=red"],
         "fxpsim: error: command line: colour: unknown option; valid: hw, model,"),
        (["check", "hw=nope_npu"], "fxpsim: error: command line: hw: no hwconfig 'nope_npu'"),
        (["check"], "fxpsim: error: command line: hw: required"),
    ],
)
def test_check_errors_exit_2_one_line(capsys, argv, expected):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(expected), err


def test_check_bad_file_names_file_and_key(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EDGE.read_text().replace("dataflow: weight_stationary", "dataflow: diagonal"))
    code, _, err = run(capsys, "check", f"hw={bad}")
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"fxpsim: error: {bad}: mac_array.dataflow: expected one of ")


def test_list_shows_hwconfigs_and_models(capsys, monkeypatch):
    fake = types.ModuleType("fxpsim.graph.resolve")
    fake.list_models = lambda: [("toynet", (1, 3, 32, 32), 12_500_000, 4200)]  # type: ignore
    monkeypatch.setitem(sys.modules, "fxpsim.graph.resolve", fake)
    monkeypatch.chdir(REPO)
    code, out, err = run(capsys, "list")
    assert code == 0 and err == ""
    for text in ("edge_npu", "server_npu", "scalesim_example", "16x16", "128x128",
                 "weight_stationary", "800 MHz", "LPDDR4-3200x32 12.8 GB/s",
                 "toynet", "1x3x32x32", "12.50 M", "4.20 k"):
        assert text in out, text
