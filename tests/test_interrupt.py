"""Ctrl-C during a run, a comparison or a re-render leaves no half-written report.

``KeyboardInterrupt`` is raised from inside report writing (a renderer, or the final
rename of the temporary folder); the CLI must say no report was written, return 130 and
leave neither the report folder nor a temporary folder; an older report at the same place
stays as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fxpsim.cli import main

REPO = Path(__file__).resolve().parents[1]
ARGS = ["hw=tiny", "model=lenet5", "phase=infer", "batch=1", "steps=0"]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _ctrl_c(*_args, **_kwargs):
    raise KeyboardInterrupt


def _assert_interrupted(capsys, parent: Path, before: set[str]) -> None:
    err = capsys.readouterr().err
    assert err == "fxpsim: interrupted; no report was written\n"
    assert set(os.listdir(parent)) == before  # no report, no .tmp- or .old- folder


def test_interrupt_while_rendering_html(tmp_path: Path, monkeypatch, capsys) -> None:
    import fxpsim.report.html as html

    monkeypatch.setattr(html, "report_html", _ctrl_c)
    assert main(["run", *ARGS, f"out={tmp_path / 'run'}"]) == 130
    _assert_interrupted(capsys, tmp_path, set())


def test_interrupt_at_final_rename_keeps_the_old_report(tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", *ARGS, "format=json", f"out={out}"]) == 0
    old = (out / "summary.json").read_bytes()
    capsys.readouterr()
    import fxpsim.report.write as write

    real_replace = os.replace

    def replace(src, dst):
        if Path(src).name.startswith(".run.tmp-"):  # complete temporary folder: stop here
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(write.os, "replace", replace)
    assert main(["run", *ARGS, f"out={out}"]) == 130
    _assert_interrupted(capsys, tmp_path, {"run"})
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    assert (out / "summary.json").read_bytes() == old


def test_interrupt_during_compare(tmp_path: Path, monkeypatch, capsys) -> None:
    import fxpsim.compare_report as cr

    monkeypatch.setattr(cr, "compare_html", _ctrl_c)
    assert main(["compare", *ARGS, "w_bits=4,8", f"out={tmp_path / 'cmp'}"]) == 130
    _assert_interrupted(capsys, tmp_path, set())


def test_interrupt_during_rerender_keeps_files(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", *ARGS, "format=json,csv,md", f"out={out}"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    import fxpsim.report.html as html

    monkeypatch.setattr(html, "report_html", _ctrl_c)
    assert main(["report", str(out)]) == 130
    _assert_interrupted(capsys, tmp_path, {"run"})
    # every document is rendered before any file is replaced: nothing changed
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
