"""``summary.json``: totals, per-pass totals, config echo and versions; no timestamps.

Contract relied on by scripts: ``totals`` has at least ``cycles``, ``energy_pj``, ``macs``,
``dram_bytes``; ``per_pass`` is keyed by pass name with the same fields; ``pass_order`` lists
the pass names in the order the step runs them (JSON keys are sorted, so the order of
``per_pass`` is not it). With ``layers.csv`` this file is all ``fxpsim report`` needs to
re-render ``report.md``/``report.html``.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import cast

from fxpsim.advice import run_warnings
from fxpsim.config.area import area_of
from fxpsim.outcome import RunOutcome
from fxpsim.report import strict_json
from fxpsim.report.tables import metrics_dict, ordered_passes
from fxpsim.results import per_pass, total

SUMMARY_SCHEMA = "fxpsim.summary/1"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("fxpsim", "numpy", "simpy", "pydantic", "pyyaml"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def overrides_dict(options: tuple[tuple[str, str], ...]) -> dict[str, dict[str, str]]:
    """What the user set, as given: ``run`` options and ``hw`` (dotted hwconfig) overrides.
    ``out``/``name``/``format`` are left out: they do not change the result."""
    from fxpsim.config.run import is_hw_override
    from fxpsim.naming import NOT_IN_DIGEST

    out: dict[str, dict[str, str]] = {"hw": {}, "run": {}}
    for key, text in options:
        if key not in NOT_IN_DIGEST:
            out["hw" if is_hw_override(key) else "run"][key] = text
    return out


def _training(outcome: RunOutcome) -> dict[str, object]:
    """``accuracy`` (final test/train fractions and per-epoch history) and the full
    ``training`` record, when the run trained."""
    if outcome.training is None:
        inf = getattr(outcome, "inference", None)
        if inf is None:
            return {}
        s = inf.summary()
        return {"accuracy": {"test": s["test_accuracy"], "train": None, "history": []},
                "inference": s}
    t = outcome.training.summary()
    acc = dict(cast(Mapping[str, object], t["accuracy"]))
    acc["history"] = t["history"]
    if t["diverged_at_step"] is not None:
        acc["diverged_at_step"] = t["diverged_at_step"]
    return {"accuracy": acc, "training": t}


def schedule_dict(outcome: RunOutcome) -> dict[str, object]:
    """How the step's ops were placed in time: the mode, the step's cycles against one op
    at a time, what overlap saved, and each engine's utilisation (work / elapsed)."""
    st = outcome.timing.schedule
    return {
        "mode": st.mode,
        "cycles": st.cycles,
        "sequential_cycles": st.sequential_cycles,
        "overlap_saved_cycles": st.saved_cycles,
        "engine_work_cycles": dict(st.work),
        "utilization": {k: round(v, 6) for k, v in st.utilization().items()},
    }


def summary_dict(outcome: RunOutcome) -> dict[str, object]:
    hw = outcome.hw.config
    records = outcome.timing.records
    passes = per_pass(records)
    tot = total(records)
    graph = outcome.graph
    return {
        "schema": SUMMARY_SCHEMA,
        "name": outcome.name,
        "run": outcome.run.model_dump(mode="json"),
        "overrides": overrides_dict(outcome.options),
        "hw": {
            "name": hw.name,
            "source": outcome.hw.source,
            "digest": outcome.hw.digest,
            "energy_table": outcome.timing.energy_table,
            "freq_mhz": hw.clock.freq_mhz,
            "array": f"{hw.mac_array.rows}x{hw.mac_array.cols} {hw.mac_array.dataflow}",
        },
        "model": {
            "name": graph.name,
            "source": graph.source,
            "input_shape": list(graph.input_shape),
            "num_classes": graph.num_classes,
            "macs_per_sample": graph.macs,
            "params": graph.params,
        },
        "area": area_of(hw).as_dict(),
        "notes": list(outcome.timing.notes),
        "warnings": run_warnings(outcome),
        # mapping-search effort (wall time is left out: reports are byte-identical per seed)
        "search": {"objective": outcome.run.mapping_objective,
                   "searches": outcome.timing.search.searches,
                   "mappings_evaluated": outcome.timing.search.evaluated},
        "schedule": schedule_dict(outcome),
        "totals": metrics_dict(tot, hw.freq_hz),
        "per_pass": {p: metrics_dict(passes[p], hw.freq_hz) for p in ordered_passes(passes)},
        "pass_order": ordered_passes(passes),
        **_training(outcome),
        "config": hw.model_dump(mode="json"),
        "meta": {"versions": _versions(), "config_hash": outcome.hw.digest},
    }


def summary_json(outcome: RunOutcome) -> str:
    return strict_json.dumps(summary_dict(outcome), "summary.json", indent=2, sort_keys=True) + "\n"
