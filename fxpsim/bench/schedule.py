"""``fxpsim bench schedule``: how fast the time plane simulates whole networks.

Cases: CIFAR VGG16 inference (batch 1, as SCALE-Sim runs it) on edge_npu's 16x16
weight-stationary array, and an ImageNet VGG16 training step with ``algo=fb`` at batch 32 on
edge_npu, both with the per-layer mapping search on. Each case is timed in-process (best of
``repeats`` runs of load + lower + search + schedule; the search's share of that time is
reported) and, when the ``fxpsim run`` command works, as a whole process (``fxpsim run ...
epochs=0``, interpreter start and report writing included; one run). Targets: CIFAR
inference whole process <= 0.5 s writing json/csv (SCALE-Sim v2 needs about 174 CPU-seconds
and 4 GB for it), ImageNet FB step <= 1 s without report.html. Options: ``out=PATH`` (JSON,
default reports/bench/schedule.json), ``repeats=N``, ``subprocess=0`` (skip the
whole-process timing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fxpsim.bench.common import BenchRow, best_time
from fxpsim.errors import ConfigError

_KNOWN = {"out", "repeats", "subprocess"}
#: (case, run options, whole-process target seconds)
CASES: tuple[tuple[str, dict[str, str], float, str], ...] = (
    ("cifar_vgg16_infer_ws16x16",
     {"hw": "edge_npu", "model": "vgg16", "phase": "infer", "batch": "1"}, 0.5, "json,csv"),
    ("imagenet_vgg16_train_fb_b32",
     {"hw": "edge_npu", "model": "vgg16_imagenet", "phase": "train", "algo": "fb",
      "batch": "32"}, 1.0, "json,csv,md,trace"),
)


def _in_process(opts: dict[str, str], repeats: int) -> tuple[float, int, int, str]:
    from fxpsim.api import simulate_run
    from fxpsim.results import total

    out: list[object] = []

    def once() -> None:
        # the time plane only: steps=0 (training is benchmarked by `fxpsim bench train`)
        out.append(simulate_run({**opts, "steps": "0"}, progress=False))

    secs = best_time(once, repeats=repeats, warmup=1)
    timing = out[-1].timing  # type: ignore[attr-defined]
    st = timing.search
    search = (f"search {st.seconds:.3f} s of the last run ({st.searches} searches, "
              f"{st.evaluated:,} mappings evaluated)")
    return secs, total(timing.records).cycles, len(timing.records), search


def _whole_process(opts: dict[str, str]) -> float | None:
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "fxpsim", "run", *(f"{k}={v}" for k, v in opts.items()),
                "epochs=0", f"out={tmp}/run"]
        t0 = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        dt = time.perf_counter() - t0
    if done.returncode != 0:
        print(f"whole-process run failed ({' '.join(args[2:])}): "
              f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        return None
    return dt


def main(options: dict[str, str]) -> int:
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ConfigError("command line", unknown[0],
                          f"unknown option for bench schedule (known: {', '.join(sorted(_KNOWN))})")
    try:
        repeats = int(options.get("repeats", "3"))
    except ValueError:
        raise ConfigError("command line", "repeats",
                          f"expected an integer, got {options['repeats']!r}") from None
    if repeats < 1:
        raise ConfigError("command line", "repeats", f"must be >= 1, got {repeats}")
    use_sub = options.get("subprocess", "1") not in ("0", "false", "no")
    out = Path(options.get("out", "reports/bench/schedule.json"))
    rows: list[BenchRow] = []
    for case, opts, target, fmt_target in CASES:
        secs, cycles, n_rec, search = _in_process(opts, repeats)
        rows.append(BenchRow("in_process", case, secs, n_rec / secs, "records/s",
                             note=f"{cycles} simulated cycles, {n_rec} layer-pass records; "
                                  f"{search}"))
        if not use_sub:
            continue
        # the timing reports the target was set for, then everything a default run writes
        # (report.html adds matplotlib's import and plot rendering)
        for fmt, tgt in ((fmt_target, target), ("json,csv,md,html,trace", None)):
            whole = _whole_process({**opts, "format": fmt})
            if whole is not None:
                note = f"format={fmt}" + (f"; target <= {tgt:g} s" if tgt else "")
                rows.append(BenchRow("whole_process", case, whole, 1.0 / whole, "runs/s",
                                     target=tgt, note=note))
    _print_table(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"options": dict(sorted(options.items())), "rows": [r.as_dict() for r in rows]}
    out.write_text(json.dumps(payload, sort_keys=True, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _print_table(rows: list[BenchRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fxpsim bench schedule")
    for col in ("group", "case", "seconds", "target", "note"):
        table.add_column(col)
    for r in rows:
        ok = "" if r.target is None else (" ok" if r.seconds <= r.target else " MISSED")
        table.add_row(r.group, r.case, f"{r.seconds:.3f}",
                      "" if r.target is None else f"<= {r.target:g} s{ok}", r.note)
    console = Console()
    if not console.is_terminal:  # readable when piped to a file
        console = Console(width=160)
    console.print(table)
