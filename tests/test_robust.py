"""Hostile input and faults, one regression test (or a few) per class of issue 12.

In-process through ``fxpsim.cli.main`` where that shows the behaviour; as a real process
(``python -m fxpsim``) for what only a process has: signals, a broken stdout, threads left
running and code that ignores the timeout. The hypothesis fuzz tests of the same classes
are in ``test_fuzz_cli.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fxpsim.cli import main

REPO = Path(__file__).resolve().parents[1]
BASE = ["hw=tiny", "model=lenet5", "phase=infer", "batch=1", "steps=0"]
FAST = [*BASE, "format=json"]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a failed command (no traceback, no second line)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("fxpsim: error: ") and err.count("\n") == 1, err
    return err.rstrip("\n")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


# ---- data loss -------------------------------------------------------------------------------
def test_foreign_folder_is_never_replaced(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "user_notes.txt").write_text("notes")
    (out / "sub" / "deep.txt").write_text("deep")
    before = tree(tmp_path)
    assert main(["run", *FAST, f"out={out}"]) == 2
    line = one_error(capsys)
    assert str(out) in line and "did not write" in line and "user_notes.txt" in line
    assert tree(tmp_path) == before


def test_report_file_names_plus_a_user_file_is_foreign(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", *FAST, f"out={out}"]) == 0
    (out / "keep.txt").write_text("mine")
    assert main(["run", *FAST, f"out={out}"]) == 2
    assert "keep.txt" in one_error(capsys)
    assert (out / "keep.txt").read_text() == "mine" and (out / "summary.json").is_file()


def test_own_folder_is_replaced_and_empty_folder_used(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", *BASE, "format=json,csv", f"out={out}"]) == 0
    assert main(["run", *FAST, f"out={out}"]) == 0  # format=json: layers.csv goes away
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", *FAST, f"out={empty}"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["empty", "run"]


def test_symlinked_out_keeps_the_link_and_leaves_no_junk(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    for _ in range(2):  # the second run replaces the report through the link
        assert main(["run", *FAST, f"out={link}"]) == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(os.listdir(tmp_path)) == ["link", "real"]
    assert sorted(os.listdir(real)) == ["summary.json"]


def test_dangling_link_and_file_targets(tmp_path: Path, capsys) -> None:
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    assert main(["run", *FAST, f"out={link}"]) == 2
    assert "does not exist" in one_error(capsys)
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["run", *FAST, f"out={afile}"]) == 2
    assert "not a folder" in one_error(capsys)
    assert afile.read_text() == "x" and sorted(os.listdir(tmp_path)) == ["dangling", "file"]


# ---- paths and names -------------------------------------------------------------------------
@pytest.mark.parametrize("arg, words", [
    ("out=.", "did not write"),
    ("out=/", "root folder"),
    ("name=/", "not a path"),
    ("name=..", "cannot start with '.'"),
    ("name=../escaped", "not a path"),
    ("name=" + "n" * 300, "at most 120 characters"),
    ("name=" + "n" * 20_000, "at most 120 characters"),
    ("hw=" + "h" * 10_000, "path too long"),
    ("hw=" + "h" * 100_000, "value too long"),
    ("out=" + "o" * 10_000, "path too long"),
    ("out=" + "o" * 100_000, "value too long"),
    ("model=" + "m" * 300 + ".yaml", "component is too long"),
    ("out=" + "/".join(["d" * 200] * 30), "path too long"),
    ("name=a\x01b", "control characters"),
])
def test_paths_and_names(arg: str, words: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "some_user_file").write_text("x")
    opts = dict(a.split("=", 1) for a in FAST)
    opts["hw"] = str(REPO / "hwconfigs" / "tiny.yaml")  # the test runs elsewhere
    key, value = arg.split("=", 1)
    opts[key] = value
    assert main(["run", *(f"{k}={v}" for k, v in opts.items())]) == 2
    line = one_error(capsys)
    assert words in line and len(line) < 1200, line
    assert sorted(os.listdir(tmp_path)) == ["some_user_file"]


def test_non_utf8_bytes_in_a_value(tmp_path: Path, capsys) -> None:
    bad = os.fsdecode(b"run\xff")
    assert main(["run", *FAST, f"name={bad}"]) == 2
    assert "not valid UTF-8 (byte 0xff)" in one_error(capsys)


def test_default_folder_name_from_odd_config_names(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    hw = (REPO / "hwconfigs" / "tiny.yaml").read_text().replace("name: tiny", "name: ../x/y",
                                                                 1)
    (tmp_path / "hw.yaml").write_text(hw)
    assert main(["run", *FAST[1:], "hw=hw.yaml"]) == 0
    (folder,) = (tmp_path / "reports").iterdir()
    assert folder.name.startswith("_x_y-lenet5") and sorted(os.listdir(tmp_path)) == [
        "hw.yaml", "reports"]


# ---- numeric extremes ------------------------------------------------------------------------
@pytest.mark.parametrize("override", [
    "dram.bandwidth_gb_s=1e-300", "dram.bandwidth_gb_s=5e-324", "dram.efficiency=1e-300",
    "clock.freq_mhz=5e-324", "mac_array.precision_modes[0].macs_per_pe_per_cycle=1e-300",
    "memory[0].size_kib=1e-300", "technology.node_nm=1e-300", "energy.requant_rne=1e300",
])
def test_extremes_are_out_of_range(override: str, tmp_path: Path, capsys) -> None:
    assert main(["run", *FAST, override, f"out={tmp_path / 'r'}"]) == 2
    line = one_error(capsys)
    assert override.split("=")[0] in line and re.search(r"expected a (non-negative )?number", line)
    assert not (tmp_path / "r").exists()


def test_range_corners_give_finite_reports(tmp_path: Path) -> None:
    corners = ["clock.freq_mhz=1e5", "dram.bandwidth_gb_s=1e-3", "dram.efficiency=1e-3",
               "dram.latency_ns=1e9", "mac_array.precision_modes[0].macs_per_pe_per_cycle="
               "0.0009765625"]
    out = tmp_path / "r"
    assert main(["run", *BASE, "format=json,csv,md,html,trace", *corners,
                 f"out={out}"]) == 0

    def refuse(token: str) -> None:
        raise AssertionError(f"non-finite {token} in the report")

    json.loads((out / "summary.json").read_text(), parse_constant=refuse)
    json.loads((out / "trace.json").read_text(), parse_constant=refuse)


def test_writer_refuses_nan_naming_the_key() -> None:
    from fxpsim.errors import FxpsimError
    from fxpsim.report import strict_json

    with pytest.raises(FxpsimError, match=r"summary.json: totals.seconds: .*non-finite"):
        strict_json.dumps({"totals": {"cycles": 1, "seconds": float("inf")}}, "summary.json")


# ---- encodings and sizes ---------------------------------------------------------------------
def test_huge_topology_field_and_capped_error_lines(tmp_path: Path, capsys) -> None:
    topo = tmp_path / "t.csv"
    topo.write_text("Layer, M, N, K\n" + "x" * 200_000 + ", 1, 2, 3\n")
    assert main(["run", f"model={topo}", "phase=infer", "format=json",
                 f"out={tmp_path / 'r'}"]) == 2
    line = one_error(capsys)
    assert str(topo) in line and "line 2" in line and "malformed CSV" in line
    topo.write_text("Layer, M, N, K\nG1, " + "7x" * 50_000 + ", 2, 3\n")
    assert main(["run", f"model={topo}", "phase=infer", "format=json"]) == 2
    line = one_error(capsys)
    assert "column 'M'" in line and len(line) < 1200
    assert main(["run", *FAST, "lr=" + "9" * 500_000]) == 2
    assert len(one_error(capsys)) < 1200


# ---- fxpsim report ---------------------------------------------------------------------------
def _with_timeout(fn, seconds: float = 60.0):  # type: ignore[no-untyped-def]
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "hung"
    return out[0]


def test_report_on_fifo_and_deep_json(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["run", *BASE, "format=json,csv", f"out={run}"]) == 0
    capsys.readouterr()
    deep = run / "summary.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["report", str(run)]) == 2
    assert "nested too deeply" in one_error(capsys)
    deep.unlink()
    os.mkfifo(deep)
    assert _with_timeout(lambda: main(["report", str(run)])) == 2
    assert "not a regular file" in one_error(capsys)
    (run / "summary.json").unlink()
    (run / "summary.json").mkdir()
    assert main(["report", str(run)]) == 2
    one_error(capsys)


# ---- user model files ------------------------------------------------------------------------
NET = '''
import torch.nn as nn
class Net(nn.Module):
    input_shape = INPUT
    def __init__(self):
        super().__init__()
        self.body = BODY
        self.flat = nn.Flatten()
        self.fc = nn.Linear(FEATURES, 10)
    def forward(self, x):
        return self.fc(self.flat(self.body(x)))
'''


def net(prefix: str = "", body: str = "nn.ReLU()", shape: str = "(1, 8, 8)",
        features: int = 64) -> str:
    return prefix + "\n" + NET.replace("BODY", body).replace("INPUT", shape).replace(
        "FEATURES", str(features))


@pytest.mark.parametrize("text, words", [
    (net("raise SystemExit(0)"), "importing m.py failed: called sys.exit(0)"),
    (net("raise SystemExit(3)"), "called sys.exit(3)"),
    (net("import sys; sys.exit('msg')"), "called sys.exit('msg')"),
    (net("raise KeyboardInterrupt"), "importing m.py raised KeyboardInterrupt"),
    (net("raise GeneratorExit"), "importing m.py failed: GeneratorExit"),
    (net("raise BaseException('boom')"), "BaseException: boom"),
    (net("import os; x = 1 / 0"), "ZeroDivisionError"),
    (net(body="nn.Conv1d(1, 1, 3)"), "at node 'body' (Conv1d body) failed: RuntimeError"),
    (net(body="nn.LSTM(8, 8)"), "at node 'body' (LSTM body) failed: ValueError"),
    (net(shape="(0, 8, 8)"), "input_shape: expected (C, H, W) or (F,) of positive integers, "
     "got (0, 8, 8)"),
    (net().replace("super().__init__()", "super().__init__(); raise SystemExit(1)"),
     "Net() failed: called sys.exit(1)"),
])
def test_user_model_file_errors(text: str, words: str, tmp_path: Path, capsys) -> None:
    (tmp_path / "m.py").write_text(text)
    assert main(["run", f"model={tmp_path / 'm.py'}:Net", "hw=tiny", "phase=infer",
                 "format=json", f"out={tmp_path / 'r'}"]) == 2
    line = one_error(capsys)
    assert "m.py:Net" in line and words in line, line
    assert "ShapeProp" not in line and not (tmp_path / "r").exists()


def test_user_code_timeout_in_process(tmp_path: Path, capsys) -> None:
    (tmp_path / "m.py").write_text(net("import time\ntime.sleep(60)"))
    t0 = time.monotonic()
    assert main(["run", f"model={tmp_path / 'm.py'}:Net", "hw=tiny", "phase=infer",
                 "model_timeout=1", "format=json"]) == 2
    assert time.monotonic() - t0 < 30
    assert "importing m.py did not finish within 1 s" in one_error(capsys)


# ---- processes: threads, hangs, stdout, signals ----------------------------------------------
def fxpsim(*args: str, cwd: Path, timeout: float = 120, **kw):  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "fxpsim", *args], cwd=cwd, timeout=timeout,
                          capture_output=kw.pop("capture_output", True), text=True, **kw)


def test_thread_left_running_and_code_ignoring_the_timeout(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(net(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(600,)).start()"))
    done = fxpsim("run", f"model={tmp_path / 't.py'}:Net", "hw=tiny", "phase=infer",
                  "format=json", "out=r", cwd=tmp_path)
    assert done.returncode == 0 and (tmp_path / "r" / "summary.json").is_file(), done.stderr
    (tmp_path / "h.py").write_text(net(
        "import time\nwhile True:\n    try:\n        time.sleep(100)\n"
        "    except BaseException:\n        pass"))
    t0 = time.monotonic()
    done = fxpsim("run", f"model={tmp_path / 'h.py'}:Net", "hw=tiny", "phase=infer",
                  "model_timeout=1", "format=json", "out=h", cwd=tmp_path)
    assert time.monotonic() - t0 < 60
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "did not finish within 1 s" in done.stderr and not (tmp_path / "h").exists()


def test_stdout_full_or_closed_still_writes_the_report(tmp_path: Path) -> None:
    args = ["run", *FAST]
    with open("/dev/full", "w") as full:
        done = fxpsim(*args, "out=full", cwd=tmp_path, stdout=full, capture_output=False,
                      stderr=subprocess.PIPE)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert (tmp_path / "full" / "summary.json").is_file()
    proc = subprocess.Popen([sys.executable, "-m", "fxpsim", *args, "out=pipe"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `fxpsim run ... | head -0`
    err = proc.stderr.read()
    assert proc.wait(120) == 0 and "Traceback" not in err and err == "", err
    assert (tmp_path / "pipe" / "summary.json").is_file()


SIGNAL_CASES = [(signal.SIGINT, 0.2), (signal.SIGTERM, 1.5), (signal.SIGHUP, 3.0),
                (signal.SIGINT, 4.5), (signal.SIGTERM, 6.0)]


@pytest.mark.parametrize("sig, delay", SIGNAL_CASES)
def test_signal_at_any_moment(sig: signal.Signals, delay: float, tmp_path: Path) -> None:
    """A full run with every report (matplotlib included), hit by a signal at some moment:
    either it finished (0), or it says so in one line and exits 128+N; the folder is
    complete or absent, with nothing left next to it."""
    proc = subprocess.Popen([sys.executable, "-m", "fxpsim", "run", "hw=edge_npu",
                             "model=vgg16", "phase=infer", "out=run"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err and err.count("\n") <= 1, err
    assert proc.returncode in (0, 128 + sig), (proc.returncode, err)
    left = sorted(os.listdir(tmp_path))
    if proc.returncode == 0 or "after the report was written" in err:
        assert left == ["run"] and len(os.listdir(tmp_path / "run")) == 5
    else:
        assert left == [] and err.startswith("fxpsim: interrupted"), (left, err)


# ---- errors that blame the right thing, empty values, big configs ----------------------------
def test_missing_price_names_the_bits_option(capsys) -> None:
    assert main(["run", *FAST, "a_bits=16"]) == 2
    line = one_error(capsys)
    assert "tiny.yaml: energy.cmp.int16" in line and "a_bits=16 (command line)" in line


def test_topology_with_training_names_model_and_phase(tmp_path: Path, capsys) -> None:
    topo = tmp_path / "topo.csv"
    topo.write_text("Layer, M, N, K\nG1, 4, 4, 4\n")
    assert main(["run", f"model={topo}", "steps=1", f"out={tmp_path / 'r'}"]) == 2
    line = one_error(capsys)
    assert f"model={topo}" in line and "command line: phase" in line and "steps=0" in line


@pytest.mark.parametrize("key", ["epochs", "steps", "batch", "name", "out", "hw", "model",
                                 "lr", "mac_array.rows", "format"])
def test_empty_values_name_the_key(key: str, capsys) -> None:
    assert main(["run", f"{key}="]) == 2
    assert f"command line: {key}: empty value" in one_error(capsys)


def test_big_array_fits_or_the_schema_says_what_fits(tmp_path: Path, capsys) -> None:
    big = ["hw=edge_npu", "model=vgg16", "phase=infer", "format=json", "mac_array.rows=4096",
           "mac_array.cols=4096"]
    assert main(["run", *big, f"out={tmp_path / 'a'}"]) == 2
    line = one_error(capsys)
    assert "memory[1].size_kib" in line and "4096x4096" in line and "32 KiB" in line
    assert main(["run", *big, "memory.acc_sram.size_kib=32", f"out={tmp_path / 'b'}"]) == 0


# ---- scale (structure only: speed is measured by `fxpsim bench schedule`) --------------------
def test_big_topology_terminal_and_charts_are_bounded(tmp_path: Path, capsys) -> None:
    topo = tmp_path / "topo.csv"
    topo.write_text("Layer, M, N, K\n" + "".join(f"G{i}, {4 + i % 7}, 8, 8\n"
                                                 for i in range(300)))
    out = tmp_path / "r"
    assert main(["run", f"model={topo}", "phase=infer", "format=json,csv,html",
                 f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert sum(line.startswith("│ G") for line in printed.splitlines()) == 60
    assert "the 60 of 300 layers with the most cycles" in " ".join(printed.split())
    html = (out / "report.html").read_text()
    assert "showing the 64 of 300 layers with the most cycles" in html
    assert all(f"<td>G{i}</td>" in html for i in range(300))  # the tables keep every layer


def test_fast_trace_writer_equals_the_generic_encoding() -> None:
    """The direct trace.json writer is exactly json.dumps of trace_events (its oracle), on
    overlapping events, odd names and several tracks."""
    import random

    from fxpsim.report.perfetto import trace_events, trace_json
    from fxpsim.timing.trace import TraceEvent

    rng = random.Random(7)
    names = ["conv1", 'q"uote', "ünï\\code", "a\nb", "x" * 50]
    events = []
    for _ in range(400):
        s = rng.randrange(0, 10_000)
        events.append(TraceEvent(rng.choice(["dma", "mac_array", "requantizer", "vector_unit",
                                             "extra"]), rng.choice(names), s,
                                 s + rng.randrange(0, 500), rng.choice(names),
                                 rng.choice(["forward", "backward_data"])))
    for freq in (800.0, 1e-3, 1e5, 333.3):
        doc = {"traceEvents": trace_events(events, freq, "t"), "displayTimeUnit": "ns",
               "otherData": {"schema": "fxpsim.trace/1", "run": "r", "freq_mhz": freq,
                             "time_unit": "ts/dur in microseconds = cycles / freq_mhz"}}
        want = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
        assert trace_json(events, freq, run_name="r", title="t") == want
