"""Semantic warnings about a run: results that are valid but probably not what was meant.

* heavy accumulator overflow: more than :data:`OVERFLOW_WARN_FRACTION` of the GEMM outputs
  computed in training overflowed the accumulator (a narrow wrapping accumulator can wreck
  accuracy without any error);
* an algorithm with nothing to act on (``algo=bnrect`` on a model without BatchNorm, LBT or
  Octo's clipping with float gradients, LAQ/FB with float weights);
* a memory's size overridden without its per-access energies or leakage: those are numbers in
  the config, not functions of the size, so they stay those of the old size.

:func:`run_warnings` returns plain sentences; ``summary.json`` stores them (``warnings``), the
terminal and the reports show them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

OVERFLOW_WARN_FRACTION = 1e-3

_MEMORY_KEY = re.compile(r"memory(?:\.([A-Za-z_][\w\-]*)|\[(\d+)\])\.(\w+)$")
_ENERGY_FIELDS = ("read_energy_pj", "write_energy_pj", "leakage_mw", "energy_pj_per_bit")


def overflow_warning(events: int, outputs: int, accumulator: str) -> str | None:
    """The heavy-overflow sentence, or None when ``events / outputs`` is at most 0.1%.

    An event is one add that left the accumulator's range, so one output can count several
    times (a wrapping sum may cross the range again and again): the rate is events per
    GEMM output computed, an upper bound on the fraction of outputs affected."""
    if outputs <= 0 or events <= outputs * OVERFLOW_WARN_FRACTION:
        return None
    rate = events / outputs
    how = f"{rate:.2%} of the" if rate < 1 else f"{rate:.3g} events per"
    return (f"{events:,} accumulator overflow events in training: {how} GEMM output(s) "
            f"computed (warned above 0.1%; accumulator {accumulator}); accuracy is likely "
            f"limited by it: try a wider mac_array.accumulator.bits or overflow=saturate")


def algorithm_warning(algo: str, ops: Iterable[str], w_bits: object, g_bits: object
                      ) -> str | None:
    """The "nothing to act on" sentence for this algorithm and model, or None."""
    if algo == "bnrect" and "batchnorm" not in set(ops):
        return "algo=bnrect rectifies BatchNorm statistics, but the model has no BatchNorm: " \
               "it trains like sgd"
    if algo in ("lbt", "octo") and g_bits == "float":
        return f"algo={algo} acts on the quantization of gradients, but g_bits=float: " \
               "it has nothing to clip"
    if algo in ("laq", "fb") and w_bits == "float":
        return f"algo={algo} acts on quantized weights, but w_bits=float: it trains like sgd"
    return None


def memory_size_warnings(overrides: Iterable[str], memories: list[Mapping[str, Any]]
                         ) -> list[str]:
    """One sentence per memory whose ``size_kib`` was overridden without any of its energy
    or leakage keys (``memory.NAME.key`` or ``memory[i].key`` forms)."""
    touched: dict[str, set[str]] = {}
    for key in overrides:
        m = _MEMORY_KEY.match(key)
        if m is None:
            continue
        name, index, field = m.groups()
        if index is not None:
            i = int(index)
            name = str(memories[i].get("name", i)) if i < len(memories) else index
        touched.setdefault(name, set()).add(field)
    out = []
    for name, fields in touched.items():
        if "size_kib" in fields and not fields & set(_ENERGY_FIELDS):
            out.append(f"memory {name}: size_kib was overridden but its read/write energy and "
                       "leakage were not; they do not rescale with size (set "
                       f"memory.{name}.read_energy_pj, write_energy_pj and leakage_mw too)")
    return out


def run_warnings(outcome: Any) -> list[str]:
    """Every warning for a :class:`~fxpsim.outcome.RunOutcome` (see the module docstring)."""
    from fxpsim.config.run import is_hw_override

    run, hw = outcome.run, outcome.hw.config
    out: list[str] = []
    if outcome.training is not None:
        events = sum(c for s in outcome.training.layers for _, c in s.acc_overflow_events)
        per_step = sum(r.gemm[0] * r.gemm[2] for r in outcome.timing.records
                       if r.gemm is not None)
        acc = hw.mac_array.accumulator
        text = overflow_warning(events, per_step * outcome.training.steps,
                                f"{acc.bits}-bit {acc.overflow}")
        if text:
            out.append(text)
    if run.phase == "train":
        text = algorithm_warning(run.algo, (n.op for n in outcome.graph.nodes), run.w_bits,
                                 run.g_bits)
        if text:
            out.append(text)
    hw_keys = [k for k, _ in outcome.options if is_hw_override(k)]
    out += memory_size_warnings(hw_keys, [m.model_dump() for m in hw.memory])
    return out
