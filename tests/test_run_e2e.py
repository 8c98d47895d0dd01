"""End to end: ``fxpsim run`` resolves inputs, simulates, prints and writes the report folder.

The golden file pins the whole timing result of a small training step on the tiny config
(every cycle count and byte is an integer, asserted exactly); regenerate it deliberately with
``FXPSIM_REGEN_GOLDEN=1 pytest tests/test_run_e2e.py`` after an intended model change.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fxpsim.cli import main

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "tiny_lenet5_train_b2.json"  # one op at a time
GOLDEN_OVERLAP = REPO / "tests" / "golden" / "tiny_lenet5_train_b2_overlap.json"
ARGS = ["hw=tiny", "model=lenet5", "phase=train", "batch=2", "steps=0"]


@pytest.fixture()
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)
    return REPO


def _run(tmp: Path, *extra: str) -> Path:
    out = tmp / "run"
    assert main(["run", *ARGS, *extra, f"out={out}"]) == 0
    return out


def _pinned(summary: dict) -> dict:
    """The parts of summary.json that do not depend on versions or the output path."""
    keep = {k: summary[k] for k in ("totals", "per_pass", "model", "hw", "config", "schema")}
    keep["run"] = {k: v for k, v in summary["run"].items() if k != "out"}
    return keep


def _before_overlap(pinned: dict) -> dict:
    """A pinned summary without what the overlapped schedule added (the ``schedule`` run
    option, the per-total ``overlap_saved_cycles``): what runs wrote before it."""
    out = json.loads(json.dumps(pinned))
    out["run"].pop("schedule", None)
    for m in (out["totals"], *out["per_pass"].values()):
        m.pop("overlap_saved_cycles", None)
    return out


def test_golden_summary_sequential_is_unchanged(in_repo: Path, tmp_path: Path) -> None:
    """``schedule=sequential`` reproduces the one-op-at-a-time results exactly."""
    summary = json.loads((_run(tmp_path, "schedule=sequential") / "summary.json").read_text())
    assert _before_overlap(_pinned(summary)) == json.loads(GOLDEN.read_text())


def test_golden_summary(in_repo: Path, tmp_path: Path) -> None:
    summary = json.loads((_run(tmp_path) / "summary.json").read_text())
    got = _pinned(summary)
    if os.environ.get("FXPSIM_REGEN_GOLDEN"):
        GOLDEN_OVERLAP.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == json.loads(GOLDEN_OVERLAP.read_text())
    seq = json.loads(GOLDEN.read_text())
    assert got["totals"]["cycles"] + got["totals"]["overlap_saved_cycles"] == \
        seq["totals"]["cycles"]


def test_summary_contract_and_csv_columns(in_repo: Path, tmp_path: Path) -> None:
    out = _run(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == [
        "layers.csv", "report.html", "report.md", "summary.json", "trace.json"]
    s = json.loads((out / "summary.json").read_text())
    for key in ("cycles", "energy_pj", "macs", "dram_bytes"):
        assert key in s["totals"]
    for p in ("forward", "backward_data", "backward_weight", "grad_quant", "update"):
        assert set(s["per_pass"][p]) == set(s["totals"])
    # totals are the sum of the passes (cycles are integers: exact)
    assert s["totals"]["cycles"] == sum(v["cycles"] for v in s["per_pass"].values())
    assert s["totals"]["macs"] == sum(v["macs"] for v in s["per_pass"].values())
    rows = list(csv.DictReader((out / "layers.csv").open()))
    for col in ("layer", "pass", "cycles", "stall_cycles", "macs", "energy_pj", "utilization"):
        assert col in rows[0]
    assert sum(int(r["cycles"]) for r in rows) == s["totals"]["cycles"]
    # 2 conv + 3 fc layers: forward MACs of batch 2
    fwd = sum(int(r["macs"]) for r in rows if r["pass"] == "forward")
    assert fwd == 2 * s["model"]["macs_per_sample"]
    md = (out / "report.md").read_text()
    assert "## Per pass" in md
    sc = s["schedule"]
    assert sc["mode"] == "overlap" and sc["cycles"] == s["totals"]["cycles"]
    assert sc["sequential_cycles"] - sc["cycles"] == s["totals"]["overlap_saved_cycles"] > 0
    assert f"Schedule `overlap`: {sc['cycles']:,} cycles" in md
    assert sum(int(r["overlap_cycles"]) for r in rows) == s["totals"]["overlap_saved_cycles"]


def test_reruns_are_byte_identical(in_repo: Path, tmp_path: Path) -> None:
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b")
    for name in ("summary.json", "layers.csv", "report.md"):
        ta = (a / name).read_text().replace(str(a), "OUT")
        tb = (b / name).read_text().replace(str(b), "OUT")
        assert ta == tb, name


def test_fb_adds_its_passes_and_doubles_gemm_work(in_repo: Path, tmp_path: Path) -> None:
    sgd = json.loads((_run(tmp_path / "s", "algo=laq") / "summary.json").read_text())
    fb = json.loads((_run(tmp_path / "f", "algo=fb") / "summary.json").read_text())
    assert fb["totals"]["macs"] == 2 * sgd["totals"]["macs"]
    assert {"fb_trial_forward", "fb_blend"} <= set(fb["per_pass"])


def test_bad_input_exit_2_one_line_no_report(in_repo: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "never"
    cases = [
        ["run", "hw=tiny", "model=lenet5", "mac_array.rows=0", f"out={out}"],
        ["run", "hw=nosuch", f"out={out}"],
        ["run", "hw=tiny", "model=nosuch", f"out={out}"],
        ["run", "hw=tiny", "batch=x", f"out={out}"],
        ["run", "hw=tiny", "frobnicate=1", f"out={out}"],
        ["run", "hw=tiny", "rounding.g=sideways", f"out={out}"],
        ["run", "hw=tiny", "notkeyvalue"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fxpsim: error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
        assert not out.exists()


def test_help_and_timing_run_do_not_import_torch_or_numba(in_repo: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from fxpsim.cli import main\n"
        f"main(['run', 'hw=tiny', 'model=resnet20', 'phase=infer', 'out={tmp_path / 'r'}'])\n"
        "bad = [m for m in ('torch', 'numba') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-m", "fxpsim", "--help"], check=True, capture_output=True, text=True
    )
    assert "fxpsim run" in done.stdout
