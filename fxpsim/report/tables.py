"""Plain rows for reports: one flat table per concern, stable column names (SCALE-Sim style).

Everything here is pure data shaping, shared by the CSV, JSON, Markdown and terminal
writers so that they can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable

from fxpsim.results import LayerPassResult, Metrics

#: stall causes always reported as columns (others still appear in summary.json)
STALL_CAUSES: tuple[str, ...] = ("dram", "buffer", "requant", "vector")

LAYER_COLUMNS: tuple[str, ...] = (
    "layer",
    "op",
    "pass",
    "m",
    "k",
    "n",
    "precision",
    "cycles",
    "compute_cycles",
    "stall_cycles",
    *(f"stall_{c}" for c in STALL_CAUSES),
    "macs",
    "dram_read_bytes",
    "dram_write_bytes",
    "energy_pj",
    "utilization",
    "bound_compute_cycles",
    "bound_dram_cycles",
    "bound",
    # added by the mapping search (issue 8); the columns above keep their meaning
    "binding",
    *(f"dram_{k}_bytes" for k in ("weights", "activations", "gradients", "saved_activations",
                                   "optimizer_state", "psums")),
    "on_chip",
    "mapping",
    "search_evaluated",
    # added by the overlapped schedule: cycles of this op hidden under other ops
    # (``cycles`` is its share of the step; alone it takes cycles + overlap_cycles)
    "overlap_cycles",
)

#: DRAM tensor kinds always reported (summary.json ``dram_bytes_by_kind`` has every kind seen)
DRAM_KINDS: tuple[str, ...] = ("weights", "activations", "gradients", "saved_activations",
                               "optimizer_state", "psums")


def energy(value: float) -> float:
    """Energies in reports are rounded to 1 fJ: enough for any design, stable across runs."""
    return round(value, 3)


def bound_name(m: Metrics) -> str:
    """Which roofline bound is larger for this work: ``compute`` or ``dram``. Never ``dram``
    for work whose cycles are below its DRAM bound (``timing=scalesim`` does not model
    memory stalls, so such work was not held up by DRAM)."""
    if m.bound_compute_cycles == 0 and m.bound_dram_cycles == 0:
        return "-"
    if m.bound_dram_cycles > m.bound_compute_cycles and m.cycles >= m.bound_dram_cycles:
        return "dram"
    return "compute"


def layer_row(r: LayerPassResult) -> dict[str, object]:
    m = r.metrics
    mm, kk, nn = r.gemm if r.gemm is not None else ("", "", "")
    row: dict[str, object] = {
        "layer": r.layer,
        "op": r.op,
        "pass": r.pass_name,
        "m": mm,
        "k": kk,
        "n": nn,
        "precision": r.precision,
        "cycles": m.cycles,
        "compute_cycles": m.compute_cycles,
        "stall_cycles": m.stall_cycles,
    }
    for c in STALL_CAUSES:
        row[f"stall_{c}"] = int(m.stalls.get(c))
    row.update(
        macs=m.macs,
        dram_read_bytes=m.dram_read_bytes,
        dram_write_bytes=m.dram_write_bytes,
        energy_pj=energy(m.energy_pj),
        utilization=round(r.utilization, 6),
        bound_compute_cycles=m.bound_compute_cycles,
        bound_dram_cycles=m.bound_dram_cycles,
        bound=bound_name(m),
        binding=r.binding,
    )
    for k in DRAM_KINDS:
        row[f"dram_{k}_bytes"] = int(m.dram_by_kind.get(k))
    row.update(on_chip=r.on_chip, mapping=r.mapping, search_evaluated=r.search_evaluated,
               overlap_cycles=m.overlap_cycles)
    return row


def metrics_dict(m: Metrics, freq_hz: float) -> dict[str, object]:
    """The JSON form of a total (``summary.json`` ``totals`` and ``per_pass`` entries)."""
    return {
        "cycles": m.cycles,
        "seconds": m.cycles / freq_hz,
        "compute_cycles": m.compute_cycles,
        "stall_cycles": m.stall_cycles,
        "stalls": {k: int(v) for k, v in m.stalls.items},
        "overlap_saved_cycles": m.overlap_cycles,
        "macs": m.macs,
        "macs_by_mode": {k: int(v) for k, v in m.macs_by_mode.items},
        "dram_bytes": m.dram_bytes,
        "dram_read_bytes": m.dram_read_bytes,
        "dram_write_bytes": m.dram_write_bytes,
        "dram_bytes_by_kind": {k: int(v) for k, v in m.dram_by_kind.items},
        "sram_accesses": {k: int(v) for k, v in m.sram_accesses.items},
        "vector_ops": m.vector_ops,
        "requant_events": m.requant_events,
        "rng_bits": m.rng_bits,
        "energy_pj": energy(m.energy_pj),
        "energy_by_component": {k: energy(v) for k, v in m.energy_by_component.items},
        "bound_compute_cycles": m.bound_compute_cycles,
        "bound_dram_cycles": m.bound_dram_cycles,
        "bound": bound_name(m),
    }


def ordered_passes(names: Iterable[str]) -> list[str]:
    """Passes in the order the step runs them (the records follow the recipe)."""
    return list(dict.fromkeys(names))
