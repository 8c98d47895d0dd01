"""What a sweep is: fixed options, axes, constraints, objectives, mode; and its points.

A sweep comes from the command line (``fxpsim sweep model=lenet5 w_bits=4,8 ...``: a comma
list is an axis, as in ``compare``) or from a YAML file (``sweep=path.yaml``)::

    fixed: {hw: edge_npu, model: lenet5, steps: 0}
    axes: {w_bits: [4, 8], mac_array.rows: [8, 16, 32]}
    constraints: [area_mm2<=2]
    objectives: {accuracy: max, energy_pj: min}
    mode: grid            # grid | random | search
    n_trials: 20          # random and search
    seed: 0               # the sampler's seed (the runs' seed is the run option ``seed``)

A :class:`Point` is one resolved option set; its ``digest`` is the sha256 of the fully
resolved config (hw after overrides, model, run options; ``out``/``name``/``format`` are not
part of it), the key of the results store.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fxpsim.errors import ConfigError

MODES: tuple[str, ...] = ("grid", "random", "search")
#: options about the sweep itself (never axes, never passed to a point)
SWEEP_KEYS: tuple[str, ...] = (
    "sweep", "out", "name", "format", "workers", "scheduler", "mode", "n_trials", "sweep_seed",
    "objectives", "constraints", "resume", "point_format", "store", "threads",
)
#: metrics a constraint or objective may name -> (column in the results, default direction)
METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("accuracy", "max"),
    "accuracy_train": ("accuracy_train", "max"),
    "cycles": ("cycles", "min"),
    "seconds": ("seconds", "min"),
    "energy_pj": ("energy_pj", "min"),
    "energy_uj": ("energy_uj", "min"),
    "area_mm2": ("area_mm2", "min"),
    "dram_bytes": ("dram_bytes", "min"),
    "macs": ("macs", "min"),
    "stall_cycles": ("stall_cycles", "min"),
    "rng_bits": ("rng_bits", "min"),
    "requant_events": ("requant_events", "min"),
}
DEFAULT_OBJECTIVES: tuple[tuple[str, str], ...] = (
    ("accuracy", "max"), ("energy_pj", "min"), ("cycles", "min"), ("area_mm2", "min"))
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>|==)\s*([-+0-9.eE]+)\s*$")
MAX_POINTS = 1_000_000
#: run options that name files: made absolute so workers in other folders find them
PATH_KEYS: tuple[str, ...] = ("hw", "model", "data_dir")


@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str
    bound: float

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return {"<=": value <= self.bound, ">=": value >= self.bound, "<": value < self.bound,
                ">": value > self.bound, "==": value == self.bound}[self.op]

    def violation(self, value: float | None) -> float:
        """Optuna's convention: <= 0 when satisfied, the amount of violation otherwise."""
        if value is None:
            return 1.0
        if self.holds(value):
            return 0.0
        return abs(value - self.bound) or 1.0

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


@dataclass(frozen=True)
class SweepSpec:
    source: str  # the YAML file, or "command line"
    fixed: tuple[tuple[str, str], ...]
    axes: tuple[Axis, ...]
    constraints: tuple[Constraint, ...] = ()
    objectives: tuple[tuple[str, str], ...] = DEFAULT_OBJECTIVES
    mode: str = "grid"
    n_trials: int | None = None
    seed: int = 0
    name: str = ""

    @property
    def size(self) -> int:
        n = 1
        for a in self.axes:
            n *= len(a.values)
        return n


@dataclass(frozen=True)
class Point:
    """One option set to run. ``values`` are the axis values, ``options`` everything."""

    values: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...]
    digest: str = ""
    label: str = field(default="", compare=False)


# ---- parsing ------------------------------------------------------------------------------


def _axis(source: str, key: str, items: Sequence[object], where: str) -> Axis:
    values = [_scalar_text(source, where, v) for v in items]
    if not values:
        raise ConfigError(source, where, "axis has no values")
    if any(not v for v in values):
        raise ConfigError(source, where, f"empty value in axis {values!r}")
    if len(set(values)) != len(values):
        raise ConfigError(source, where, f"repeated value in axis {values!r}")
    return Axis(key, tuple(values))


def _scalar_text(source: str, where: str, v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float | str):
        return str(v).strip()
    raise ConfigError(source, where, f"expected a number or a string, got {type(v).__name__}")


def parse_constraint(source: str, where: str, text: str) -> Constraint:
    m = _CONSTRAINT.match(text)
    if not m:
        raise ConfigError(source, where,
                          f"expected METRIC<=NUMBER (or <, >=, >, ==), got {text!r}")
    metric, op, num = m.groups()
    if metric not in METRICS:
        raise ConfigError(source, where, f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    try:
        bound = float(num)
    except ValueError:
        raise ConfigError(source, where, f"expected a number after {op}, got {num!r}") from None
    return Constraint(metric, op, bound)


def parse_objective(source: str, where: str, metric: str, direction: str) -> tuple[str, str]:
    if metric not in METRICS:
        raise ConfigError(source, where, f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    if direction not in ("min", "max"):
        raise ConfigError(source, where, f"expected min or max, got {direction!r}")
    return metric, direction


def _int(source: str, where: str, v: object, lo: int, hi: int) -> int:
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError(source, where, f"expected an integer in {lo}..{hi}, got {v!r}")
    return v


def _check_option_keys(source: str, prefix: str, keys: Sequence[str]) -> None:
    """Every fixed key or axis key must be a run option or a hwconfig override."""
    from fxpsim.config.run import HW_OVERRIDE_ROOTS, RUN_KEYS, is_hw_override

    for key in keys:
        if key not in RUN_KEYS and not is_hw_override(key):
            valid = ", ".join(list(RUN_KEYS) + [f"{r}.*" for r in HW_OVERRIDE_ROOTS])
            raise ConfigError(source, f"{prefix}{key}", f"unknown option; valid: {valid}")


def spec_from_cli(options: Mapping[str, str], *, check: bool = True) -> SweepSpec:
    """Fixed options and axes (comma lists) from ``key=value`` options; sweep keys apart.
    ``check=False``: a partial spec (overrides of a sweep file), not checked as a whole."""
    src = "command line"
    fixed: dict[str, str] = {}
    axes: list[Axis] = []
    for key, value in options.items():
        if key in SWEEP_KEYS:
            continue
        if "," in value:
            axes.append(_axis(src, key, [v.strip() for v in value.split(",")], key))
        else:
            fixed[key] = value
    _check_option_keys(src, "", [*fixed, *(a.key for a in axes)])
    objectives = DEFAULT_OBJECTIVES
    if options.get("objectives"):
        objectives = tuple(
            parse_objective(src, "objectives", *(_split_objective(item)))
            for item in options["objectives"].split(","))
    constraints = tuple(parse_constraint(src, "constraints", c)
                        for c in options.get("constraints", "").split(",") if c.strip())
    mode = options.get("mode", "grid")
    if mode not in MODES:
        raise ConfigError(src, "mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
    n_trials = (_int(src, "n_trials", options["n_trials"], 1, MAX_POINTS)
                if "n_trials" in options else None)
    seed = _int(src, "sweep_seed", options.get("sweep_seed", "0"), 0, 2**63 - 1)
    spec = SweepSpec(src, tuple(fixed.items()), tuple(axes), constraints, objectives, mode,
                     n_trials, seed, options.get("name", "").strip())
    return _checked(spec, src) if check else spec


def _split_objective(item: str) -> tuple[str, str]:
    metric, _, direction = item.strip().partition(":")
    return metric.strip(), (direction.strip() or METRICS.get(metric.strip(), ("", "min"))[1])


def load_sweep_yaml(path: str, overrides: Mapping[str, str] | None = None) -> SweepSpec:
    """Read and validate a sweep file; ``overrides`` (command-line ``key=value``) are added to
    ``fixed`` (a comma list adds an axis)."""
    from fxpsim.config.load import parse_yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read the sweep file: {exc.strerror or exc}") from None
    data = parse_yaml(text, path)
    if not isinstance(data, dict):
        raise ConfigError(path, "", "expected a mapping at the top level (fixed:, axes:, ...)")
    allowed = ("fixed", "axes", "constraints", "objectives", "mode", "n_trials", "seed", "name")
    for key in data:
        if key not in allowed:
            raise ConfigError(path, str(key), f"unknown key (valid: {', '.join(allowed)})")
    fixed_raw = data.get("fixed") or {}
    if not isinstance(fixed_raw, dict):
        raise ConfigError(path, "fixed", "expected a mapping of run options")
    fixed = {str(k): _scalar_text(path, f"fixed.{k}", v) for k, v in fixed_raw.items()}
    axes_raw = data.get("axes")
    if not isinstance(axes_raw, dict) or not axes_raw:
        raise ConfigError(path, "axes", "expected a mapping of option -> list of values")
    axes = []
    for key, items in axes_raw.items():
        if not isinstance(items, list):
            raise ConfigError(path, f"axes.{key}", "expected a list of values")
        axes.append(_axis(path, str(key), items, f"axes.{key}"))
    _check_option_keys(path, "fixed.", list(fixed))
    _check_option_keys(path, "axes.", [a.key for a in axes])
    cons_raw = data.get("constraints") or []
    if not isinstance(cons_raw, list):
        raise ConfigError(path, "constraints", "expected a list such as [area_mm2<=2]")
    constraints = tuple(parse_constraint(path, f"constraints[{i}]", str(c))
                        for i, c in enumerate(cons_raw))
    obj_raw = data.get("objectives")
    objectives = DEFAULT_OBJECTIVES
    if obj_raw is not None:
        if not isinstance(obj_raw, dict) or not obj_raw:
            raise ConfigError(path, "objectives", "expected a mapping metric: min|max")
        objectives = tuple(parse_objective(path, f"objectives.{k}", str(k), str(v))
                           for k, v in obj_raw.items())
    mode = data.get("mode", "grid")
    if mode not in MODES:
        raise ConfigError(path, "mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
    n_trials = (_int(path, "n_trials", data["n_trials"], 1, MAX_POINTS)
                if "n_trials" in data else None)
    seed = _int(path, "seed", data.get("seed", 0), 0, 2**63 - 1)
    spec = SweepSpec(path, tuple(fixed.items()), tuple(axes), constraints, objectives, mode,
                     n_trials, seed, str(data.get("name", "") or "").strip())
    if overrides:
        cli = spec_from_cli(overrides, check=False)
        taken = {k for k, _ in cli.fixed} | {a.key for a in cli.axes}
        given = set(overrides)
        spec = SweepSpec(
            path, tuple((k, v) for k, v in spec.fixed if k not in taken) + cli.fixed,
            tuple(a for a in spec.axes if a.key not in taken) + cli.axes,
            cli.constraints if "constraints" in given else spec.constraints,
            cli.objectives if "objectives" in given else spec.objectives,
            cli.mode if "mode" in given else spec.mode,
            cli.n_trials if "n_trials" in given else spec.n_trials,
            cli.seed if "sweep_seed" in given else spec.seed,
            cli.name or spec.name)
    return _checked(spec, path)


def _checked(spec: SweepSpec, src: str) -> SweepSpec:
    if not spec.axes:
        raise ConfigError(src, "axes", "a sweep needs at least one axis (an option with a "
                                       "comma list of values, e.g. w_bits=4,8)")
    keys = [a.key for a in spec.axes]
    dup = {k for k in keys if keys.count(k) > 1} | ({k for k, _ in spec.fixed} & set(keys))
    if dup:
        raise ConfigError(src, sorted(dup)[0], "given both as an axis and fixed (or twice)")
    if spec.size > MAX_POINTS:
        raise ConfigError(src, "axes", f"{spec.size} points (at most {MAX_POINTS})")
    if spec.mode in ("random", "search") and spec.n_trials is None:
        raise ConfigError(src, "n_trials", f"required with mode {spec.mode}")
    return spec


# ---- points -------------------------------------------------------------------------------


def absolute_paths(options: Mapping[str, str]) -> dict[str, str]:
    """Options with ``hw``/``model``/``data_dir`` made absolute when they name a file here
    (``model=net.py:Net`` keeps its ``:Net``)."""
    out = dict(options)
    for key in PATH_KEYS:
        val = out.get(key)
        if not val:
            continue
        file_part, sep, cls = val.rpartition(":") if ".py:" in val else (val, "", "")
        path = Path(file_part)
        if path.exists() and not path.is_absolute():
            out[key] = f"{path.resolve()}{sep}{cls}"
    return out


def make_point(spec: SweepSpec, values: Sequence[tuple[str, str]]) -> Point:
    opts = absolute_paths({**dict(spec.fixed), **dict(values)})
    label = " ".join(f"{k}={v}" for k, v in values)
    return Point(tuple(values), tuple(opts.items()), point_digest(opts), label)


def grid_values(spec: SweepSpec) -> list[tuple[tuple[str, str], ...]]:
    """The axis values of every grid point (first axis slowest)."""
    return [tuple((a.key, v) for a, v in zip(spec.axes, combo, strict=True))
            for combo in itertools.product(*(a.values for a in spec.axes))]


def grid_points(spec: SweepSpec) -> list[Point]:
    return [make_point(spec, v) for v in grid_values(spec)]


def random_points(spec: SweepSpec) -> list[Point]:
    """``n_trials`` distinct grid points drawn with the sweep's seed (all if fewer)."""
    import random

    rng = random.Random(spec.seed)
    n = min(spec.n_trials or spec.size, spec.size)
    picks = rng.sample(range(spec.size), n)
    sizes = [len(a.values) for a in spec.axes]
    out = []
    for flat in picks:
        idx = []
        for s in reversed(sizes):
            idx.append(flat % s)
            flat //= s
        idx.reverse()
        out.append(make_point(spec, [(a.key, a.values[i])
                                     for a, i in zip(spec.axes, idx, strict=True)]))
    return out


_HW_CACHE: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}


def point_digest(options: Mapping[str, str]) -> str:
    """sha256 of the fully resolved config: hw digest after overrides, the run options
    (validated and canonical, without out/name/format) and the model's file content when
    the model is a file. Raises ConfigError for an invalid point."""
    from fxpsim.config.load import load_hwconfig
    from fxpsim.config.run import parse_run_options

    run, overrides = parse_run_options(options)
    key = (run.hw, tuple(overrides.items()))
    if key not in _HW_CACHE:  # grids repeat the same hw many times; loading costs ~1 ms
        _HW_CACHE[key] = load_hwconfig(run.hw, overrides).digest
    resolved: dict[str, Any] = run.model_dump(mode="json", exclude={"out", "name", "format"})
    resolved["hw_digest"] = _HW_CACHE[key]
    model_file = run.model.rsplit(":", 1)[0] if ".py:" in run.model else run.model
    if os.path.isfile(model_file):
        resolved["model_sha256"] = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
