"""The task runner every flow uses, chosen by configuration when the flow starts.

``LOOPLINE_TASK_RUNNER`` says where submitted tasks (the candidates, the scoring
partitions) run:

- ``threads`` (the default): a thread pool in the flow's process;
- ``processes``: a pool of local processes;
- ``dask``: a temporary local Dask cluster of processes;
- ``tcp://host:8786`` (or ``tls://``): an existing Dask scheduler, through ``prefect-dask``.

``LOOPLINE_TASK_WORKERS`` sizes the local pools (default: the machine's cores).

The flows are decorated with a :class:`ConfiguredTaskRunner` rather than a concrete runner
because ``prefect.serve`` re-imports them from their modules: the choice must be made when
a run starts, not when a module is imported or a deployment is created.
"""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from loopline.errors import LooplineError

RUNNER_ENV = "LOOPLINE_TASK_RUNNER"
WORKERS_ENV = "LOOPLINE_TASK_WORKERS"
LOCAL = ("threads", "processes", "dask")
# A scheduler that does not answer within this is reported, not waited for (Dask's own
# default is 30 s of silent retries).
CONNECT_TIMEOUT_S = 5.0


class RunnerConfigError(LooplineError):
    """``LOOPLINE_TASK_RUNNER`` or ``LOOPLINE_TASK_WORKERS`` holds a value that means nothing."""


class SchedulerUnreachable(LooplineError):
    """The Dask scheduler named by ``LOOPLINE_TASK_RUNNER`` does not answer."""


def chosen(environ: dict[str, str] | None = None) -> tuple[str, int | None]:
    """The runner kind (or scheduler address) and worker count the environment asks for."""
    env = os.environ if environ is None else environ
    spec = env.get(RUNNER_ENV, "").strip() or "threads"
    if spec not in LOCAL and urlsplit(spec).scheme not in ("tcp", "tls"):
        raise RunnerConfigError(
            f"{RUNNER_ENV}={spec!r} is not a task runner: use threads, processes, dask, "
            "or a Dask scheduler address such as tcp://127.0.0.1:8786"
        )
    raw = env.get(WORKERS_ENV, "").strip()
    if not raw:
        return spec, None
    if not raw.isdigit() or int(raw) < 1:
        raise RunnerConfigError(f"{WORKERS_ENV}={raw!r} must be a whole number of at least 1")
    return spec, int(raw)


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds, naming the address, when nothing listens there."""
    parts = urlsplit(address)
    if parts.hostname is None or parts.port is None:
        raise RunnerConfigError(f"{RUNNER_ENV}={address!r} needs a host and a port")
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            pass
    except OSError as exc:
        raise SchedulerUnreachable(
            f"the Dask scheduler at {address} does not answer ({exc.strerror or exc}): "
            f"start it (`dask scheduler`) or change {RUNNER_ENV}"
        ) from None


def build(spec: str, workers: int | None) -> TaskRunner[Any]:
    """The concrete runner for a configuration from :func:`chosen`."""
    if spec == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if spec == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    from prefect_dask import DaskTaskRunner

    if spec == "dask":
        cluster: dict[str, Any] = {
            "processes": True,
            "threads_per_worker": 1,
            "host": "127.0.0.1",
            "dashboard_address": None,
        }
        if workers is not None:
            cluster["n_workers"] = workers
        api = _temporary_server_url()
        if api is not None:
            cluster["env"] = {"PREFECT_API_URL": api}
        return DaskTaskRunner(cluster_kwargs=cluster)
    check_scheduler(spec)
    return DaskTaskRunner(address=spec, client_kwargs={"timeout": CONNECT_TIMEOUT_S})


def _temporary_server_url() -> str | None:
    """The API of the temporary Prefect server this process runs, if it runs one.

    Without ``PREFECT_API_URL`` each process starts a temporary server of its own: local Dask
    workers would each start one (about 18 s, on the same cores as the fits) and record their
    task runs where nobody sees them. Given this one's address, they report to the flow's.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return None

    server = SubprocessASGIServer()
    return server.api_url if server.running else None


class ConfiguredTaskRunner(TaskRunner[Any]):
    """Delegates to the runner the configuration names, built at the first submission.

    Built lazily, so a flow that submits nothing (most steps run in the flow itself) never
    starts a cluster, and a configuration error surfaces in the run that needs it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._inner: TaskRunner[Any] | None = None
        self._stack = ExitStack()

    @property
    def name(self) -> str:
        return "configured"

    def duplicate(self) -> ConfiguredTaskRunner:
        return type(self)()

    def _runner(self) -> TaskRunner[Any]:
        if self._inner is None:
            spec, workers = chosen()
            runner = build(spec, workers)
            self._inner = self._stack.enter_context(runner)
            self.logger.info("tasks run on %s", spec)
        return self._inner

    def submit(
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: Any = None,
    ) -> Any:
        return self._runner().submit(task, parameters, wait_for, dependencies)

    def map(self, task: Any, parameters: dict[str, Any], wait_for: Any = None) -> Any:
        return self._runner().map(task, parameters, wait_for)

    def __exit__(self, *exc: Any) -> None:
        try:
            self._stack.close()
        finally:
            self._inner = None
            super().__exit__(*exc)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfiguredTaskRunner)

    def __hash__(self) -> int:
        return hash(type(self))
