"""Area model: per-component mm² from the hwconfig's ``area`` prices, checked by hand on the
tiny config; a missing price is a one-line error; ``check`` and summary.json carry it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fxpsim.cli import main
from fxpsim.config.area import area_of
from fxpsim.config.load import builtin_names, load_hwconfig
from fxpsim.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def test_tiny_by_hand() -> None:
    a = dict(area_of(load_hwconfig("tiny").config).by_component)
    # 4x4 PEs x (int8 100 + int4 10 + int16 20) um^2
    assert a["pe_array"] == pytest.approx(16 * 130 / 1e6)
    assert a["sram.global_sram"] == pytest.approx(4 * 1000 / 1e6)
    assert a["sram.acc_sram"] == pytest.approx(1 * 1000 / 1e6)
    assert a["rng"] == pytest.approx(4 * 16 * 1 / 1e6)  # 4 LFSRs x 16 bits
    assert a["requantizer"] == pytest.approx(4 * 1000 / 1e6)
    assert a["vector_unit"] == pytest.approx(4 * 1000 / 1e6)
    assert a["dram_phy"] == 1.0
    regs = load_hwconfig("tiny").config.memory[-1].per_pe_bits
    assert a["pe_regs"] == pytest.approx(16 * regs / 1e6)


@pytest.mark.parametrize("name", builtin_names())
def test_more_hardware_more_area(name: str) -> None:
    base = area_of(load_hwconfig(name).config)
    assert base.total_mm2 == pytest.approx(sum(v for _, v in base.by_component))
    assert all(v >= 0 for _, v in base.by_component)
    rows = load_hwconfig(name).config.mac_array.rows
    bigger = area_of(load_hwconfig(name, {"mac_array.rows": str(2 * rows)}).config)
    assert bigger.total_mm2 > base.total_mm2


def test_missing_prices_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"area.pe_um2: expected an area .* missing int4"):
        load_hwconfig("tiny", {"area.pe_um2": "{int8: 1, int16: 2}"})
    with pytest.raises(ConfigError, match=r"area.sram_um2_per_kib.2r1w: missing area price"):
        load_hwconfig("tiny", {"memory.global_sram.ports.read": "2"})


def test_check_and_summary_carry_area(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "hw=tiny"]) == 0
    out = capsys.readouterr().out
    assert "# area (tiny_round_test_numbers)" in out
    assert "pe_array          0.0021 mm2" in out and "dram_phy          1.0000 mm2" in out
    assert main(["run", "hw=tiny", "model=lenet5", "batch=2", "steps=0", "format=json,md",
                 f"out={tmp_path / 'r'}"]) == 0
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["area"]["total_mm2"] == pytest.approx(area_of(load_hwconfig("tiny").config).total_mm2)
    assert "## Area by component" in (tmp_path / "r" / "report.md").read_text()
