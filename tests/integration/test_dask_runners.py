"""The train flow on real Dask processes: a temporary LocalCluster, and a scheduler with two
workers started here, as a cluster's would be (they import Loopline's code themselves).

Each must fit the same candidates to the same metrics as the threaded run of the same data
and seed (the session's lifecycle): only where the work runs may differ.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

VARYING = ("fit_seconds", "latency_p95_ms")


def _outcome(trained: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the runner: the choice and every candidate's metrics."""
    candidates = trained["candidates"]
    return {
        "selected": candidates["selected"],
        "candidates": [
            {k: v for k, v in row.items() if k not in VARYING} for row in candidates["candidates"]
        ],
        "holdout": trained["evaluation"]["holdout"],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    # The workers import flows/ and loopline from the checkout, as a cluster's image would.
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.pop("LOOPLINE_TASK_RUNNER", None)
    return env


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def _start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.folder / f"dask-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dask"), *args],
            cwd=self.folder,
            env=env or _worker_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def scheduler(self) -> None:
        self._start("scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard")

    def worker(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self._start(
            "worker",
            self.address,
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            "--local-directory",
            str(self.folder),
            *extra,
            env=env,
        )

    def worker_pids(self, count: int) -> set[int]:
        from distributed import Client

        # Waits as long as the processes take to start: a slow machine is not a failure.
        with Client(self.address, timeout=120) as client:
            client.wait_for_workers(count)
            return set(client.run(os.getpid).values())

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path)
    running.scheduler()
    try:
        yield running
    finally:
        running.stop()


def test_a_local_dask_cluster_fits_the_same_models(
    built: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.train import train

    monkeypatch.setenv("LOOPLINE_TASK_RUNNER", "dask")
    monkeypatch.setenv("LOOPLINE_TASK_WORKERS", "2")
    trained = train()
    assert _outcome(trained) == _outcome(built["train"])
    # Fitted in the cluster's worker processes, not in this one.
    pids = {fit["pid"] for fit in trained["fitted"]}
    assert os.getpid() not in pids


def test_a_scheduler_and_two_workers_fit_the_same_models(
    built: dict[str, Any], cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.train import train

    cluster.worker()
    cluster.worker()
    workers = cluster.worker_pids(2)
    monkeypatch.setenv("LOOPLINE_TASK_RUNNER", cluster.address)
    trained = train()
    assert _outcome(trained) == _outcome(built["train"])
    assert {fit["pid"] for fit in trained["fitted"]} <= workers


def test_a_worker_that_dies_mid_fit_costs_nothing(
    built: dict[str, Any], cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One worker is killed (SIGKILL, as by the OOM killer) when it reaches a fit; Dask
    hands its work to the other worker and the run ends as a healthy one would."""
    from flows.train import train

    cluster.worker()
    doomed = _worker_env() | {"LOOPLINE_CRASH_AT": "fit"}
    # No nanny: a dead worker stays dead rather than being restarted to die again.
    process = cluster.worker("--no-nanny", env=doomed)
    cluster.worker_pids(2)
    monkeypatch.setenv("LOOPLINE_TASK_RUNNER", cluster.address)
    trained = train()
    assert _outcome(trained) == _outcome(built["train"])
    assert process.wait(timeout=60) == -9  # it did die at a fit
    survivors = cluster.worker_pids(1)
    assert {fit["pid"] for fit in trained["fitted"]} <= survivors


def test_an_unreachable_scheduler_is_named(
    built: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.runner import SchedulerUnreachable
    from flows.train import train

    address = f"tcp://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("LOOPLINE_TASK_RUNNER", address)
    with pytest.raises(SchedulerUnreachable, match=address):
        train()


def test_the_cli_names_an_unreachable_scheduler_before_any_flow(
    built: dict[str, Any], project: Path
) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    current = (project / "data" / "raw" / "dataset.parquet.dvc").read_text()
    env = {
        **os.environ,
        "LOOPLINE_PROJECT": str(project),
        "LOOPLINE_TASK_RUNNER": address,
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("loopline")), "run"],
        env=env,
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "nothing changed: the last good data version stays current"
    assert f"the Dask scheduler at {address} does not answer" in lines[-2]
    assert "Traceback" not in done.stderr and "Flow run" not in done.stderr + done.stdout
    assert (project / "data" / "raw" / "dataset.parquet.dvc").read_text() == current
