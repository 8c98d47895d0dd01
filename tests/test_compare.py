"""``fxpsim compare``: comma lists become axes, every variant runs the ``fxpsim run``
pipeline with everything else (seed included) shared, one comparison folder is written.

Cycle counts are asserted exactly; a variant's totals must equal those of a separate
``fxpsim run`` with the same options (the comparison adds nothing of its own).
"""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import pytest

from fxpsim.cli import main
from fxpsim.compare import MAX_VARIANTS, grid, split_axes
from fxpsim.compare_report import compare_html, compare_md
from fxpsim.errors import FxpsimError

REPO = Path(__file__).resolve().parents[1]
BASE = ["hw=tiny", "model=lenet5", "phase=train", "batch=2", "steps=0"]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="module")
def rounding_cmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cmp")
    out = tmp / "c"
    # tiny's requantizer lists rne and stochastic only: a copy of it that floors too
    text = (REPO / "hwconfigs" / "tiny.yaml").read_text()
    hw = tmp / "tiny.yaml"
    hw.write_text(text.replace("rounding_modes: [rne, stochastic]",
                               "rounding_modes: [rne, stochastic, floor]"))
    assert hw.read_text() != text
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        assert main(["compare", f"hw={hw}", *BASE[1:], "rounding.g=half_even,stochastic,floor",
                     f"out={out}"]) == 0
    return out


def test_grid_order_and_non_axes() -> None:
    axes, variants = grid({"hw": "tiny", "w_bits": "4,8", "algo": "laq, fb",
                           "format": "json,md", "seed": "3"})
    assert [(a.key, a.values) for a in axes] == [("w_bits", ("4", "8")),
                                                 ("algo", ("laq", "fb"))]
    assert [v.label for v in variants] == ["w_bits=4 algo=laq", "w_bits=4 algo=fb",
                                           "w_bits=8 algo=laq", "w_bits=8 algo=fb"]
    opts = dict(variants[1].options)
    assert opts["seed"] == "3" and opts["hw"] == "tiny" and opts["algo"] == "fb"
    assert opts["format"] == "json"  # variants only produce summary data
    shared, _ = split_axes({"format": "json,md", "out": "a,b", "rounding.g": "floor"})
    assert shared == {"format": "json,md", "out": "a,b", "rounding.g": "floor"}


@pytest.mark.parametrize("opts, text", [
    ({"hw": "tiny"}, "at least one option with a comma list"),
    ({"w_bits": "4,,8"}, "w_bits: empty item"),
    ({"w_bits": "4,4"}, "w_bits: repeated item"),
    ({"w_bits": ",".join(str(b) for b in range(2, 11)),
      "a_bits": ",".join(str(b) for b in range(2, 11))}, f"at most {MAX_VARIANTS}"),
])
def test_grid_errors(opts: dict, text: str) -> None:
    with pytest.raises(FxpsimError, match=text):
        grid(opts)


def test_rounding_comparison_shows_rng_and_requant_cost(rounding_cmp: Path) -> None:
    assert sorted(p.name for p in rounding_cmp.iterdir()) == [
        "compare.csv", "compare.html", "compare.json", "compare.md"]
    cmp = json.loads((rounding_cmp / "compare.json").read_text())
    assert cmp["axes"] == {"rounding.g": ["half_even", "stochastic", "floor"]}
    assert cmp["seed"] == 0 and cmp["shared"]["hw"].endswith("tiny.yaml")
    he, sr, fl = cmp["variants"]
    assert [v["values"]["rounding.g"] for v in (he, sr, fl)] == ["half_even", "stochastic",
                                                                "floor"]
    # rounding changes energy, not time: cycles identical (exact)
    assert he["totals"]["cycles"] == sr["totals"]["cycles"] == fl["totals"]["cycles"]
    assert he["totals"]["rng_bits"] == 0 and sr["totals"]["rng_bits"] > 0
    assert sr["totals"]["energy_by_component"]["rng"] > 0
    assert "rng" not in he["totals"]["energy_by_component"]
    assert (sr["totals"]["energy_by_component"]["requant"]
            > he["totals"]["energy_by_component"]["requant"])
    assert sr["deltas"]["rng_bits"]["abs"] == sr["totals"]["rng_bits"]
    assert he["deltas"]["cycles"] == {"abs": 0, "rel": 0.0}
    assert sr["deltas"]["energy_pj"]["abs"] > 0
    rows = list(csv.DictReader(io.StringIO((rounding_cmp / "compare.csv").read_text())))
    assert [r["rounding.g"] for r in rows] == ["half_even", "stochastic", "floor"]
    assert int(rows[1]["rng_bits"]) == sr["totals"]["rng_bits"]
    md = (rounding_cmp / "compare.md").read_text()
    assert "| rounding.g=stochastic |" in md and "RNG bits" in md


def test_variant_equals_a_plain_run(rounding_cmp: Path, tmp_path: Path) -> None:
    cmp = json.loads((rounding_cmp / "compare.json").read_text())
    out = tmp_path / "single"
    assert main(["run", *BASE, "rounding.g=stochastic", "format=json", f"out={out}"]) == 0
    single = json.loads((out / "summary.json").read_text())
    assert cmp["variants"][1]["totals"] == single["totals"]
    assert cmp["variants"][1]["per_pass"] == single["per_pass"]


def _imgs(text: str) -> list[str]:
    """The img sources of a page, checked: embedded PNGs only, nothing from the network."""
    import base64
    import re

    assert "http://" not in text and "https://" not in text and "<script" not in text
    srcs = re.findall(r'<img src="([^"]*)"', text)
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    return srcs


def test_compare_html_self_contained(rounding_cmp: Path) -> None:
    text = (rounding_cmp / "compare.html").read_text()
    assert len(_imgs(text)) == 4  # cycles, energy by pass, energy by component, rounding cost
    assert text.count("<section") == text.count("</section>") == 5
    for sid in ("table", "cycles", "energy", "rounding_cost", "accuracy"):
        assert f'<section id="{sid}">' in text
    assert "no training in this run" in text


def test_accuracy_curves_per_variant_when_present(rounding_cmp: Path) -> None:
    cmp = copy.deepcopy(json.loads((rounding_cmp / "compare.json").read_text()))
    for i, v in enumerate(cmp["variants"]):
        v["accuracy"] = {"test": 0.5 + i / 10, "history": [
            {"epoch": 1, "loss": 2.0 - i / 10, "accuracy": 0.4},
            {"epoch": 2, "loss": 1.0, "accuracy": 0.5 + i / 10}]}
    text = compare_html(cmp)
    assert len(_imgs(text)) == 6
    assert "no training in this run" not in text
    assert "0.6000" in compare_md(cmp)


def test_algorithms_bit_widths_and_hw_keys(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    assert main(["compare", *BASE, "algo=laq,fb", "w_bits=4,8", "mac_array.rows=4,8",
                 f"out={out}", "--format", "json"]) == 0
    cmp = json.loads((out / "compare.json").read_text())
    assert [p.name for p in out.iterdir()] == ["compare.json"]
    v = {(e["values"]["algo"], e["values"]["w_bits"], e["values"]["mac_array.rows"]): e
         for e in cmp["variants"]}
    assert len(v) == 8
    for bits in ("4", "8"):
        for rows in ("4", "8"):
            # fb runs a trial step: exactly twice the GEMM MACs of laq
            assert v["fb", bits, rows]["totals"]["macs"] == 2 * v["laq", bits, rows]["totals"]["macs"]
    # 4-bit weights move fewer DRAM bytes than 8-bit ones
    assert v["laq", "4", "4"]["totals"]["dram_bytes"] < v["laq", "8", "4"]["totals"]["dram_bytes"]
    assert v["laq", "8", "8"]["totals"]["cycles"] != v["laq", "8", "4"]["totals"]["cycles"]


def test_bad_variant_exit_2_nothing_written(tmp_path: Path, capsys) -> None:
    for argv in (["compare", *BASE, "w_bits=4,x"], ["compare", *BASE, "mac_array.rows=4,-1"],
                 ["compare", *BASE, "rounding.g=floor,sideways"], ["compare", *BASE],
                 ["compare", *BASE, "w_bits=4,8", "format=json,pdf"]):
        out = tmp_path / "never"
        assert main([*argv, f"out={out}"]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fxpsim: error: ") and err.count("\n") == 1, err
        assert not out.exists() and list(tmp_path.iterdir()) == []
