"""``fxpsim sweep scheduler=tcp://...`` on a real Dask cluster: a ``dask scheduler`` and two
``dask worker`` processes started by this test on 127.0.0.1 only, and stopped by it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fxpsim.cli import main

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only: the test never listens on another address


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _dask(*args: str) -> subprocess.Popen:
    # `python -m` of the `dask scheduler` / `dask worker` commands, in this interpreter
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


@pytest.fixture()
def cluster():
    port = _free_port()
    address = f"tcp://{HOST}:{port}"
    procs = [_dask("distributed.cli.dask_scheduler", "--host", HOST, "--port", str(port),
                   "--no-dashboard")]
    try:
        for _ in range(2):
            procs.append(_dask("distributed.cli.dask_worker", address, "--nthreads", "1",
                               "--host", HOST, "--no-dashboard", "--no-nanny"))
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="2s") as client:
                    if len(client.scheduler_info()["workers"]) == 2:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the dask cluster did not start")
            time.sleep(0.5)
        yield address, {p.pid for p in procs[1:]}
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_sweep_on_a_scheduler_with_two_worker_processes(cluster, tmp_path: Path,
                                                         monkeypatch, capsys) -> None:
    address, worker_pids = cluster
    monkeypatch.chdir(REPO)
    out = tmp_path / "sw"
    argv = ["sweep", "hw=tiny", "model=lenet5", "batch=2", "steps=0", "w_bits=4,8",
            "mac_array.rows=4,8,16,32", f"scheduler={address}", f"out={out}"]
    assert main(argv) == 0
    assert f"on {address}" in capsys.readouterr().out
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == 8 and set(df["status"]) == {"ok"}
    pids = {int(w.rsplit(":", 1)[1]) for w in df["worker"]}
    assert pids <= worker_pids and len(pids) == 2  # both worker processes ran points
    assert set(df["threads"]) == {max(1, (os.cpu_count() or 1) // 2)}  # pinned to a share
    # the same sweep, again: all points come from the store
    assert main(argv) == 0
    assert "8 from an earlier run; 0 to run" in capsys.readouterr().out
