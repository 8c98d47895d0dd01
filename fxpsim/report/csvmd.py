"""``layers.csv``: one row per layer x pass, stable columns (report.md is rendered from it and
summary.json by :mod:`fxpsim.report.rerender`)."""

from __future__ import annotations

import csv
import io

from fxpsim.outcome import RunOutcome
from fxpsim.report.tables import (
    LAYER_COLUMNS,
    layer_row,
)
from fxpsim.timing import scalesim_timing


def layers_csv(outcome: RunOutcome) -> str:
    buf = io.StringIO()
    scalesim = outcome.run.timing == "scalesim"
    extra = scalesim_timing.REPORT_COLUMNS if scalesim else ()
    geoms = scalesim_timing.conv_geometries(outcome.graph) if scalesim else {}
    groups = {n.name: getattr(n.attrs, "groups", 1) for n in outcome.graph.nodes}
    writer = csv.DictWriter(buf, fieldnames=[*LAYER_COLUMNS, *extra], lineterminator="\n")
    writer.writeheader()
    for r in outcome.timing.records:
        row = layer_row(r)
        if scalesim and r.gemm is not None:  # SCALE-Sim's COMPUTE/BANDWIDTH_REPORT items
            geom = geoms.get(r.layer) if r.op == "conv2d" and r.pass_name == "forward" else None
            row.update(scalesim_timing.report_columns(outcome.hw.config, *r.gemm,
                                                      groups[r.layer], geom))
        writer.writerow(row)
    return buf.getvalue()
