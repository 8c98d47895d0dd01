"""The rich tables printed by ``fxpsim run``: per layer cycles by pass kind, utilization,
energy and bound, then totals per pass (the algorithm's own passes included). Tables fit the
terminal (columns dropped by priority, digits never cut, see :mod:`fxpsim.report.fit`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fxpsim.config.area import area_of
from fxpsim.outcome import RunOutcome
from fxpsim.report.fit import dropped_note, fit_table
from fxpsim.report.tables import bound_name, ordered_passes
from fxpsim.results import LayerPassResult, Metrics, per_pass, sum_metrics, total

#: per-layer columns: GEMM pass kinds (an algorithm's trial passes count with their kind)
_KINDS = (("fwd", "forward"), ("bwd-data", "backward_data"), ("bwd-wt", "backward_weight"))
#: per-layer table columns after the layer name, and the order they go when space is short
LAYER_COLUMNS = ("fwd", "bwd-data", "bwd-wt", "other", "cycles", "util", "energy uJ", "bound")
LAYER_DROP = ("other", "bound", "bwd-wt", "bwd-data", "util", "fwd")
PASS_COLUMNS = ("cycles", "ms", "energy uJ", "MACs", "DRAM bytes", "stall cycles")
PASS_DROP = ("stall cycles", "DRAM bytes", "MACs", "ms")


def _kind(pass_name: str) -> str:
    for label, suffix in _KINDS:
        if pass_name.endswith(suffix):
            return label
    return "other"


#: layer rows printed (the ones with the most cycles, in model order); all are in the reports
MAX_TERMINAL_LAYERS = 60


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def run_title(outcome: RunOutcome) -> str:
    """``name: model on hw (train, algo=fb, batch=32)``; inference names no algorithm."""
    run = outcome.run
    algo = f", algo={run.algo}" if run.phase == "train" else ""
    return (f"{outcome.name}: {outcome.graph.name} on {outcome.hw.config.name} "
            f"({run.phase}{algo}, batch={run.batch})")


def _layer_table(outcome: RunOutcome, recs: list[LayerPassResult], cols: Sequence[str],
                 caption: str = "") -> Table:
    hw = outcome.hw.config
    peak = hw.mac_array.rows * hw.mac_array.cols
    kinds = [label for label, _ in _KINDS] + ["other"]
    cells: dict[tuple[str, str], list[Metrics]] = {}
    layer_ms: dict[str, list[Metrics]] = {}
    layer_cycles: dict[str, int] = {}
    kind_cycles: dict[str, int] = {}
    gemm_macs: dict[str, int] = {}
    gemm_cycles: dict[str, int] = {}
    for r in recs:  # one pass over the records (a lookup per layer would be quadratic)
        kind = _kind(r.pass_name)
        cells.setdefault((r.layer, kind), []).append(r.metrics)
        layer_ms.setdefault(r.layer, []).append(r.metrics)
        layer_cycles[r.layer] = layer_cycles.get(r.layer, 0) + r.metrics.cycles
        kind_cycles[kind] = kind_cycles.get(kind, 0) + r.metrics.cycles
        if r.gemm is not None:
            gemm_macs[r.layer] = gemm_macs.get(r.layer, 0) + r.metrics.macs
            gemm_cycles[r.layer] = gemm_cycles.get(r.layer, 0) + r.metrics.cycles
    layers = list(layer_ms)
    if len(layers) > MAX_TERMINAL_LAYERS:
        top = sorted(range(len(layers)), key=lambda i: (-layer_cycles[layers[i]], i))
        layers = [layers[i] for i in sorted(top[:MAX_TERMINAL_LAYERS])]
        caption += (f"; the {MAX_TERMINAL_LAYERS} of {len(layer_ms):,} layers with the most "
                    "cycles are shown (all are in layers.csv and report.html)")
    # full metrics only for the layers shown (10,000-layer models show 60)
    shown = set(layers)
    cell = {k: sum_metrics(ms) for k, ms in cells.items() if k[0] in shown}
    per_layer = {k: sum_metrics(layer_ms[k]) for k in layers}
    table = Table(title=escape(run_title(outcome)), caption=caption, show_footer=True)
    tot = total(recs)
    table.add_column("layer", footer="total")
    footers = {k: f"{kind_cycles.get(k, 0):,}" for k in kinds}
    footers.update({"cycles": f"{tot.cycles:,}", "util": "",
                    "energy uJ": f"{tot.energy_pj / 1e6:,.2f}", "bound": bound_name(tot)})
    for c in cols:
        table.add_column(c, justify="left" if c == "bound" else "right", footer=footers[c],
                         no_wrap=True)
    for layer in layers:
        ms = {k: cell.get((layer, k)) for k in kinds}
        lm = per_layer[layer]
        g_cyc = gemm_cycles.get(layer, 0)
        values = {k: f"{m.cycles:,}" if m is not None else "" for k, m in ms.items()}
        values.update({
            "cycles": f"{lm.cycles:,}",
            "util": f"{gemm_macs.get(layer, 0) / (g_cyc * peak):.1%}" if g_cyc else "-",
            "energy uJ": f"{lm.energy_pj / 1e6:,.2f}", "bound": bound_name(lm)})
        table.add_row(escape(layer), *[values[c] for c in cols])
    return table


def _pass_table(recs: list[LayerPassResult], freq_hz: float, cols: Sequence[str],
                caption: str = "") -> Table:
    passes = per_pass(recs)
    table = Table(title="per pass", caption=caption)
    table.add_column("pass")
    for c in cols:
        table.add_column(c, justify="right", no_wrap=True)
    for p in ordered_passes(passes):
        m = passes[p]
        values = {"cycles": f"{m.cycles:,}", "ms": f"{m.cycles / freq_hz * 1e3:.3f}",
                  "energy uJ": f"{m.energy_pj / 1e6:,.2f}", "MACs": f"{m.macs:,}",
                  "DRAM bytes": f"{m.dram_bytes:,}", "stall cycles": f"{m.stall_cycles:,}"}
        table.add_row(p, *[values[c] for c in cols])
    return table


def not_trained_reason(run: object) -> str:
    """The one reason a run did not train (phase=infer, steps=0 or epochs=0)."""
    if getattr(run, "phase", "") != "train":
        return "phase=infer"
    return "steps=0" if getattr(run, "steps", None) == 0 else "epochs=0"


def numerics_words(run: object) -> str:
    """``8/8/8-bit W/A/G`` or ``fp32`` or ``W/A/G 8/8/float``."""
    bits = [getattr(run, f"{k}_bits") for k in "wag"]
    if all(b == "float" for b in bits):
        return "fp32 (float W/A/G)"
    if any(b == "float" for b in bits):
        return f"W/A/G {'/'.join(str(b) for b in bits)}-bit"
    return f"{'/'.join(str(b) for b in bits)}-bit W/A/G"


def print_run(outcome: RunOutcome, console: Console | None = None) -> None:
    # a pipe or CI log gets 80 columns from rich by default: too narrow for the table
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    recs = list(outcome.timing.records)
    hw = outcome.hw.config
    base_caption = ("cycles by pass kind (other = vector-unit passes); util = MACs / (GEMM "
                    "cycles x PEs); bound = the larger roofline bound")
    table, dropped = fit_table(
        console, lambda cols: _layer_table(outcome, recs, cols, base_caption),
        LAYER_COLUMNS, LAYER_DROP)
    if dropped:
        table.caption = base_caption + dropped_note(dropped, "layers.csv")
    console.print(table)
    table, dropped = fit_table(console, lambda cols: _pass_table(recs, hw.freq_hz, cols),
                               PASS_COLUMNS, PASS_DROP)
    table.caption = dropped_note(dropped, "summary.json").lstrip("; ") or None
    console.print(table)
    tot = total(recs)
    secs = tot.cycles / hw.freq_hz
    console.print(escape(
        f"total: {tot.cycles:,} cycles = {secs * 1e3:.3f} ms at {hw.clock.freq_mhz:g} MHz, "
        f"{tot.energy_pj / 1e6:,.2f} uJ, {tot.macs:,} MACs, {tot.dram_bytes:,} DRAM bytes, "
        f"stalls {tot.stall_cycles:,} cycles; energy table: {outcome.timing.energy_table}"))
    st = outcome.timing.search
    console.print(f"mapping search ({outcome.run.mapping_objective}): {st.searches} searches, "
                  f"{st.evaluated:,} mappings evaluated in {st.seconds:.2f} s")
    for note in outcome.timing.notes:
        console.print(escape(f"note: {note}"))
    area = area_of(hw)
    top = ", ".join(f"{k} {v:.3f}" for k, v in sorted(area.by_component, key=lambda kv: -kv[1])[:3])
    console.print(f"area: {area.total_mm2:.3f} mm2 ({top} mm2; fxpsim check lists all)")
    t = outcome.training
    run = outcome.run
    inf = outcome.inference
    if t is None and inf is not None:
        console.print(
            f"accuracy (bit-exact inference of {inf.checkpoint}, algo={inf.algo}, "
            f"{inf.trained_steps} steps trained): test {inf.test_accuracy:.2%} on "
            f"{inf.test_samples} {inf.dataset} images (batch {inf.eval_batch})")
    elif t is None:
        console.print(f"accuracy: not trained (timing only: {not_trained_reason(run)})")
    elif t.diverged_at_step is not None:
        console.print(escape(
            f"accuracy: none: training diverged at step {t.diverged_at_step} (loss or weights "
            f"became NaN/inf with {numerics_words(run)}, rounding.g={run.rounding_g}, "
            f"algo={t.algo})"))
    else:
        console.print(escape(
            f"accuracy (bit-exact {numerics_words(run)} training, algo={t.algo}): test "
            f"{t.accuracy.test:.2%}, train {t.accuracy.train:.2%} after "
            f"{plural(t.steps, 'step')} ({plural(t.epochs, 'epoch')}, batch {t.batch}) "
            f"on {t.dataset}"))
    from fxpsim.advice import run_warnings

    for w in run_warnings(outcome):
        console.print(f"[bold yellow]warning:[/] {escape(w)}")
