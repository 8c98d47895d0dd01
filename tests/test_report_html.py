"""``report.html`` (self-contained, interactive inline-SVG charts), ``fxpsim report``
re-rendering, and deterministic report bytes (same seed; NUMBA_NUM_THREADS=1 vs 2).

The HTML is checked structurally with ``html.parser``: tags balance, every chart is an
inline ``<svg>`` that parses as XML and carries hover ``<title>`` tooltips, scripts are
inline, nothing refers to the network, and every plot section exists. When ``chromium`` is on PATH a test also renders the page headless and
checks that the screenshot is not blank (skipped otherwise).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fxpsim.cli import main
from fxpsim.report.html import SECTIONS, report_html
from fxpsim.report.rerender import parse_layers_csv, report_md

REPO = Path(__file__).resolve().parents[1]
ARGS = ["hw=tiny", "model=lenet5", "phase=train", "batch=2", "steps=0"]
VOID = {"meta", "img", "br", "hr", "link", "input"}
PNG = b"\x89PNG\r\n\x1a\n"


class _Check(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.imgs: list[dict[str, str | None]] = []
        self.svgs = 0
        self.scripts: list[dict[str, str | None]] = []
        self.ids: list[str] = []
        self.tags: set[str] = set()
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if a.get("id"):
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a)
        if tag == "svg":
            self.svgs += 1
        if tag == "script":
            self.scripts.append(a)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def check_self_contained(text: str) -> _Check:
    """Parse; assert balanced tags, inline SVG charts that are well-formed XML with
    tooltips, inline scripts only, no images or other files, no network references."""
    assert text.startswith("<!DOCTYPE html>")
    p = _Check()
    p.feed(text)
    p.close()
    assert not p.errors and not p.stack, (p.errors, p.stack)
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert not {"link", "iframe", "object", "embed", "img"} & p.tags
    assert all(not s.get("src") for s in p.scripts)
    for svg in re.findall(r"<svg .*?</svg>", text, flags=re.S):
        root = ET.fromstring(svg)  # well-formed
        marks = [e for e in root.iter() if e.get("class") == "d"]
        assert marks and all(m.find("title") is not None
                             for m in marks), "every bar/point/line has a hover tooltip"
    return p


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        assert main(["run", *ARGS, f"out={out}"]) == 0
    return out


def _load(folder: Path) -> tuple[dict, list[dict[str, str]]]:
    return (json.loads((folder / "summary.json").read_text()),
            parse_layers_csv((folder / "layers.csv").read_text()))


def test_default_run_writes_html_and_trace(run_folder: Path) -> None:
    assert sorted(p.name for p in run_folder.iterdir()) == [
        "layers.csv", "report.html", "report.md", "summary.json", "trace.json"]


def test_html_is_self_contained_with_every_section(run_folder: Path) -> None:
    text = (run_folder / "report.html").read_text()
    p = check_self_contained(text)
    assert [k for k, _ in SECTIONS] == [i for i in p.ids if i in dict(SECTIONS)]
    # cycles, 2 energy, DRAM by tensor, roofline, utilization, stalls: 7 charts without training
    assert p.svgs == 7
    assert text.count("no training in this run") == 3  # accuracy, metrics, overflow
    s, _ = _load(run_folder)
    assert f"{s['totals']['cycles']:,}" in text  # the exact cycle total is shown


def test_training_sections_appear_when_summary_has_them(run_folder: Path) -> None:
    s, rows = _load(run_folder)
    s = copy.deepcopy(s)
    s["accuracy"] = {"test": 0.91, "train": 0.95, "history": [
        {"epoch": 1, "loss": 1.2, "accuracy": 0.6, "test_accuracy": 0.55},
        {"epoch": 2, "loss": 0.7, "accuracy": 0.8, "test_accuracy": 0.75}]}
    s["training"] = {"layers": [{"layer": "conv1", "overflow": 3, "saturated": 12},
                                {"layer": "fc1", "overflow": 0, "saturated": 7}]}
    text = report_html(s, rows)
    p = check_self_contained(text)
    assert p.svgs == 7 + 3  # accuracy curve, loss curve, overflow bars
    assert "no training in this run" not in text
    assert "0.9100" in text and "saturated" in text
    md = report_md(s, rows)
    assert "## Accuracy" in md and "| test | 0.9100 |" in md


def test_report_command_rerenders_identical_bytes(run_folder: Path, tmp_path: Path,
                                                  capsys) -> None:
    copy_dir = tmp_path / "copy"
    shutil.copytree(run_folder, copy_dir)
    before = {p.name: p.read_bytes() for p in copy_dir.iterdir()}
    (copy_dir / "report.html").unlink()
    (copy_dir / "report.md").write_text("stale")
    assert main(["report", str(copy_dir)]) == 0
    after = {p.name: p.read_bytes() for p in copy_dir.iterdir()}
    assert after == before
    capsys.readouterr()
    assert main(["report", str(copy_dir), "--format", "md"]) == 0
    assert {p.name: p.read_bytes() for p in copy_dir.iterdir()} == before


def test_report_command_bad_folders(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text("{not json")
    (tmp_path / "bad" / "layers.csv").write_text("layer\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "summary.json").write_text('{"schema": "x"}')
    (tmp_path / "other" / "layers.csv").write_text("layer\n")
    for argv in (["report", str(tmp_path / "nope")], ["report", str(tmp_path / "empty")],
                 ["report", str(tmp_path / "bad")], ["report", str(tmp_path / "other")],
                 ["report", str(tmp_path / "empty"), "format=pdf"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fxpsim: error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == ["layers.csv",
                                                                   "summary.json"]


def test_same_seed_byte_identical_reports(run_folder: Path, tmp_path: Path,
                                          monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "again"
    assert main(["run", *ARGS, f"out={out}"]) == 0
    for name in ("summary.json", "layers.csv", "report.md", "report.html", "trace.json"):
        a = (run_folder / name).read_text().replace(str(run_folder), "OUT")
        b = (out / name).read_text().replace(str(out), "OUT")
        assert a == b, name


def test_numba_thread_count_does_not_change_results(tmp_path: Path) -> None:
    """Same seed under NUMBA_NUM_THREADS=1 and =2 (separate processes) -> the same
    summary.json and layers.csv bytes. Uses a training run so that, once the accuracy plane
    is wired into ``fxpsim run``, its Numba kernels are covered too."""
    outs = []
    for threads in ("1", "2"):
        cwd = tmp_path / f"t{threads}"
        cwd.mkdir()
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        argv = [sys.executable, "-m", "fxpsim", "run", f"hw={REPO / 'hwconfigs' / 'tiny.yaml'}",
                f"model={REPO / 'models' / 'lenet5.yaml'}", "phase=train", "batch=2",
                "steps=2", "seed=7", "out=rep", "format=json,csv"]
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        outs.append(cwd / "rep")
    for name in ("summary.json", "layers.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_renders_in_headless_chromium(run_folder: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    argv = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}", "--window-size=1280,2400",
            (run_folder / "report.html").as_uri()]
    subprocess.run(argv, capture_output=True, timeout=120, check=False)
    assert shot.is_file() and shot.read_bytes().startswith(PNG)
    from PIL import Image

    with Image.open(shot) as im:
        colors = im.convert("L").getcolors(maxcolors=1 << 16)
    assert colors is None or len(colors) > 50  # text and plots, not a blank page
