"""``fxpsim bench sweep``: how fast sweeps run on the local Dask cluster, and that a killed
sweep resumes without re-running finished points. All in one run, so ratios are measured
under the same machine load:

* ``timing_grid``: a 1,008-point timing-only grid (hw keys x bit widths x 3 models:
  ``mac_array.rows`` x ``mac_array.cols`` x global SRAM size x ``w_bits`` x ``a_bits`` for
  lenet5, resnet20 and CIFAR vgg16, inference at batch 1) on 1 worker and on 2 workers:
  points/s and the 2-over-1 speed-up (target >= 1.7x);
* ``train_sweep``: 16 LeNet-5 training points (``rounding.g`` x ``g_bits`` x 4 seeds,
  ``steps`` each, accuracy on 200 test images) on 1 and on 2 workers (target >= 1.6x),
  and on 1 worker held to 1 thread (the default gives a lone worker all the cores' threads); One worker gets all the cores'
  threads, two get half each (the engine pins each worker to its share);
* ``resume``: a ``fxpsim sweep`` process on a timing grid is killed (SIGKILL, its workers
  too) once half of the points are stored; the rerun counts the points it evaluates. Target:
  none beyond the ones that were not stored (those running at the kill).

Wall times include starting the cluster and writing the results table, as a user sees them.
Options: ``out=PATH`` (JSON, default reports/bench/sweep.json), ``steps=N`` (training
points, default 10), ``quick=1`` (small grids: checks the plumbing, not the speed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fxpsim.bench.common import BenchRow
from fxpsim.errors import ConfigError

_KNOWN = {"out", "steps", "quick"}
TIMING_FIXED = {"hw": "edge_npu", "phase": "infer", "batch": "1", "steps": "0"}
TIMING_AXES = {
    "model": "lenet5,resnet20,vgg16", "w_bits": "4,8", "a_bits": "4,8",
    "mac_array.rows": "8,16,32,64,128,256,512", "mac_array.cols": "8,16,32,64,128,256",
    "memory.global_sram.size_kib": "256,1024",
}
QUICK_TIMING_AXES = {"model": "lenet5,resnet20,vgg16", "w_bits": "4,8",
                     "mac_array.rows": "8,16"}
TRAIN_AXES = {"rounding.g": "half_even,stochastic", "g_bits": "4,8", "seed": "0,1,2,3"}
QUICK_TRAIN_AXES = {"rounding.g": "half_even,stochastic", "seed": "0,1"}


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (the cluster's workers are
    reaped when it closes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _sweep(options: dict[str, str], out: Path, workers: int) -> tuple[float, int, int, float]:
    """(wall seconds, points, failed, CPU seconds) of one sweep on a fresh local cluster."""
    from fxpsim.sweeps.cli import prepare
    from fxpsim.sweeps.run import run_sweep

    spec, ex = prepare({**options, "workers": str(workers), "out": str(out)})
    from dataclasses import replace

    c0, t0 = _cpu(), time.perf_counter()
    frame = run_sweep(spec, replace(ex, quiet=True))
    wall = time.perf_counter() - t0
    return wall, len(frame), int((frame["status"] != "ok").sum()), _cpu() - c0


def _speedup(group: str, case: str, options: dict[str, str], tmp: Path, target: float,
             rows: list[BenchRow], one_thread_too: bool = False) -> None:
    # CPU s / wall s = cores the sweep actually got: on a loaded machine that, not the
    # number of workers, bounds the speed-up (the kernel shares CPU between sessions)
    w1, n, f1, c1 = _sweep(options, tmp / f"{group}-1", 1)
    print(f"{group}: 1 worker: {n} points in {w1:.1f} s ({f1} failed), "
          f"{c1 / w1:.2f} cores used, load {os.getloadavg()[0]:.1f}", flush=True)
    w2, _, f2, c2 = _sweep(options, tmp / f"{group}-2", 2)
    print(f"{group}: 2 workers: {n} points in {w2:.1f} s ({f2} failed), "
          f"{c2 / w2:.2f} cores used, load {os.getloadavg()[0]:.1f}", flush=True)
    rows.append(BenchRow(group, f"{case}, 1 worker", w1, n / w1, "points/s",
                         note=f"{n} points, {f1} failed; {c1 / w1:.2f} cores used; reference"))
    rows.append(BenchRow(group, f"{case}, 2 workers", w2, n / w2, "points/s",
                         reference=f"{case}, 1 worker", ratio=w1 / w2, target=target,
                         note=f"{n} points, {f2} failed; {c2 / w2:.2f} cores used"))
    if one_thread_too:  # the default 1-worker run uses all cores' threads; this one 1
        w3, _, f3, c3 = _sweep({**options, "threads": "1"}, tmp / f"{group}-1t", 1)
        print(f"{group}: 1 worker, 1 thread: {n} points in {w3:.1f} s ({f3} failed), "
              f"{c3 / w3:.2f} cores used, load {os.getloadavg()[0]:.1f}", flush=True)
        rows.append(BenchRow(group, f"{case}, 1 worker with 1 thread", w3, n / w3, "points/s",
                             note=f"{n} points, {f3} failed; {c3 / w3:.2f} cores used; "
                                  f"2 workers vs this: {w3 / w2:.2f}x"))


def _resume(options: dict[str, str], tmp: Path, rows: list[BenchRow]) -> None:
    from fxpsim.sweeps.cli import prepare
    from fxpsim.sweeps.run import run_sweep
    from fxpsim.sweeps.spec import grid_points

    out = tmp / "resume"
    args = [sys.executable, "-m", "fxpsim", "sweep",
            *(f"{k}={v}" for k, v in options.items()), "workers=2", f"out={out}"]
    spec, ex = prepare({**options, "out": str(out), "workers": "2"})
    total = len({p.digest for p in grid_points(spec)})
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    points = out / "points"
    deadline = time.monotonic() + 1800
    while proc.poll() is None and time.monotonic() < deadline:
        if points.exists() and len(list(points.glob("*.parquet"))) >= total // 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its cluster's worker processes
    proc.wait()
    kept = len(list(points.glob("*.parquet")))
    evaluated: list[str] = []
    from dataclasses import replace

    t0 = time.perf_counter()
    run_sweep(spec, replace(ex, quiet=True), on_row=lambda r: evaluated.append(r["digest"]))
    wall = time.perf_counter() - t0
    extra = len(evaluated) - (total - kept)
    print(f"resume: {total} points, {kept} stored when killed, rerun evaluated "
          f"{len(evaluated)}; re-evaluated beyond the missing ones: {extra}", flush=True)
    rows.append(BenchRow("resume", "kill after half, rerun", wall, len(evaluated) / wall
                         if wall else 0.0, "points/s", ratio=float(extra), target=0.0,
                         note=f"{total} points, {kept} stored at the kill, {len(evaluated)} "
                              f"evaluated by the rerun, {extra} re-evaluated beyond those "
                              "missing (ratio column)"))


def main(options: dict[str, str]) -> int:
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ConfigError("command line", unknown[0],
                          f"unknown option for bench sweep (known: {', '.join(sorted(_KNOWN))})")
    steps = options.get("steps", "10")
    if not steps.isdigit() or int(steps) < 1:
        raise ConfigError("command line", "steps", f"expected an integer >= 1, got {steps!r}")
    quick = options.get("quick", "0") not in ("0", "false", "no")
    out = Path(options.get("out", "reports/bench/sweep.json"))
    timing = {**TIMING_FIXED, **(QUICK_TIMING_AXES if quick else TIMING_AXES)}
    train = {"hw": "edge_npu", "model": "lenet5", "steps": steps, "eval_samples": "200",
             **(QUICK_TRAIN_AXES if quick else TRAIN_AXES)}
    if quick:
        train["steps"] = "5"
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="fxpsim-bench-sweep-") as tmp:
        _speedup("timing_grid", "timing-only grid", timing, Path(tmp), 1.7, rows)
        _speedup("train_sweep", f"LeNet-5 training, {train['steps']} steps", train, Path(tmp),
                 1.6, rows, one_thread_too=True)
        resume_opts = {**TIMING_FIXED, **QUICK_TIMING_AXES} if quick else \
            {**TIMING_FIXED, "model": "lenet5,resnet20", "w_bits": "4,8",
             "mac_array.rows": "8,16,32,64,128", "mac_array.cols": "8,16,32,64"}
        _resume(resume_opts, Path(tmp), rows)
    _print_table(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"options": dict(sorted(options.items())), "cpu_count": os.cpu_count(),
               "load_average": list(os.getloadavg()), "rows": [r.as_dict() for r in rows]}
    out.write_text(json.dumps(payload, sort_keys=True, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _print_table(rows: list[BenchRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fxpsim bench sweep")
    for col in ("group", "case", "seconds", "points/s", "ratio", "target", "note"):
        table.add_column(col)
    for r in rows:
        ok = ""
        if r.target is not None and r.ratio is not None:
            met = r.ratio <= r.target if r.group == "resume" else r.ratio >= r.target
            ok = " ok" if met else " MISSED"
        target = "" if r.target is None else (
            f"= {r.target:g}{ok}" if r.group == "resume" else f">= {r.target:g}x{ok}")
        table.add_row(r.group, r.case, f"{r.seconds:.1f}", f"{r.rate:.2f}",
                      "" if r.ratio is None else f"{r.ratio:.2f}", target, r.note)
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)
    console.print(table)
