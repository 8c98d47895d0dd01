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


def layers_csv(outcome: RunOutcome) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(LAYER_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in outcome.timing.records:
        writer.writerow(layer_row(r))
    return buf.getvalue()
