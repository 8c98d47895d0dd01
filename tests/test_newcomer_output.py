"""Terminal output that fits, says the right thing, warns, and shows progress; the Numba
cache location and the compile notice."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from fxpsim.advice import (
    algorithm_warning,
    memory_size_warnings,
    overflow_warning,
    run_warnings,
)
from fxpsim.api import simulate_run
from fxpsim.numba_cache import CompileNotice, default_cache_dir, use_user_cache
from fxpsim.progress import PlainProgress, training_progress
from fxpsim.report.terminal import not_trained_reason, numerics_words, plural, print_run


def _printed(outcome, width: int) -> str:
    buf = io.StringIO()
    print_run(outcome, Console(file=buf, width=width, force_terminal=True, color_system=None))
    return buf.getvalue()


@pytest.mark.parametrize("width", [60, 80, 100])
def test_tables_fit_the_terminal_without_cutting_digits(width: int) -> None:
    o = simulate_run({"model": "vgg16", "steps": 0, "algo": "fb", "format": "json"},
                     progress=False)
    text = _printed(o, width)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    first = o.timing.records[0].layer
    layer_cycles = sum(r.metrics.cycles for r in o.timing.records if r.layer == first)
    assert f"{layer_cycles:,}" in text  # the layer's total (never dropped) survives whole
    if width <= 80:
        assert "left out to fit the terminal" in text


def test_wide_terminal_keeps_every_column() -> None:
    o = simulate_run({"hw": "tiny", "model": "lenet5", "steps": 0}, progress=False)
    text = _printed(o, 200)
    assert "left out" not in text and "bwd-wt" in text and "stall cycles" in text


def test_wording() -> None:
    assert plural(1, "epoch") == "1 epoch" and plural(2, "step") == "2 steps"
    o = simulate_run({"hw": "tiny", "model": "lenet5", "phase": "infer", "batch": 1},
                     progress=False)
    text = _printed(o, 200)
    assert "not trained (timing only: phase=infer)" in text
    assert "algo=" not in text.splitlines()[0]  # inference names no algorithm
    o = simulate_run({"hw": "tiny", "model": "lenet5", "steps": 0}, progress=False)
    assert "timing only: steps=0)" in _printed(o, 200)
    assert not_trained_reason(o.run.model_copy(update={"steps": None, "epochs": 0})) == \
        "epochs=0"
    run = o.run.model_copy(update={"w_bits": "float", "a_bits": "float", "g_bits": "float"})
    assert numerics_words(run) == "fp32 (float W/A/G)"
    assert numerics_words(o.run.model_copy(update={"g_bits": "float"})) == "W/A/G 8/8/float-bit"
    assert numerics_words(o.run) == "8/8/8-bit W/A/G"


def test_overflow_warning_threshold() -> None:
    assert overflow_warning(10, 10_000, "12-bit wrap") is None  # exactly 0.1%: no warning
    text = overflow_warning(11, 10_000, "12-bit wrap")
    assert text is not None and "0.11% of the GEMM output(s)" in text and "12-bit wrap" in text
    assert "50.3 events per GEMM output" in (overflow_warning(503, 10, "x") or "")
    assert overflow_warning(5, 0, "x") is None


def test_algorithm_warnings() -> None:
    assert "no BatchNorm" in (algorithm_warning("bnrect", ["conv2d", "relu"], 8, 8) or "")
    assert algorithm_warning("bnrect", ["conv2d", "batchnorm"], 8, 8) is None
    assert "g_bits=float" in (algorithm_warning("lbt", [], 8, "float") or "")
    assert "w_bits=float" in (algorithm_warning("laq", [], "float", 8) or "")
    assert algorithm_warning("sgd", [], "float", "float") is None


def test_memory_size_warning() -> None:
    mems = [{"name": "global_sram"}, {"name": "acc_sram"}]
    assert len(memory_size_warnings(["memory.global_sram.size_kib"], mems)) == 1
    assert memory_size_warnings(["memory.global_sram.size_kib",
                                 "memory.global_sram.read_energy_pj"], mems) == []
    assert "acc_sram" in memory_size_warnings(["memory[1].size_kib"], mems)[0]
    assert memory_size_warnings(["mac_array.rows"], mems) == []


def test_warnings_reach_summary_and_terminal(tmp_path: Path) -> None:
    o = simulate_run({"hw": "edge_npu", "model": "lenet5", "steps": 0, "algo": "laq", "w_bits": "float",
                      "memory.global_sram.size_kib": 512}, progress=False)
    ws = run_warnings(o)
    assert len(ws) == 2
    text = _printed(o, 200)
    assert text.count("warning:") == 2
    from fxpsim.report.summary import summary_dict

    assert summary_dict(o)["warnings"] == ws


def test_plain_progress_lines_with_eta() -> None:
    now = [0.0]
    buf = io.StringIO()
    p = PlainProgress(10, buf, every_s=5.0, clock=lambda: now[0])
    for i in range(10):
        now[0] = 2.0 * (i + 1)
        p.update(0, advance=1, loss=f"{1.0 / (i + 1):.3f}")
    p.stop()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "training: step 3/10 (30%), loss 0.333, elapsed 0:06, ETA 0:14"
    assert lines[-1].startswith("training: step 10/10 (100%)") and lines[-1].endswith("ETA 0:00")
    assert len(lines) == 4  # every 5 s and at the end, not every step


def test_progress_is_plain_when_not_a_terminal() -> None:
    assert isinstance(training_progress(True, 5, io.StringIO()), PlainProgress)
    assert training_progress(False, 5, io.StringIO()) is None


def test_user_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delenv("FXPSIM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "fxpsim" / "numba"
    monkeypatch.setenv("FXPSIM_CACHE_DIR", str(tmp_path / "own"))
    assert default_cache_dir() == tmp_path / "own" / "numba"
    import numba

    before = numba.config.CACHE_DIR
    try:
        assert use_user_cache() == tmp_path / "own" / "numba"
        assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "own" / "numba")
        assert numba.config.CACHE_DIR == str(tmp_path / "own" / "numba")
        monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
        assert use_user_cache() == tmp_path / "mine"  # the user's setting wins
    finally:
        numba.config.CACHE_DIR = before


class _Ev:
    def __init__(self, fn) -> None:
        self.data = {"dispatcher": type("D", (), {"py_func": fn})()}


def _kernel() -> None:
    pass


def test_compile_notice_speaks_only_after_the_threshold() -> None:
    now = [0.0]
    buf = io.StringIO()
    n = CompileNotice(stream=buf, after_s=1.0, clock=lambda: now[0])
    n.on_start(_Ev(_kernel))
    now[0] = 0.5
    n.on_end(_Ev(_kernel))  # a short compile: silent
    n.close()
    assert buf.getvalue() == "" and n.compiled == ["test_newcomer_output._kernel"]
    buf2 = io.StringIO()
    n2 = CompileNotice(stream=buf2, after_s=0.0)
    n2.on_start(_Ev(_kernel))
    assert n2._timer is not None
    n2._timer.join(5)
    n2.on_end(_Ev(_kernel))
    n2.close()
    text = buf2.getvalue()
    assert "compiling Numba kernels (test_newcomer_output._kernel" in text
    assert "compiled 1 Numba kernels" in text


def test_compile_notice_hears_real_numba_compiles() -> None:
    import numba

    @numba.njit
    def add_one(x):  # a fresh function: always a real compile
        return x + 1

    n = CompileNotice(stream=io.StringIO(), after_s=60.0).install()
    try:
        assert add_one(1) == 2
    finally:
        n.close()
    assert any(name.endswith("add_one") for name in n.compiled)


@pytest.mark.slow
def test_narrow_wrapping_accumulator_warns_end_to_end() -> None:
    import fxpsim

    r = fxpsim.run(hw="tiny", model="lenet5", batch=2, steps=1, eval_samples=10,
                   mac_array__accumulator__bits=12, mac_array__accumulator__overflow="wrap",
                   progress=False)
    assert any("accumulator overflow events in training" in w for w in r.warnings)
    ok = fxpsim.run(hw="tiny", model="lenet5", batch=2, steps=1, eval_samples=10,
                    progress=False)
    assert not any("accumulator" in w for w in ok.warnings)


def test_compare_table_fits_80_columns() -> None:
    from fxpsim.compare import run_compare
    from fxpsim.compare_report import print_compare

    cmp = run_compare({"hw": "tiny", "model": "lenet5", "batch": "2", "steps": "0",
                       "rounding.g": "half_even,stochastic"})
    buf = io.StringIO()
    print_compare(cmp, Console(file=buf, width=80, force_terminal=True, color_system=None))
    text = buf.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert f"{cmp['variants'][0]['totals']['cycles']:,}" in text
    assert "left out to fit the terminal" in text
