"""What runs on a worker: one point, start to finish, as a plain function (picklable by
reference, so Dask workers only need fxpsim installed).

:func:`evaluate_point` never raises for a bad point: it returns a row with ``status`` failed
and the one-line error, so a bad point never stops the sweep.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fxpsim.errors import FxpsimError

#: threads this worker process may use (set by :func:`pin_threads`); None = not pinned
_THREADS: list[int | None] = [None]
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Job:
    digest: str
    label: str
    values: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...]
    run_dir: str
    point_format: str
    store_dir: str = ""  # the worker persists its own row there (less work for the client)


def pin_threads(n: int) -> None:
    """Use ``n`` threads in this process: environment for libraries not imported yet, and
    ``set_num_threads`` for numba/torch if they are, so workers do not oversubscribe cores."""
    _THREADS[0] = n
    for var in THREAD_ENV:
        os.environ[var] = str(n)
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, FxpsimError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def evaluate_point(job: Job) -> dict[str, Any]:
    """Run one point (``fxpsim run`` with its options), write its run folder and return its
    store row."""
    from fxpsim import api
    from fxpsim.sweeps.store import row_from_summary

    start = time.perf_counter()
    row: dict[str, Any] = {
        "digest": job.digest, "label": job.label, **dict(job.values),
        "options_json": json.dumps(dict(job.options), sort_keys=True), "run_dir": job.run_dir,
        "worker": f"{os.uname().nodename}:{os.getpid()}", "threads": _THREADS[0],
    }
    try:
        if _THREADS[0] is not None:
            pin_threads(_THREADS[0])  # training may have imported torch/numba since
        opts = dict(job.options)
        opts["format"] = job.point_format
        opts.pop("out", None)
        outcome = api.simulate_run(opts, progress=False)
        files = api.report_files(outcome)
        api.write_report_folder(Path(job.run_dir), files)
        from fxpsim.report.summary import summary_dict

        row.update(row_from_summary(summary_dict(outcome)))
        row.update(status="ok", error=None)
    except Exception as exc:  # a bad point is a result, never the end of the sweep
        row.update(status="failed", error=_one_line(exc))
    row["elapsed_s"] = round(time.perf_counter() - start, 4)
    if job.store_dir:
        from fxpsim.sweeps.store import Store

        Store(job.store_dir).append(row)
        return {**row, "persisted": True}
    return row


def failed_row(job: Job, error: str) -> dict[str, Any]:
    """The row of a point that never returned (its worker died)."""
    return {"digest": job.digest, "label": job.label, **dict(job.values),
            "options_json": json.dumps(dict(job.options), sort_keys=True),
            "run_dir": job.run_dir, "status": "failed", "error": error}
