"""``fxpsim compare``: run several variants of one step and compare them side by side.

``fxpsim compare hw=edge_npu.yaml model=vgg16 rounding.g=half_even,stochastic,floor``: every
option whose value is a comma list is an *axis*; the variants are the cartesian product of
the axes (first axis slowest, values in the order given). Every other option, the seed
included, is shared. Each variant goes through the same pipeline as ``fxpsim run``
(:func:`fxpsim.api.simulate_run`), and its ``summary.json`` data is what the comparison
uses, so ``compare.json`` holds, per variant: the axis values, totals, per-pass totals,
accuracy (when the run trained) and deltas against the first variant.

``format``, ``out`` and ``name`` are never axes (``format=json,md`` is a list of formats).
The comparison is written atomically to ``out=`` or ``reports/compare-<name>/``.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fxpsim.errors import ConfigError, FxpsimError
from fxpsim.sweeps.spec import Axis

COMPARE_SCHEMA = "fxpsim.compare/1"
MAX_VARIANTS = 64
#: options that are about the comparison itself, not the variants (never axes)
OWN_KEYS: tuple[str, ...] = ("format", "out", "name", "workers", "scheduler", "store")
COMPARE_FORMATS: dict[str, str] = {
    "json": "compare.json", "csv": "compare.csv", "md": "compare.md", "html": "compare.html",
}
#: totals compared against the first variant (dotted paths into summary.json ``totals``)
DELTA_METRICS: tuple[str, ...] = (
    "cycles", "energy_pj", "dram_bytes", "rng_bits", "requant_events",
    "energy_by_component.rng", "energy_by_component.requant",
)


@dataclass(frozen=True)
class Variant:
    """One point of the grid: its label (``rounding.g=floor w_bits=4``), the axis values and
    the full option set it runs with."""

    label: str
    values: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...]


def split_top_level(value: str) -> list[str]:
    """``"a,[b,c],d"`` -> ``["a", "[b,c]", "d"]``: commas inside brackets or braces belong
    to a YAML list/mapping value (``rounding_modes=[rne,stochastic]``), not to the axis."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(value):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            items.append(value[start:i])
            start = i + 1
    items.append(value[start:])
    return items


def split_axes(options: Mapping[str, str]) -> tuple[dict[str, str], list[Axis]]:
    """(shared options, axes). An axis value list must not have empty or repeated items."""
    shared: dict[str, str] = {}
    axes: list[Axis] = []
    for key, value in options.items():
        parts = split_top_level(value)
        if key in OWN_KEYS or len(parts) == 1:
            shared[key] = value
            continue
        items = [v.strip() for v in parts]
        if any(not v for v in items):
            raise ConfigError("command line", key, f"empty item in comma list {value!r}")
        if len(set(items)) != len(items):
            raise ConfigError("command line", key, f"repeated item in comma list {value!r}")
        axes.append(Axis(key, tuple(items)))
    return shared, axes


def grid(options: Mapping[str, str]) -> tuple[list[Axis], list[Variant]]:
    """The axes and the variants (cartesian product, first axis slowest)."""
    shared, axes = split_axes(options)
    if not axes:
        raise FxpsimError("command line: compare needs at least one option with a comma list "
                          "of values, e.g. rounding.g=half_even,stochastic")
    count = 1
    for a in axes:
        count *= len(a.values)
    if count > MAX_VARIANTS:
        raise FxpsimError(f"command line: {count} variants (at most {MAX_VARIANTS}); "
                          "use fewer axis values")
    variants = []
    for combo in itertools.product(*(a.values for a in axes)):
        values = tuple((a.key, v) for a, v in zip(axes, combo, strict=True))
        opts = {k: v for k, v in options.items() if k not in OWN_KEYS}
        opts.update(values)
        opts["format"] = "json"  # a variant only needs its summary data (no trace events)
        label = " ".join(f"{k}={v}" for k, v in values)
        variants.append(Variant(label, values, tuple(opts.items())))
    return axes, variants


def _get(d: Mapping[str, Any], path: str) -> float:
    cur: Any = d
    for part in path.split("."):
        cur = cur.get(part, 0) if isinstance(cur, Mapping) else 0
    return cur if isinstance(cur, int | float) else 0


def accuracy_value(summary: Mapping[str, Any]) -> float | None:
    acc = summary.get("accuracy")
    if isinstance(acc, Mapping):
        for key in ("test", "train"):
            if isinstance(acc.get(key), int | float):
                return acc[key]
    return None


def _delta(value: float, base: float) -> dict[str, float | None]:
    diff = value - base
    return {"abs": round(diff, 3) if isinstance(diff, float) else diff,
            "rel": round(diff / base, 6) if base else None}


def compare_dict(name: str, axes: Sequence[Axis], variants: Sequence[Variant],
                 summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``compare.json`` data from the variants' ``summary.json`` data."""
    base = summaries[0]
    entries = []
    for v, s in zip(variants, summaries, strict=True):
        deltas = {m: _delta(_get(s["totals"], m), _get(base["totals"], m)) for m in DELTA_METRICS}
        acc, acc0 = accuracy_value(s), accuracy_value(base)
        if acc is not None and acc0 is not None:
            deltas["accuracy"] = _delta(acc, acc0)
        entries.append({
            "label": v.label,
            "values": dict(v.values),
            "run_name": s["name"],
            "hw": s["hw"]["name"],
            "model": s["model"]["name"],
            "totals": s["totals"],
            "per_pass": s["per_pass"],
            "pass_order": s.get("pass_order", sorted(s["per_pass"])),
            "accuracy": s.get("accuracy"),
            "area": s.get("area"),
            "deltas": deltas,
        })
    skip = {a.key for a in axes} | {"format"}
    shared = {k: val for k, val in variants[0].options if k not in skip}
    return {
        "schema": COMPARE_SCHEMA,
        "name": name,
        "axes": {a.key: list(a.values) for a in axes},
        "shared": shared,
        "seed": base["run"]["seed"],
        "variants": entries,
    }


def compare_name(options: Mapping[str, str], axes: Sequence[Axis],
                 first: Mapping[str, Any]) -> str:
    if options.get("name", "").strip():
        return options["name"].strip()
    text = f"{first['hw']['name']}-{first['model']['name']}-" + "-".join(a.key for a in axes)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _formats(options: Mapping[str, str]) -> list[str]:
    text = options.get("format", ",".join(COMPARE_FORMATS))
    items = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [t for t in items if t not in COMPARE_FORMATS]
    if bad or not items:
        raise ConfigError("command line", "format",
                          f"expected a comma list of {', '.join(COMPARE_FORMATS)}, got {text!r}")
    return items


def run_compare(options: Mapping[str, str]) -> dict[str, Any]:
    """Run every variant as the points of a sweep (same engine and store as ``fxpsim
    sweep``: inline for one worker, Dask for ``workers=N`` or ``scheduler=``) and return the
    ``compare.json`` data (nothing written). The store is a temporary folder unless
    ``store=DIR`` keeps it (per-variant run folders, results.parquet; a rerun resumes)."""
    import tempfile

    from fxpsim.config.run import parse_run_options
    from fxpsim.sweeps.cli import _workers, check_scheduler
    from fxpsim.sweeps.run import Execution, evaluate_grid
    from fxpsim.sweeps.spec import SweepSpec

    axes, variants = grid(options)
    for v in variants:  # cheap validation of every variant before the first simulation
        parse_run_options(dict(v.options))
    workers = _workers(options.get("workers"))
    scheduler = options.get("scheduler") or None
    check_scheduler(scheduler)
    shared, _ = split_axes(options)
    spec = SweepSpec("command line",
                     tuple((k, val) for k, val in shared.items() if k not in OWN_KEYS),
                     tuple(axes))
    with tempfile.TemporaryDirectory(prefix="fxpsim-compare-") as tmp:
        ex = Execution(out=Path(options.get("store") or tmp), workers=workers,
                       scheduler=scheduler, point_format="json", inline_if_single=True,
                       quiet=False)  # variant i/N with elapsed time and ETA
        rows = evaluate_grid(spec, ex)
        summaries = []
        for v, row in zip(variants, rows, strict=True):
            if row["status"] != "ok":
                raise FxpsimError(f"{v.label}: {row['error']}")
            summaries.append(json.loads((Path(row["run_dir"]) / "summary.json").read_text()))
    return compare_dict(compare_name(options, axes, summaries[0]), axes, variants, summaries)


def write_compare(cmp: Mapping[str, Any], formats: Sequence[str], out: str | None) -> Path:
    from fxpsim.api import write_report_folder
    from fxpsim.compare_report import compare_files
    from fxpsim.report.outdir import default_folder

    target = Path(out) if out else default_folder(f"compare-{cmp['name']}")
    return write_report_folder(target, compare_files(cmp, formats), announce=True)


def compare_from_cli(options: Mapping[str, str]) -> int:
    """``fxpsim compare ...``: run, print the table, write the comparison folder."""
    from fxpsim.compare_report import print_compare

    formats = _formats(options)
    from fxpsim.api import check_out_folder

    out = options.get("out") or None
    check_out_folder(out)
    cmp = run_compare(options)
    folder = write_compare(cmp, formats, out)  # written before anything is printed
    from fxpsim.guard import quiet_stdout

    with quiet_stdout():
        print_compare(cmp)
        print(f"comparison written to {folder}/ "
              f"({', '.join(COMPARE_FORMATS[f] for f in formats)})")
    return 0


class _CallableModule(types.ModuleType):
    """``fxpsim.compare(...)`` is the notebook API (:func:`fxpsim.notebook.compare`) while
    ``fxpsim.compare`` stays this module: importing a submodule sets the package attribute
    of the same name, so a plain function there would be replaced by the module."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from fxpsim.notebook import compare

        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
