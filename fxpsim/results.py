"""Summable result records: one per layer x pass; a network total is ``sum()`` of them.

Cycles and counts are ints (asserted exactly in tests); energies are floats in pJ.
Breakdowns are :class:`Tally` values (sorted name -> number pairs) so records stay frozen,
hashable and deterministic to serialize.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Tally:
    """An immutable name -> number map that adds key-wise; items are kept sorted by name."""

    items: tuple[tuple[str, float], ...] = ()

    @staticmethod
    def of(mapping: Mapping[str, float]) -> Tally:
        return Tally(tuple(sorted((k, v) for k, v in mapping.items() if v != 0)))

    def __add__(self, other: Tally) -> Tally:
        acc: dict[str, float] = dict(self.items)
        for k, v in other.items:
            acc[k] = acc.get(k, 0) + v
        return Tally.of(acc)

    def get(self, key: str, default: float = 0) -> float:
        return dict(self.items).get(key, default)

    def as_dict(self) -> dict[str, float]:
        return dict(self.items)

    @property
    def total(self) -> float:
        return sum(v for _, v in self.items)


@dataclass(frozen=True)
class Metrics:
    """What one piece of work cost. Adding two Metrics adds every field.

    ``stalls`` names cycles the array waited, by cause (``dram``, ``buffer``, ``vector``...);
    ``stall_cycles`` is their sum. ``bound_compute_cycles``/``bound_dram_cycles`` are the
    roofline bounds (MACs / peak rate; DRAM bytes / achievable bandwidth) of the same work.
    """

    cycles: int = 0
    compute_cycles: int = 0
    stall_cycles: int = 0
    macs: int = 0
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0
    vector_ops: int = 0
    requant_events: int = 0
    rng_bits: int = 0
    bound_compute_cycles: int = 0
    bound_dram_cycles: int = 0
    energy_pj: float = 0.0
    stalls: Tally = field(default_factory=Tally)
    macs_by_mode: Tally = field(default_factory=Tally)
    sram_accesses: Tally = field(default_factory=Tally)  # "<memory>.read" / "<memory>.write"
    energy_by_component: Tally = field(default_factory=Tally)
    # DRAM bytes (reads + writes) by tensor kind: weights, activations, gradients,
    # saved_activations, optimizer_state, psums
    dram_by_kind: Tally = field(default_factory=Tally)
    # cycles of this work hidden under other work by the overlapped schedule: ``cycles`` is
    # its share of the step's timeline, ``cycles + overlap_cycles`` its time alone
    overlap_cycles: int = 0

    def __add__(self, other: Metrics) -> Metrics:
        return Metrics(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes


@dataclass(frozen=True)
class LayerPassResult:
    """One layer x pass of the simulated step (``pass_name`` as the recipe names it)."""

    layer: str
    op: str
    pass_name: str
    metrics: Metrics
    gemm: tuple[int, int, int] | None = None  # (M, K, N) when the pass ran on the MAC array
    precision: str = ""
    utilization: float = 0.0  # MACs / (cycles x peak MACs per cycle)
    mapping: str = ""  # the GEMM's loop nest in compact notation
    binding: str = ""  # the resource that sets the cycles (compute, dram, sram:<m>, requant)
    on_chip: str = ""  # tensors taken from / left on chip: in, out, in+out or -
    search_evaluated: int = 0  # mappings the search evaluated for this record's shape


def sum_metrics(items: Iterable[Metrics]) -> Metrics:
    """``Metrics() + a + b + ...`` in one pass: the same additions in the same order (so the
    same float bits), without a new Metrics per step (10,000-layer models add a lot)."""
    scalars = [f.name for f in fields(Metrics) if f.name not in _TALLIES]
    acc: dict[str, float] = {k: getattr(_ZERO, k) for k in scalars}
    tallies: dict[str, dict[str, float]] = {k: {} for k in _TALLIES}
    for m in items:
        for k in scalars:
            acc[k] += getattr(m, k)
        for k, d in tallies.items():
            for name, v in getattr(m, k).items:
                d[name] = d.get(name, 0) + v
    return Metrics(**acc, **{k: Tally.of(d) for k, d in tallies.items()})  # type: ignore[arg-type]


_ZERO = Metrics()
_TALLIES = tuple(f.name for f in fields(Metrics) if isinstance(getattr(_ZERO, f.name), Tally))


def total(records: Iterable[LayerPassResult]) -> Metrics:
    return sum_metrics(r.metrics for r in records)


def per_pass(records: Iterable[LayerPassResult]) -> dict[str, Metrics]:
    """Totals keyed by pass name, in first-seen order."""
    groups: dict[str, list[Metrics]] = {}
    for r in records:
        groups.setdefault(r.pass_name, []).append(r.metrics)
    return {p: sum_metrics(ms) for p, ms in groups.items()}
