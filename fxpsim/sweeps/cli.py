"""``fxpsim sweep ...`` and ``fxpsim.sweep(...)``: options -> spec + execution -> reports."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from fxpsim.errors import ConfigError, FxpsimError
from fxpsim.sweeps.run import DEFAULT_POINT_FORMAT, Execution, objectives_for, run_sweep
from fxpsim.sweeps.spec import SweepSpec, load_sweep_yaml, spec_from_cli

SRC = "command line"
EXEC_KEYS = ("out", "workers", "scheduler", "resume", "point_format", "store", "format",
             "threads")


def _workers(text: str | None, key: str = "workers") -> int | None:
    if text is None or text.strip() == "":
        return None
    if not text.strip().isdigit() or not 1 <= int(text) <= 4096:
        raise ConfigError(SRC, key, f"expected an integer in 1..4096, got {text!r}")
    return int(text)


def _bool(key: str, text: str) -> bool:
    low = text.strip().lower()
    if low not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(SRC, key, f"expected true or false, got {text!r}")
    return low in ("true", "1", "yes")


def _point_format(text: str) -> str:
    from fxpsim.config.run import FORMATS

    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or any(t not in FORMATS for t in items):
        raise ConfigError(SRC, "point_format",
                          f"expected a comma list of {', '.join(FORMATS)}, got {text!r}")
    return ",".join(items)


def check_scheduler(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast (before any folder is created) when the scheduler cannot be reached."""
    if not address:
        return
    u = urlparse(address)
    if u.scheme not in ("tcp", "tls") or not u.hostname or not u.port:
        raise ConfigError(SRC, "scheduler", f"expected tcp://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((u.hostname, u.port), timeout=timeout).close()
    except OSError as exc:
        raise FxpsimError(f"{SRC}: scheduler: cannot reach {address} within {timeout:g} s "
                          f"({exc.strerror or type(exc).__name__}); is `dask scheduler` "
                          "running there?") from None


def sweep_name(spec: SweepSpec) -> str:
    if spec.name:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", spec.name)
    fixed = dict(spec.fixed)
    text = "-".join([fixed.get("hw", "edge_npu"), fixed.get("model", "vgg16"),
                     *(a.key for a in spec.axes)])
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(text).name)


def prepare(options: Mapping[str, str]) -> tuple[SweepSpec, Execution]:
    """Validate everything (spec, execution options, scheduler) before anything runs."""
    rest = {k: v for k, v in options.items() if k not in EXEC_KEYS and k != "sweep"}
    if options.get("sweep"):
        spec = load_sweep_yaml(options["sweep"], overrides=rest)
    else:
        spec = spec_from_cli(rest)
    if "format" in options:
        raise ConfigError(SRC, "format", "a sweep writes sweep.html, sweep.csv and "
                          "results.parquet; use point_format= for each point's run folder")
    scheduler = options.get("scheduler") or None
    workers = _workers(options.get("workers"))
    if scheduler and workers:
        raise ConfigError(SRC, "workers", "give workers= or scheduler=, not both (a "
                          "scheduler's workers are started with dask worker)")
    check_scheduler(scheduler)
    out = Path(options.get("out") or Path("reports") / f"sweep-{sweep_name(spec)}")
    ex = Execution(out=out, workers=workers, scheduler=scheduler,
                   threads=_workers(options.get("threads"), "threads"),
                   resume=_bool("resume", options.get("resume", "true")),
                   point_format=_point_format(options.get("point_format",
                                                          DEFAULT_POINT_FORMAT)))
    return spec, ex


def write_reports(spec: SweepSpec, ex: Execution, frame: Any) -> None:
    from fxpsim.sweeps.report import sweep_html
    from fxpsim.sweeps.store import Store

    Store(ex.out).write_text("sweep.html", sweep_html(frame, spec, objectives_for(spec),
                                                      sweep_name(spec)))


def sweep_from_cli(options: Mapping[str, str]) -> int:
    import sys

    from fxpsim.sweeps.report import print_pareto

    spec, ex = prepare(options)
    try:
        frame = run_sweep(spec, ex)
    except KeyboardInterrupt:
        print(f"\nfxpsim: interrupted; the points that finished are stored in {ex.out}/ "
              "(rerun the same command to resume)", file=sys.stderr)
        return 130
    write_reports(spec, ex, frame)
    print_pareto(frame, objectives_for(spec), [a.key for a in spec.axes])
    failed = int((frame["status"] != "ok").sum())
    print(f"sweep written to {ex.out}/ (sweep.html, sweep.csv, results.parquet, runs/); "
          f"{len(frame) - failed} points done, {failed} failed")
    return 0


def _text(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    return str(v)


def sweep(sweep_file: str | os.PathLike[str] | None = None, /, *,
          options: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """Notebook API: run a sweep and return its pandas DataFrame (one row per point).

    A list value is an axis, anything else fixed; dotted keys go in ``options``::

        df = fxpsim.sweep(model="lenet5", steps=0, w_bits=[4, 8],
                          options={"mac_array.rows": [8, 16]}, workers=2)
    """
    opts = {**(options or {}), **kwargs}
    if sweep_file is not None:
        opts["sweep"] = os.fspath(sweep_file)
    text = {k: _text(v) for k, v in opts.items()}
    spec, ex = prepare(text)
    frame = run_sweep(spec, ex)
    write_reports(spec, ex, frame)
    return frame
