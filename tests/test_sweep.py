"""``fxpsim sweep``: specs and their one-line errors, the Pareto front, and real sweeps on a
local Dask cluster (timing-only points on the tiny config, so each takes a fraction of a
second): store, resume, bad points, a dying worker, Optuna search, reports, notebook API."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pandas as pd
import pytest

import fxpsim
from fxpsim.cli import main
from fxpsim.config.area import area_of
from fxpsim.config.load import load_hwconfig
from fxpsim.errors import ConfigError
from fxpsim.sweeps.pareto import front
from fxpsim.sweeps.run import Execution, run_sweep
from fxpsim.sweeps.spec import grid_points, load_sweep_yaml, spec_from_cli

REPO = Path(__file__).resolve().parents[1]
BASE = {"hw": "tiny", "model": "lenet5", "batch": "2", "steps": "0"}


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _yaml(tmp: Path, text: str) -> str:
    p = tmp / "s.yaml"
    p.write_text(text)
    return str(p)


# ---- spec ---------------------------------------------------------------------------------


def test_cli_axes_grid_and_digest() -> None:
    spec = spec_from_cli({**BASE, "w_bits": "4,8", "mac_array.rows": "4,8,16", "workers": "2"})
    assert [(a.key, a.values) for a in spec.axes] == [("w_bits", ("4", "8")),
                                                     ("mac_array.rows", ("4", "8", "16"))]
    pts = grid_points(spec)
    assert [p.label for p in pts][:2] == ["w_bits=4 mac_array.rows=4", "w_bits=4 mac_array.rows=8"]
    assert len({p.digest for p in pts}) == 6
    # the digest is of the resolved config: a synonym and a no-op override give the same one
    a = spec_from_cli({**BASE, "rounding.g": "rne,half_even"})
    p1, p2 = grid_points(a)
    assert p1.digest == p2.digest
    b = spec_from_cli({**BASE, "mac_array.rows": "4,8"})
    assert grid_points(b)[0].digest == grid_points(spec_from_cli({**BASE, "w_bits": "8,4"}))[0].digest


@pytest.mark.parametrize("text, where", [
    ("axes: {w_bitz: [4, 8]}\n", "s.yaml: axes.w_bitz: unknown option"),
    ("axes: {w_bits: []}\n", "s.yaml: axes.w_bits: axis has no values"),
    ("axes: {w_bits: [4, 8]}\nconstraints: [area_cm2<=2]\n",
     "s.yaml: constraints[0]: unknown metric 'area_cm2'"),
    ("axes: {w_bits: [4, 8]}\nconstraints: [area_mm2~2]\n", "s.yaml: constraints[0]: expected"),
    ("axes: {w_bits: [4, 8]}\nobjectives: {energy_pj: lowest}\n",
     "s.yaml: objectives.energy_pj: expected min or max"),
    ("axes: {w_bits: [4, 8]}\nmode: exhaustive\n", "s.yaml: mode: expected one of"),
    ("axes: {w_bits: [4, 8]}\nmode: search\n", "s.yaml: n_trials: required with mode search"),
    ("axes: {w_bits: [4, 8]}\ncolour: red\n", "s.yaml: colour: unknown key"),
    ("fixed: {bacth: 2}\naxes: {w_bits: [4, 8]}\n", "s.yaml: fixed.bacth: unknown option"),
    ("axes: {w_bits: [4, 4]}\n", "s.yaml: axes.w_bits: repeated value"),
    ("fixed: {w_bits: 4}\naxes: {w_bits: [4, 8]}\n", "s.yaml: w_bits: given both"),
])
def test_sweep_yaml_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture,
                                  text: str, where: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(ConfigError):
        load_sweep_yaml(path)
    out = tmp_path / "never"
    assert main(["sweep", f"sweep={path}", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and where in err, err
    assert err.startswith(f"fxpsim: error: {tmp_path}/")
    assert not out.exists()


@pytest.mark.parametrize("argv, text", [
    (["w_bits=4,,8"], "w_bits: empty value"),
    (["w_bits=4,8", "constraints=speed<=3"], "constraints: unknown metric 'speed'"),
    (["w_bits=4,8", "workers=0"], "workers: expected an integer"),
    (["hw=tiny"], "a sweep needs at least one axis"),
    (["w_bits=4,8", "bogus.key=1,2"], "bogus.key: unknown option"),
])
def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str],
                           text: str) -> None:
    out = tmp_path / "never"
    assert main(["sweep", *argv, f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fxpsim: error: command line: ") and text in err and err.count("\n") == 1
    assert not out.exists()


def test_unreachable_scheduler_fails_fast(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as s:  # a free loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    assert main(["sweep", *[f"{k}={v}" for k, v in BASE.items()], "w_bits=4,8",
                 f"scheduler=tcp://127.0.0.1:{port}", f"out={tmp_path / 'x'}"]) == 2
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert f"scheduler: cannot reach tcp://127.0.0.1:{port}" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


# ---- Pareto -------------------------------------------------------------------------------


def test_front_by_hand() -> None:
    pts = [(1, 5), (2, 2), (5, 1), (3, 3), (2, 2), (6, 6)]
    assert front(pts) == [True, True, True, False, True, False]
    assert front([]) == []


# ---- real sweeps on a local cluster -------------------------------------------------------


def test_grid_store_resume_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sw"
    argv = ["sweep", *[f"{k}={v}" for k, v in BASE.items()], "w_bits=4,8",
            "mac_array.rows=4,8", "workers=2", f"out={out}"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Pareto set" in printed and "4/4 points" in printed
    df = pd.read_parquet(out / "results.parquet")
    assert list(df["status"]) == ["ok"] * 4 and df["pareto"].any()
    # each row equals a separate `fxpsim run` of the same options (exact cycles)
    row = df[(df["w_bits"] == "8") & (df["mac_array.rows"] == "8")].iloc[0]
    assert main(["run", *[f"{k}={v}" for k, v in BASE.items()], "mac_array.rows=8",
                 "format=json", f"out={tmp_path / 'single'}"]) == 0
    single = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert int(row["cycles"]) == single["totals"]["cycles"]
    assert row["energy_pj"] == pytest.approx(single["totals"]["energy_pj"])
    assert row["area_mm2"] == pytest.approx(
        area_of(load_hwconfig("tiny", {"mac_array.rows": "8"}).config).total_mm2)
    assert int(row["pass.forward.cycles"]) == single["per_pass"]["forward"]["cycles"]
    run_dir = Path(row["run_dir"])
    assert run_dir.parent == (out / "runs").resolve()
    assert {"summary.json", "layers.csv", "report.md"} <= {p.name for p in run_dir.iterdir()}
    html = (out / "sweep.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert 'alt="cycles vs area"' in html and 'alt="energy heatmap"' in html
    assert "http://" not in html and "https://" not in html and "sortable" in html
    csv_rows = (out / "sweep.csv").read_text().splitlines()
    assert len(csv_rows) == 5
    # rerun: everything is in the store, nothing is evaluated again
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "points").iterdir()}
    assert main(argv) == 0
    assert "4 from an earlier run" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "points").iterdir()} == mtimes
    # a wider grid evaluates only the new points
    seen: list[str] = []
    spec = spec_from_cli({**BASE, "w_bits": "4,8", "mac_array.rows": "4,8,16"})
    df2 = run_sweep(spec, Execution(out=out, workers=1, quiet=True),
                    on_row=lambda r: seen.append(r["label"]))
    assert sorted(seen) == ["w_bits=4 mac_array.rows=16", "w_bits=8 mac_array.rows=16"]
    assert len(df2) == 6


def test_bad_point_and_dead_worker_do_not_stop_the_sweep(tmp_path: Path) -> None:
    killer = tmp_path / "killer.py"
    killer.write_text("import os\nos._exit(3)  # the worker process dies while loading\n"
                      "class Net: pass\n")
    spec = spec_from_cli({**BASE, "model": f"lenet5,{killer}:Net", "w_bits": "4,x"})
    df = run_sweep(spec, Execution(out=tmp_path / "sw", workers=2, quiet=True))
    status = dict(zip(df["label"], df["status"], strict=True))
    err = dict(zip(df["label"], df["error"], strict=True))
    assert status["model=lenet5 w_bits=4"] == "ok"
    assert status["model=lenet5 w_bits=x"] == "failed"
    assert "w_bits: expected an integer" in err["model=lenet5 w_bits=x"]
    assert status[f"model={killer}:Net w_bits=4"] == "failed"
    assert "worker died twice" in err[f"model={killer}:Net w_bits=4"]
    assert all("\n" not in e for e in df["error"].dropna())


def test_optuna_search_resumes(tmp_path: Path) -> None:
    out = tmp_path / "search"
    path = _yaml(tmp_path, """\
fixed: {hw: tiny, model: lenet5, batch: 2, steps: 0}
axes: {w_bits: [4, 8], a_bits: [4, 8], mac_array.rows: [4, 8, 16], mac_array.cols: [4, 8]}
constraints: [area_mm2<=1.02]
objectives: {energy_pj: min, cycles: min, area_mm2: min}
mode: search
n_trials: 6
seed: 3
""")
    assert main(["sweep", f"sweep={path}", "workers=2", f"out={out}"]) == 0
    assert (out / "study.journal").exists()
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    def trials() -> list:
        storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
        return optuna.load_study(study_name="fxpsim-sweep", storage=storage).trials

    assert len(trials()) == 6
    assert main(["sweep", f"sweep={path}", "workers=2", "n_trials=9", f"out={out}"]) == 0
    assert len(trials()) == 9 and all(t.state.name == "COMPLETE" for t in trials())
    df = pd.read_parquet(out / "results.parquet")
    assert not df[df["pareto"]]["area_mm2"].gt(1.02).any()  # the front is feasible


def test_notebook_api_returns_dataframe(tmp_path: Path) -> None:
    df = fxpsim.sweep(model="lenet5", hw="tiny", steps=0, batch=2, w_bits=[4, 8],
                      options={"mac_array.rows": [4, 8]}, workers=1, out=str(tmp_path / "nb"))
    assert isinstance(df, pd.DataFrame) and len(df) == 4
    assert {"cycles", "energy_pj", "area_mm2", "pareto", "status"} <= set(df.columns)


def test_training_points_carry_accuracy(tmp_path: Path) -> None:
    out = tmp_path / "train"
    spec = spec_from_cli({"hw": "tiny", "model": "lenet5", "batch": "8", "steps": "3",
                          "eval_samples": "64", "rounding.g": "half_even,stochastic"})
    df = run_sweep(spec, Execution(out=out, workers=1, quiet=True))
    assert list(df["status"]) == ["ok", "ok"]
    assert df["accuracy"].between(0, 1).all() and df["accuracy_train"].notna().all()
    assert df["pareto"].any()  # default objectives include accuracy when points train
    summary = json.loads((Path(df["run_dir"][0]) / "summary.json").read_text())
    assert df["accuracy"][0] == summary["accuracy"]["test"]
    from fxpsim.sweeps.cli import write_reports
    from fxpsim.sweeps.run import objectives_for

    assert [m for m, _ in objectives_for(spec)][0] == "accuracy"
    write_reports(spec, Execution(out=out), df)
    assert 'alt="accuracy vs energy"' in (out / "sweep.html").read_text()


def test_bench_sweep_options_are_checked(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "sweep", "bogus=1"]) == 2
    assert "bogus: unknown option for bench sweep" in capsys.readouterr().err
    assert main(["bench", "sweep", "steps=0"]) == 2
