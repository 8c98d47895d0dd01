"""The rich table printed by ``fxpsim run``: per layer cycles by pass, utilization, energy,
bound, and totals."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from fxpsim.outcome import RunOutcome
from fxpsim.report.tables import bound_name, layers_by_pass
from fxpsim.results import LayerPassResult, Metrics, total


def _util(records: list[LayerPassResult], layer: str, peak_per_cycle: float) -> str:
    ms = [r.metrics for r in records if r.layer == layer and r.gemm is not None]
    cyc = sum(m.cycles for m in ms)
    macs = sum(m.macs for m in ms)
    return f"{macs / (cyc * peak_per_cycle):.1%}" if cyc and peak_per_cycle else "-"


def print_run(outcome: RunOutcome, console: Console | None = None) -> None:
    console = console or Console()
    recs = list(outcome.timing.records)
    hw = outcome.hw.config
    layers, passes, cell = layers_by_pass(recs)
    # utilization against the array's INT8-equivalent peak of the mode each layer used is
    # in layers.csv; here the table shows MAC-array busy share per layer
    peak = hw.mac_array.rows * hw.mac_array.cols
    table = Table(
        title=f"{outcome.name}: {outcome.graph.name} on {hw.name} "
        f"({outcome.run.phase}, algo={outcome.run.algo}, batch={outcome.run.batch})",
        show_footer=True,
    )
    tot = total(recs)
    table.add_column("layer", footer="total")
    for p in passes:
        pm = sum((r.metrics for r in recs if r.pass_name == p), Metrics())
        table.add_column(f"{p} cyc", justify="right", footer=f"{pm.cycles:,}")
    table.add_column("util", justify="right")
    table.add_column("energy uJ", justify="right", footer=f"{tot.energy_pj / 1e6:,.2f}")
    table.add_column("bound", footer=bound_name(tot))
    for layer in layers:
        ms = [cell.get((layer, p)) for p in passes]
        lm = sum((m for m in ms if m is not None), Metrics())
        table.add_row(
            layer,
            *[f"{m.cycles:,}" if m is not None else "" for m in ms],
            _util(recs, layer, peak),
            f"{lm.energy_pj / 1e6:,.2f}",
            bound_name(lm),
        )
    console.print(table)
    secs = tot.cycles / hw.freq_hz
    console.print(
        f"total: {tot.cycles:,} cycles = {secs * 1e3:.3f} ms at {hw.clock.freq_mhz:g} MHz, "
        f"{tot.energy_pj / 1e6:,.2f} uJ, {tot.macs:,} MACs, {tot.dram_bytes:,} DRAM bytes, "
        f"stalls {tot.stall_cycles:,} cycles"
    )
