"""``fxpsim bench schedule``: how fast the time plane simulates whole networks.

Cases: CIFAR VGG16 inference (batch 1, as SCALE-Sim runs it) on edge_npu's 16x16
weight-stationary array, and an ImageNet VGG16 training step with ``algo=fb`` at batch 32 on
edge_npu, both with the per-layer mapping search on, and SCALE-Sim's CIFAR VGG16 topology
with ``timing=scalesim`` on its example 16x16 WS config in USER mode (10 words/cycle). Each
case is timed in-process (best of ``repeats`` runs of load + lower + search + schedule; the
search's share of that time is reported) and, when the ``fxpsim run`` command works, as a
whole process (``fxpsim run ... epochs=0``, interpreter start and report writing included;
best of ``repeats``). Targets: CIFAR inference whole process <= 0.5 s writing json/csv
(SCALE-Sim v2 needs about 174 CPU-seconds and 4 GB for it), ImageNet FB step <= 1 s without
report.html, what writing ``report.html`` adds to a whole run <= 0.5 s (the difference of the
whole-process timings with and without it; the in-process rendering time is reported beside
it), the SCALE-Sim USER-mode topology about 1 s. Options: ``out=PATH`` (JSON, default
reports/bench/schedule.json), ``repeats=N``, ``subprocess=0`` (skip the whole-process
timing), ``big=0`` (skip the 10,000-layer topology cases: whole process, every report,
target <= 10 s and <= 1 GB).
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

_KNOWN = {"out", "repeats", "subprocess", "big"}
#: the 10,000-layer topology cases: whole process, every report, <= 10 s and <= 1 GB
BIG_LAYERS = 10_000
BIG_TARGET_S, BIG_TARGET_MIB = 10.0, 1024.0
#: (case, run options, whole-process target seconds)
CASES: tuple[tuple[str, dict[str, str], float, str], ...] = (
    ("cifar_vgg16_infer_ws16x16",
     {"hw": "edge_npu", "model": "vgg16", "phase": "infer", "batch": "1"}, 0.5, "json,csv"),
    ("imagenet_vgg16_train_fb_b32",
     {"hw": "edge_npu", "model": "vgg16_imagenet", "phase": "train", "algo": "fb",
      "batch": "32"}, 1.0, "json,csv,md,trace"),
    # SCALE-Sim's own USER-mode memory model on its topology (SCALE-Sim: minutes per layer)
    ("scalesim_vgg16_cifar_user_ws16x16",
     {"hw": "scalesim_example", "model": "models/scalesim_vgg16_cifar.csv", "phase": "infer",
      "timing": "scalesim"}, 1.0, "json,csv"),
)


def _in_process(opts: dict[str, str], repeats: int) -> tuple[float, int, int, str]:
    from fxpsim.api import simulate_run
    from fxpsim.results import total
    from fxpsim.timing.scalesim_timing import clear_layer_memo

    out: list[object] = []

    def once() -> None:
        # the time plane only: steps=0 (training is benchmarked by `fxpsim bench train`)
        clear_layer_memo()  # each repeat recomputes SCALE-Sim's layers
        out.append(simulate_run({**opts, "steps": "0"}, progress=False))

    secs = best_time(once, repeats=repeats, warmup=1)
    timing = out[-1].timing  # type: ignore[attr-defined]
    st = timing.search
    search = (f"search {st.seconds:.3f} s of the last run ({st.searches} searches, "
              f"{st.evaluated:,} mappings evaluated)")
    return secs, total(timing.records).cycles, len(timing.records), search


def _whole_process(opts: dict[str, str], repeats: int = 1) -> float | None:
    best = None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            args = [sys.executable, "-m", "fxpsim", "run",
                    *(f"{k}={v}" for k, v in opts.items()), "epochs=0", f"out={tmp}/run"]
            t0 = time.perf_counter()
            done = subprocess.run(args, capture_output=True, text=True, check=False)
            dt = time.perf_counter() - t0
        if done.returncode != 0:
            print(f"whole-process run failed ({' '.join(args[2:])}): "
                  f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
            return None
        best = dt if best is None else min(best, dt)
    return best


def _html_render(opts: dict[str, str], repeats: int) -> float:
    """In-process seconds to render report.html from the run's summary/layers texts."""
    from fxpsim.api import simulate_run
    from fxpsim.report.csvmd import layers_csv
    from fxpsim.report.rerender import render_documents
    from fxpsim.report.summary import summary_json

    outcome = simulate_run({**opts, "steps": "0"}, progress=False)
    summary, layers = summary_json(outcome), layers_csv(outcome)
    return best_time(lambda: render_documents(summary, layers, ("html",)), repeats=repeats,
                     warmup=1)


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
        html = _html_render(opts, repeats)
        rows.append(BenchRow("in_process", f"{case}_render_html", html, 1.0 / html, "pages/s",
                             note="report.html from summary.json + layers.csv"))
        if not use_sub:
            continue
        # the timing reports the target was set for, then without and with report.html
        timed: dict[str, float | None] = {}
        for fmt in dict.fromkeys((fmt_target, "json,csv,md,trace", "json,csv,md,html,trace")):
            tgt = target if fmt == fmt_target else None
            whole = _whole_process({**opts, "format": fmt}, repeats)
            timed[fmt] = whole
            if whole is not None:
                note = f"format={fmt}" + (f"; target <= {tgt:g} s" if tgt else "")
                rows.append(BenchRow("whole_process", case, whole, 1.0 / whole, "runs/s",
                                     target=tgt, note=note))
        if None not in timed.values():
            with_html, without_html = timed["json,csv,md,html,trace"], timed["json,csv,md,trace"]
            assert with_html is not None and without_html is not None
            extra = max(with_html - without_html, 0.0)
            rows.append(BenchRow("whole_process", f"{case}_html_cost", extra,
                                 1.0 / max(extra, 1e-9), "1/s", target=0.5,
                                 note="what writing report.html adds (json,csv,md,html,trace "
                                      "minus json,csv,md,trace, best of each)"))
    if use_sub and options.get("big", "1") not in ("0", "false", "no"):
        rows += _big_topology_rows()
    _print_table(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"options": dict(sorted(options.items())), "rows": [r.as_dict() for r in rows]}
    out.write_text(json.dumps(payload, sort_keys=True, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _big_topology(path: Path, distinct: bool) -> None:
    """A SCALE-Sim topology of 10,000 conv layers: VGG16's 13 CIFAR conv shapes over and over
    (real networks repeat layer shapes), or 6,224 distinct shapes (little to reuse)."""
    vgg = [(34, 3, 64), (34, 64, 64), (18, 64, 128), (18, 128, 128), (10, 128, 256),
           (10, 256, 256), (10, 256, 256), (6, 256, 512), (6, 512, 512), (6, 512, 512),
           (4, 512, 512), (4, 512, 512), (4, 512, 512)]
    lines = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
             "Num Filter, Strides,"]
    for i in range(BIG_LAYERS):
        if distinct:
            hw, c, k = 8 + i % 29, 3 + i % 61, 16 + i % 47 + (i // 1363)
        else:
            hw, c, k = vgg[i % len(vgg)]
        lines.append(f"L{i}, {hw}, {hw}, 3, 3, {c}, {k}, 1,")
    path.write_text("\n".join(lines) + "\n")


def _big_topology_rows() -> list[BenchRow]:
    """Whole-process wall and CPU seconds and peak memory of ``fxpsim run`` (all reports)
    on the 10,000-layer topologies."""
    import resource

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for distinct in (False, True):
            topo = Path(tmp) / f"topo10k_{'distinct' if distinct else 'vgg'}.csv"
            _big_topology(topo, distinct)
            args = [sys.executable, "-m", "fxpsim", "run", "hw=edge_npu", f"model={topo}",
                    "phase=infer", f"out={tmp}/run{int(distinct)}"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            done = subprocess.run(args, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                print(f"10k-layer run failed: {done.stderr.strip()[-200:]}")
                continue
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            peak_mib = after.ru_maxrss / 1024  # KiB on Linux; the largest child so far
            case = f"topology_{BIG_LAYERS}_layers_{'distinct' if distinct else 'vgg_shapes'}"
            # judged on CPU seconds: the run is single-threaded, so on an idle machine they
            # are its wall seconds, and on a shared one they are what the run itself cost
            rows.append(BenchRow(
                "whole_process_cpu", case, cpu, 1.0 / cpu, "runs/cpu-s",
                target=BIG_TARGET_S,
                note=f"all reports; wall {wall:.1f} s; peak {peak_mib:.0f} MiB (target <= "
                     f"{BIG_TARGET_MIB:g})"))
    return rows


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
