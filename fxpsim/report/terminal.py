"""The rich tables printed by ``fxpsim run``: per layer cycles by pass kind, utilization,
energy and bound, then totals per pass (the algorithm's own passes included)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from fxpsim.outcome import RunOutcome
from fxpsim.report.tables import bound_name, ordered_passes
from fxpsim.results import LayerPassResult, Metrics, per_pass, total

#: per-layer columns: GEMM pass kinds (an algorithm's trial passes count with their kind)
_KINDS = (("fwd", "forward"), ("bwd-data", "backward_data"), ("bwd-wt", "backward_weight"))


def _kind(pass_name: str) -> str:
    for label, suffix in _KINDS:
        if pass_name.endswith(suffix):
            return label
    return "other"


def _layer_table(outcome: RunOutcome, recs: list[LayerPassResult]) -> Table:
    hw = outcome.hw.config
    peak = hw.mac_array.rows * hw.mac_array.cols
    cols = [label for label, _ in _KINDS] + ["other"]
    layers = list(dict.fromkeys(r.layer for r in recs))
    cell: dict[tuple[str, str], Metrics] = {}
    for r in recs:
        key = (r.layer, _kind(r.pass_name))
        cell[key] = cell.get(key, Metrics()) + r.metrics
    table = Table(
        title=f"{outcome.name}: {outcome.graph.name} on {hw.name} "
        f"({outcome.run.phase}, algo={outcome.run.algo}, batch={outcome.run.batch})",
        caption="cycles by pass kind (other = vector-unit passes); util = MACs / (GEMM cycles"
        " x PEs); bound = the larger roofline bound",
        show_footer=True,
    )
    tot = total(recs)
    table.add_column("layer", footer="total")
    for c in cols:
        cm = sum((m for (_, k), m in cell.items() if k == c), Metrics())
        table.add_column(c, justify="right", footer=f"{cm.cycles:,}")
    table.add_column("cycles", justify="right", footer=f"{tot.cycles:,}")
    table.add_column("util", justify="right")
    table.add_column("energy uJ", justify="right", footer=f"{tot.energy_pj / 1e6:,.2f}")
    table.add_column("bound", footer=bound_name(tot))
    for layer in layers:
        ms = [cell.get((layer, c)) for c in cols]
        lm = sum((m for m in ms if m is not None), Metrics())
        gemm = [r.metrics for r in recs if r.layer == layer and r.gemm is not None]
        g_cyc = sum(m.cycles for m in gemm)
        util = f"{sum(m.macs for m in gemm) / (g_cyc * peak):.1%}" if g_cyc else "-"
        table.add_row(
            layer,
            *[f"{m.cycles:,}" if m is not None else "" for m in ms],
            f"{lm.cycles:,}",
            util,
            f"{lm.energy_pj / 1e6:,.2f}",
            bound_name(lm),
        )
    return table


def _pass_table(recs: list[LayerPassResult], freq_hz: float) -> Table:
    passes = per_pass(recs)
    table = Table(title="per pass")
    for c in ("pass", "cycles", "ms", "energy uJ", "MACs", "DRAM bytes", "stall cycles"):
        table.add_column(c, justify="left" if c == "pass" else "right")
    for p in ordered_passes(passes):
        m = passes[p]
        table.add_row(
            p,
            f"{m.cycles:,}",
            f"{m.cycles / freq_hz * 1e3:.3f}",
            f"{m.energy_pj / 1e6:,.2f}",
            f"{m.macs:,}",
            f"{m.dram_bytes:,}",
            f"{m.stall_cycles:,}",
        )
    return table


def print_run(outcome: RunOutcome, console: Console | None = None) -> None:
    # a pipe or CI log gets 80 columns from rich by default: too narrow for the table
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    recs = list(outcome.timing.records)
    hw = outcome.hw.config
    console.print(_layer_table(outcome, recs))
    console.print(_pass_table(recs, hw.freq_hz))
    tot = total(recs)
    secs = tot.cycles / hw.freq_hz
    console.print(
        f"total: {tot.cycles:,} cycles = {secs * 1e3:.3f} ms at {hw.clock.freq_mhz:g} MHz, "
        f"{tot.energy_pj / 1e6:,.2f} uJ, {tot.macs:,} MACs, {tot.dram_bytes:,} DRAM bytes, "
        f"stalls {tot.stall_cycles:,} cycles; energy table: {outcome.timing.energy_table}"
    )
    st = outcome.timing.search
    console.print(f"mapping search ({outcome.run.mapping_objective}): {st.searches} searches, "
                  f"{st.evaluated:,} mappings evaluated in {st.seconds:.2f} s")
    for note in outcome.timing.notes:
        console.print(f"note: {note}")
    t = outcome.training
    inf = getattr(outcome, "inference", None)
    if t is None and inf is not None:
        console.print(
            f"accuracy (bit-exact inference of {inf.checkpoint}, algo={inf.algo}, "
            f"{inf.trained_steps} steps trained): test {inf.test_accuracy:.2%} on "
            f"{inf.test_samples} {inf.dataset} images (batch {inf.eval_batch})")
    elif t is None:
        console.print("accuracy: not trained (timing only: phase=infer, steps=0 or epochs=0)")
    elif t.diverged_at_step is not None:
        console.print(
            f"accuracy: none: training diverged at step {t.diverged_at_step} (loss or weights "
            f"became NaN/inf with {outcome.run.w_bits}/{outcome.run.a_bits}/{outcome.run.g_bits}"
            f"-bit W/A/G, rounding.g={outcome.run.rounding_g}, algo={t.algo})"
        )
    else:
        console.print(
            f"accuracy (bit-exact {outcome.run.w_bits}/{outcome.run.a_bits}/"
            f"{outcome.run.g_bits}-bit W/A/G training, algo={t.algo}): test "
            f"{t.accuracy.test:.2%}, train {t.accuracy.train:.2%} after {t.steps} steps "
            f"({t.epochs} epochs, batch {t.batch}) on {t.dataset}"
        )
