"""Where points run: a Dask cluster (a LocalCluster of worker processes by default, or an
existing scheduler), or inline in this process (``compare`` with one worker).

Both engines take :class:`~fxpsim.sweeps.worker.Job` objects and hand back finished rows in
completion order; jobs can be added while others run (Optuna's ask-and-tell needs that).
A worker that dies while running a point has the point retried once on another worker
(``allowed-failures: 1``); if that dies too, the point is recorded as failed.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from fxpsim.errors import FxpsimError
from fxpsim.sweeps.worker import Job, evaluate_point, failed_row

CONNECT_TIMEOUT_S = 5
DIED = "worker died twice while running this point (killed, crashed or out of memory)"


class InlineEngine:
    """Runs each job in this process when its row is asked for (no parallelism)."""

    workers = 1

    def __init__(self) -> None:
        self._queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def results(self) -> Iterator[dict[str, Any]]:
        while self._queue:
            yield evaluate_point(self._queue.popleft())

    def close(self) -> None:
        self._queue.clear()


class DaskEngine:
    """A ``distributed.Client`` on a LocalCluster (``workers`` processes, one thread each)
    or on ``scheduler`` (``tcp://host:port``)."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 threads: int | None = None) -> None:
        import logging

        import dask
        from distributed import Client, LocalCluster, as_completed

        self._cluster = None
        # a dead worker's point is retried once, then fails (KilledWorker); local schedulers
        # only: an existing scheduler keeps its own setting
        dask.config.set({"distributed.scheduler.allowed-failures": 1,
                         "distributed.worker.daemon": False})
        if scheduler:
            self.client = _connect(Client, scheduler)
        else:
            n = workers or os.cpu_count() or 1
            self._cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                memory_limit=0, silence_logs=logging.CRITICAL)
            self.client = Client(self._cluster)
        infos = self.client.scheduler_info()["workers"]
        if not infos and scheduler:
            self.close()
            raise FxpsimError(f"scheduler={scheduler}: the scheduler has no workers (start "
                              f"some with: dask worker {scheduler} --nthreads 1)")
        per_host: dict[str, int] = {}
        for addr in infos:
            host = urlparse(addr).hostname or ""
            per_host[host] = per_host.get(host, 0) + 1
        self.workers = len(infos)
        from fxpsim.sweeps.pin import PinThreads

        self.client.register_plugin(PinThreads(per_host, threads))
        self._as_completed = as_completed()
        self._jobs: dict[str, Job] = {}

    def submit(self, job: Job) -> None:
        fut = self.client.submit(evaluate_point, job, key=f"fxpsim-point-{job.digest}",
                                 pure=False)
        self._jobs[fut.key] = job
        self._as_completed.add(fut)

    @property
    def pending(self) -> int:
        return self._as_completed.count()

    def results(self) -> Iterator[dict[str, Any]]:
        while not self._as_completed.is_empty():
            fut = next(self._as_completed)
            job = self._jobs.pop(fut.key)
            try:
                yield fut.result()
            except Exception as exc:  # KilledWorker (died twice) or a lost connection
                name = type(exc).__name__
                yield failed_row(job, DIED if name == "KilledWorker" else f"{name}: {exc}")
            finally:
                fut.release()

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


def _connect(client_cls: Any, address: str) -> Any:
    """A client on ``address`` or a one-line error within about CONNECT_TIMEOUT_S seconds."""
    parsed = urlparse(address)
    if parsed.scheme not in ("tcp", "tls") or not parsed.hostname or not parsed.port:
        raise FxpsimError(f"command line: scheduler: expected tcp://HOST:PORT, got {address!r}")
    try:
        return client_cls(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as exc:
        raise FxpsimError(f"command line: scheduler: cannot reach {address} within "
                          f"{CONNECT_TIMEOUT_S} s ({type(exc).__name__}); is `dask scheduler` "
                          "running there?") from None


def make_engine(workers: int | None, scheduler: str | None, inline_if_single: bool = False,
                threads: int | None = None) -> InlineEngine | DaskEngine:
    if inline_if_single and not scheduler and workers in (None, 1):
        return InlineEngine()
    return DaskEngine(workers, scheduler, threads)
