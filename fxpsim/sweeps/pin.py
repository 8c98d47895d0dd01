"""Dask worker plugin: each worker pins numba/torch to its share of its host's cores (kept
apart from the engine so commands that run inline never import distributed)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from distributed import WorkerPlugin

from fxpsim.sweeps.worker import pin_threads


class PinThreads(WorkerPlugin):
    name = "fxpsim-pin-threads"

    def __init__(self, per_host: dict[str, int], threads: int | None = None) -> None:
        self.per_host = per_host
        self.threads = threads  # None: the worker's share of its host's cores

    def setup(self, worker: Any) -> None:
        host = urlparse(worker.address).hostname or ""
        share = (os.cpu_count() or 1) // max(1, self.per_host.get(host, 1))
        pin_threads(self.threads or max(1, share))
