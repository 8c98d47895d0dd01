"""``layers.csv`` (one row per layer x pass, stable columns) and ``report.md``."""

from __future__ import annotations

import csv
import io

from fxpsim.outcome import RunOutcome
from fxpsim.report.tables import (
    LAYER_COLUMNS,
    bound_name,
    energy,
    layer_row,
    layers_by_pass,
    ordered_passes,
)
from fxpsim.results import per_pass, total


def layers_csv(outcome: RunOutcome) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(LAYER_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in outcome.timing.records:
        writer.writerow(layer_row(r))
    return buf.getvalue()


def _md_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report_md(outcome: RunOutcome) -> str:
    hw = outcome.hw.config
    run = outcome.run
    recs = outcome.timing.records
    tot = total(recs)
    passes = per_pass(recs)
    f = hw.freq_hz
    parts = [
        f"# fxpsim run `{outcome.name}`",
        "",
        f"- accelerator: **{hw.name}** ({outcome.hw.source}), {hw.mac_array.rows}x"
        f"{hw.mac_array.cols} {hw.mac_array.dataflow}, {hw.clock.freq_mhz:g} MHz,"
        f" config digest `{outcome.hw.digest[:16]}`",
        f"- model: **{outcome.graph.name}** ({outcome.graph.source}),"
        f" {outcome.graph.macs:,} MACs/sample, {outcome.graph.params:,} parameters",
        f"- step: phase `{run.phase}`, algo `{run.algo}`, batch {run.batch},"
        f" W/A/G bits {run.w_bits}/{run.a_bits}/{run.g_bits}, timing `{run.timing}`",
        f"- energy table: {outcome.timing.energy_table}",
        "",
        "## Totals",
        "",
        _md_table(
            ["cycles", "time (ms)", "energy (uJ)", "MACs", "DRAM bytes", "stall cycles", "bound"],
            [
                [
                    f"{tot.cycles:,}",
                    f"{tot.cycles / f * 1e3:.4f}",
                    f"{tot.energy_pj / 1e6:.3f}",
                    f"{tot.macs:,}",
                    f"{tot.dram_bytes:,}",
                    f"{tot.stall_cycles:,}",
                    bound_name(tot),
                ]
            ],
        ),
        "",
        "## Per pass",
        "",
        _md_table(
            ["pass", "cycles", "energy (uJ)", "MACs", "DRAM bytes", "stall cycles"],
            [
                [
                    p,
                    f"{passes[p].cycles:,}",
                    f"{passes[p].energy_pj / 1e6:.3f}",
                    f"{passes[p].macs:,}",
                    f"{passes[p].dram_bytes:,}",
                    f"{passes[p].stall_cycles:,}",
                ]
                for p in ordered_passes(passes)
            ],
        ),
        "",
        "## Energy by component",
        "",
        _md_table(
            ["component", "energy (uJ)", "share"],
            [
                [k, f"{v / 1e6:.3f}", f"{v / tot.energy_pj:.1%}" if tot.energy_pj else "-"]
                for k, v in sorted(tot.energy_by_component.items, key=lambda kv: -kv[1])
            ],
        ),
        "",
        "## Per layer (cycles by pass)",
        "",
    ]
    layers, pass_names, cell = layers_by_pass(recs)
    rows = []
    for layer in layers:
        ms = [cell.get((layer, p)) for p in pass_names]
        row: list[object] = [layer]
        row += [f"{m.cycles:,}" if m is not None else "" for m in ms]
        e = sum(m.energy_pj for m in ms if m is not None)
        row.append(f"{energy(e) / 1e6:.3f}")
        rows.append(row)
    parts.append(_md_table(["layer", *pass_names, "energy (uJ)"], rows))
    parts.append("")
    return "\n".join(parts)
