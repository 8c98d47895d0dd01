"""The README's Python blocks and examples/quickstart.py run as written (a user copies them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_blocks() -> None:
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index: int, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # blocks may write reports/: keep them out of the repo
    code = python_blocks()[index]
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})


@pytest.mark.slow
def test_quickstart_example_runs(tmp_path: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart.py"),
                           str(tmp_path / "out")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test accuracy after 4 steps" in proc.stdout
    assert (tmp_path / "out" / "rounding_energy.png").stat().st_size > 1000
    assert (tmp_path / "out" / "lenet5-infer" / "report.html").is_file()
    assert "sweep: 3/3 points" in proc.stdout  # compare shows variant i/N


def test_ci_runs_the_readme_commands_literally() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_commands",
                                                  REPO / ".ci" / "readme_commands.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cmds = mod.commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert cmds["main"].endswith("pip install . && fxpsim run hw=edge_npu.yaml model=vgg16")
    assert cmds["test"].endswith("pip install -e '.[test]' && pytest")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    # main job, tests, then the main job again, in one scratch clone
    assert ci.index('"$main_cmd"') < ci.index('"$test_cmd"') < ci.rindex('"$main_cmd"')
    assert "git clone" in ci
