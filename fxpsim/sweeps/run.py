"""Run a sweep: points (grid, random or Optuna search) -> engine -> store -> DataFrame.

Points already done in the store are skipped (``resume``, the default when the folder is an
earlier sweep's); failed points are run again. Every finished point is persisted before the
next is awaited, so a sweep killed at any moment loses only the points that were running.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fxpsim.errors import ConfigError, FxpsimError
from fxpsim.sweeps.engine import DaskEngine, InlineEngine, make_engine
from fxpsim.sweeps.progress import Progress
from fxpsim.sweeps.spec import METRICS, Point, SweepSpec, grid_values, make_point, random_points
from fxpsim.sweeps.store import Store
from fxpsim.sweeps.worker import Job

SWEEP_SCHEMA = "fxpsim.sweep/1"
STUDY_FILE = "study.journal"
DEFAULT_POINT_FORMAT = "json,csv,md"


@dataclass(frozen=True)
class Execution:
    """How to run (not what): folder, engine, resume, point report formats."""

    out: Path
    workers: int | None = None
    scheduler: str | None = None
    resume: bool = True
    point_format: str = DEFAULT_POINT_FORMAT
    quiet: bool = False
    inline_if_single: bool = False  # compare: one worker runs in this process
    threads: int | None = None  # numba/torch threads per worker; None = its share of cores


def objectives_for(spec: SweepSpec) -> tuple[tuple[str, str], ...]:
    """The spec's objectives; the default set drops accuracy when no point trains."""
    from fxpsim.sweeps.spec import DEFAULT_OBJECTIVES

    if spec.objectives != DEFAULT_OBJECTIVES:
        return spec.objectives
    fixed = dict(spec.fixed)
    axes = {a.key for a in spec.axes}
    timing_only = (fixed.get("phase") == "infer" or fixed.get("steps") == "0"
                   or fixed.get("epochs") == "0") and not axes & {"phase", "steps", "epochs"}
    return tuple(o for o in spec.objectives if not (timing_only and o[0] == "accuracy"))


def _safe_point(spec: SweepSpec, values: Sequence[tuple[str, str]]) -> tuple[Point, str | None]:
    """The point, or (a stand-in keyed by its options, the error) for an invalid one."""
    try:
        return make_point(spec, values), None
    except FxpsimError as exc:  # e.g. w_bits=x or a hw file that does not exist
        opts = {**dict(spec.fixed), **dict(values)}
        digest = hashlib.sha256(json.dumps(opts, sort_keys=True).encode()).hexdigest()
        label = " ".join(f"{k}={v}" for k, v in values)
        return Point(tuple(values), tuple(opts.items()), digest, label), str(exc)


def _job(store: Store, p: Point, fmt: str) -> Job:
    return Job(p.digest, p.label, p.values, p.options, str(store.run_dir(p.digest).resolve()),
               fmt, str(store.folder.resolve()))


def run_sweep(spec: SweepSpec, ex: Execution,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> Any:
    """Run the sweep and return its pandas DataFrame (one row per point; ``pareto`` and
    ``feasible`` columns added). ``results.parquet`` and ``sweep.csv`` are written."""
    store = Store(ex.out)
    store.open({"schema": SWEEP_SCHEMA, "source": spec.source, "mode": spec.mode,
                "fixed": dict(spec.fixed), "axes": {a.key: list(a.values) for a in spec.axes},
                "objectives": dict(objectives_for(spec)),
                "constraints": [c.text for c in spec.constraints],
                "n_trials": spec.n_trials, "seed": spec.seed})
    if spec.mode == "search":
        digests = _search(spec, ex, store, on_row)
    else:
        values = (grid_values(spec) if spec.mode == "grid"
                  else [p.values for p in random_points(spec)])
        digests = _evaluate(spec, ex, store, values, on_row)
    return finish(spec, store, digests)


def evaluate_grid(spec: SweepSpec, ex: Execution) -> list[dict[str, Any]]:
    """Run the grid of ``spec`` and return one stored row per grid point, in grid order
    (points with equal digests share a row); used by ``fxpsim compare``."""
    store = Store(ex.out)
    store.open({"schema": SWEEP_SCHEMA, "source": spec.source, "mode": "grid",
                "fixed": dict(spec.fixed), "axes": {a.key: list(a.values) for a in spec.axes}})
    values = grid_values(spec)
    _evaluate(spec, ex, store, values, None)
    by_digest = {r["digest"]: r for r in store.rows()}
    return [by_digest[_safe_point(spec, v)[0].digest] for v in values]


def _evaluate(spec: SweepSpec, ex: Execution, store: Store,
              values: Sequence[Sequence[tuple[str, str]]],
              on_row: Callable[[dict[str, Any]], None] | None) -> list[str]:
    from fxpsim.sweeps.worker import failed_row

    done = store.done() if ex.resume else set()
    digests: list[str] = []
    todo: list[Point] = []
    bad: list[tuple[Point, str]] = []
    for v in values:
        p, err = _safe_point(spec, v)
        if p.digest in digests:
            continue  # two spellings of one config (rne / half_even): run once
        digests.append(p.digest)
        if err is not None:
            bad.append((p, err))
        elif p.digest not in done:
            todo.append(p)
    progress = Progress(len(digests), skipped=len(digests) - len(todo) - len(bad),
                        quiet=ex.quiet)
    progress.announce(_where(ex))
    for p, err in bad:
        row = failed_row(_job(store, p, ex.point_format), err)
        store.append(row)
        progress.update(running=0, finished_ok=False)
    if todo:
        engine = make_engine(ex.workers, ex.scheduler, ex.inline_if_single, ex.threads)
        try:
            for p in todo:
                engine.submit(_job(store, p, ex.point_format))
            _drain(engine, store, progress, on_row)
        finally:
            engine.close()
    progress.close()
    return digests


def _where(ex: Execution) -> str:
    if ex.scheduler:
        return f"on {ex.scheduler}"
    if ex.inline_if_single and ex.workers in (None, 1):
        return "in this process"
    return f"on a local cluster of {ex.workers or os.cpu_count() or 1} worker processes"


def _drain(engine: InlineEngine | DaskEngine, store: Store, progress: Progress,
           on_row: Callable[[dict[str, Any]], None] | None,
           tell: Callable[[dict[str, Any]], None] | None = None) -> None:
    progress.update(running=min(engine.workers, engine.pending))
    for row in engine.results():
        if not row.pop("persisted", False):
            store.append(row)
        if on_row:
            on_row(row)
        if tell:
            tell(row)
        progress.update(running=min(engine.workers, engine.pending),
                        finished_ok=row["status"] == "ok")


def _metric(row: dict[str, Any], metric: str) -> float | None:
    v = row.get(METRICS[metric][0])
    return float(v) if isinstance(v, int | float) and v == v else None


def _search(spec: SweepSpec, ex: Execution, store: Store,
            on_row: Callable[[dict[str, Any]], None] | None) -> list[str]:
    """Optuna multi-objective search (NSGA-II; TPE for one objective) with ask-and-tell; the
    study lives in ``study.journal`` beside the results, so a rerun continues it."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives = objectives_for(spec)
    if not objectives:
        raise ConfigError(spec.source, "objectives", "search needs at least one objective")

    storage = JournalStorage(JournalFileBackend(str(store.folder / STUDY_FILE)))
    # a resumed study reseeds with its trial count, so it does not replay its first draws
    prior = _trial_count(storage, spec)
    seed = spec.seed + prior
    n = spec.n_trials or 1
    sampler = (optuna.samplers.NSGAIISampler(seed=seed, population_size=min(50, max(4, n // 5)))
               if len(objectives) > 1 else optuna.samplers.TPESampler(seed=seed))
    study = optuna.create_study(
        study_name=spec.name or "fxpsim-sweep", storage=storage, sampler=sampler,
        directions=["maximize" if d == "max" else "minimize" for _, d in objectives],
        load_if_exists=True)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
    remaining = max(0, (spec.n_trials or 0) - len(finished))
    digests = [t.user_attrs["digest"] for t in finished if "digest" in t.user_attrs]
    done = store.done() if ex.resume else set()
    waiting: dict[str, list[Any]] = {}
    progress = Progress(len(finished) + remaining, skipped=len(finished), quiet=ex.quiet)
    progress.announce(_where(ex))

    def tell(row: dict[str, Any]) -> None:
        for trial in waiting.pop(row["digest"], []):
            values = [_metric(row, m) for m, _ in objectives]
            known = [v for v in values if v is not None]
            for c in spec.constraints:  # feasible when <= 0 (Optuna's convention)
                trial.set_constraint(c.text, c.violation(_metric(row, c.metric)))
            if row.get("status") != "ok" or len(known) != len(values):
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, known)

    engine = make_engine(ex.workers, ex.scheduler, ex.inline_if_single, ex.threads) if remaining else None
    try:
        asked = 0
        while asked < remaining or waiting:
            while asked < remaining and sum(map(len, waiting.values())) < max(1, engine.workers):  # type: ignore[union-attr]
                trial = study.ask()
                asked += 1
                vals = [(a.key, str(trial.suggest_categorical(a.key, list(a.values))))
                        for a in spec.axes]
                p, err = _safe_point(spec, vals)
                trial.set_user_attr("digest", p.digest)
                digests.append(p.digest)
                first = p.digest not in waiting
                waiting.setdefault(p.digest, []).append(trial)
                if err is not None or p.digest in done:
                    from fxpsim.sweeps.worker import failed_row

                    row = (failed_row(_job(store, p, ex.point_format), err) if err is not None
                           else store.rows([p.digest])[0])
                    if err is not None:
                        store.append(row)
                    tell(row)
                    progress.update(running=0, finished_ok=row["status"] == "ok")
                elif first:
                    engine.submit(_job(store, p, ex.point_format))  # type: ignore[union-attr]
            if waiting:
                row = next(engine.results())  # type: ignore[union-attr]
                if not row.pop("persisted", False):
                    store.append(row)
                done.add(row["digest"]) if row["status"] == "ok" else None
                if on_row:
                    on_row(row)
                tell(row)
                progress.update(running=min(engine.workers, engine.pending),  # type: ignore[union-attr]
                                finished_ok=row["status"] == "ok")
    finally:
        if engine is not None:
            engine.close()
    progress.close()
    return list(dict.fromkeys(digests))


def _trial_count(storage: Any, spec: SweepSpec) -> int:
    import optuna

    name = spec.name or "fxpsim-sweep"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    return len(optuna.load_study(study_name=name, storage=storage).trials) if name in names else 0


def finish(spec: SweepSpec, store: Store, digests: Sequence[str]) -> Any:
    """The DataFrame of ``digests`` (in order), with ``feasible`` and ``pareto`` columns;
    written as ``results.parquet`` and ``sweep.csv``."""
    import pandas as pd

    from fxpsim.sweeps.pareto import pareto_mask

    frame = pd.DataFrame(store.rows(digests))
    if frame.empty:
        frame = pd.DataFrame({"digest": [], "status": []})
    for col in ("accuracy", "area_mm2", "energy_pj", "cycles"):
        if col not in frame:
            frame[col] = None
    objectives = objectives_for(spec)
    feasible = frame["status"] == "ok"
    for c in spec.constraints:
        values = pd.to_numeric(frame[METRICS[c.metric][0]], errors="coerce")
        feasible &= values.map(lambda v, c=c: c.holds(None if pd.isna(v) else float(v)))
    frame["feasible"] = feasible.astype(bool)
    frame["pareto"] = pareto_mask(frame, objectives, frame["feasible"])
    store.write_table(frame)
    return frame
