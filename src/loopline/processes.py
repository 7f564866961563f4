"""The platform's local servers as processes: start, wait until ready, stop.

Prefect, ``bentoml serve``, the served deployments, Streamlit and the simulator, each in
its own process group with its log in the state folder; ``loopline.platform`` composes
them into ``make up`` and the demo.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from loopline.serving.tls import tls_files, trusting
from loopline.settings import Paths

HOST = "127.0.0.1"
PREFECT_PORT = 4200
SERVING_PORT = 3000
DASHBOARD_PORT = 8501


def _bin(name: str) -> str:
    # The console scripts of this environment, whatever PATH says.
    return str(Path(sys.executable).with_name(name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A server this command started; stopped with its whole process group."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    # The certificate an https server presents: what wait_ready verifies it against.
    certfile: Path | None = None

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start(name: str, command: list[str], url: str, paths: Paths, env: dict[str, str]) -> Service:
    """Start a server in its own process group, logging to the state folder."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    log = paths.logs / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=paths.project,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, process, url, log)


def wait_ready(service: Service, path: str, timeout: float = 180) -> float:
    """Poll ``path`` until it answers 200; fail with the log's tail if the process dies."""
    started = time.monotonic()
    verify = trusting(service.certfile)
    while time.monotonic() - started < timeout:
        if service.process.poll() is not None:
            tail = service.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{tail}")
        try:
            if httpx.get(service.url + path, timeout=2, verify=verify).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{service.name} not ready at {service.url}{path} after {timeout:.0f}s")


def start_prefect(paths: Paths, port: int = PREFECT_PORT) -> Service:
    command = [_bin("prefect"), "server", "start", "--host", HOST, "--port", str(port)]
    command.append("--analytics-off")
    return start("prefect", command, f"http://{HOST}:{port}", paths, {})


def start_serving(
    paths: Paths,
    port: int = SERVING_PORT,
    model_tag: str | None = None,
    workers: int | None = None,
) -> Service:
    """``bentoml serve`` the service; ``workers`` overrides LOOPLINE_SERVING_WORKERS.

    With ``serving.tls`` set (:func:`tls_files`) it serves HTTPS only, at an https url.
    """
    from loopline.serving.workers import WORKERS_ENV

    tls = tls_files(paths)  # before starting anything: a missing file is a config error
    command = [_bin("bentoml"), "serve", "bentos.service:ChurnService"]
    command += ["--host", HOST, "--port", str(port), "--working-dir", str(paths.project)]
    if tls is not None:
        # Hidden in `bentoml serve --help`, but BentoML's own options, passed to uvicorn.
        command += ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])]
    # OpenMP/BLAS threads are pinned per worker by the service's own envs.
    env = {"LOOPLINE_MODEL_TAG": model_tag} if model_tag else {}
    if workers is not None:
        env[WORKERS_ENV] = str(workers)
    scheme = "http" if tls is None else "https"
    service = start("serving", command, f"{scheme}://{HOST}:{port}", paths, env)
    return service if tls is None else replace(service, certfile=tls[0])


def serving_workers(service: Service) -> list[int]:
    """Pids of the worker processes of a ``bentoml serve`` this command started."""
    import psutil

    # The serve process is BentoML's arbiter (circus); each worker runs this module.
    children = psutil.Process(service.process.pid).children(recursive=True)
    return sorted(c.pid for c in children if _is_worker(c))


def _is_worker(process: Any) -> bool:
    import psutil

    try:
        return "_bentoml_impl.worker.service" in process.cmdline()
    except psutil.Error:  # gone between listing and reading: not a worker any more
        return False


def start_deployments(paths: Paths) -> Service:
    """Serve the Prefect deployments (schedules, event triggers, dashboard actions)."""
    return start("deployments", [_bin("loopline"), "deployments"], "", paths, {})


def dashboard_command(app: Path, port: int = DASHBOARD_PORT) -> list[str]:
    """``streamlit run`` as users get it (the real-browser test runs the same command)."""
    command = [_bin("streamlit"), "run", str(app)]
    command += ["--server.address", HOST, "--server.port", str(port), "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false"]
    # Viewer mode: no "Deploy" button or developer menu in a user's toolbar.
    command += ["--client.toolbarMode", "viewer"]
    return command


def start_dashboard(paths: Paths, port: int = DASHBOARD_PORT) -> Service:
    command = dashboard_command(paths.project / "dashboard" / "app.py", port)
    return start("dashboard", command, f"http://{HOST}:{port}", paths, {})


def start_simulator(paths: Paths, url: str, key: str) -> Service:
    """Background traffic so the platform is alive at once: a year of days, 5 requests/s."""
    command = [_bin("loopline"), "simulate", "--days", "365", "--rate", "5"]
    command += ["--seconds-per-day", "20", "--url", url, "--key", key]
    return start("simulator", command, "", paths, {})


@contextmanager
def running(*services: Service) -> Iterator[None]:
    try:
        yield
    finally:
        for service in reversed(services):
            service.stop()
