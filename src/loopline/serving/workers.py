"""How many worker processes serve, and what each one gets from its environment.

Each BentoML worker is its own process with its own model, Feast store, registry watcher
and prediction-log writer; they share only the listening socket and what lives on disk
(registry, key file, log partitions, Prometheus' multiprocess directory). Read by the
service module when BentoML imports it, so this module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

WORKERS_ENV = "LOOPLINE_SERVING_WORKERS"
CPU_COUNT: Final = "cpu_count"
# OpenMP/BLAS pools size themselves to every core when their runtime starts; with one
# process per core that oversubscribes the machine and makes one-row predictions slower.
# BentoML puts these into each worker's environment before Python starts (a value already
# in the server's environment wins, so an operator can still choose).
NATIVE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def workers_setting(value: str | None) -> int | Literal["cpu_count"]:
    """``LOOPLINE_SERVING_WORKERS`` as BentoML's ``workers``: a positive count or cpu_count."""
    text = (value or "").strip()
    if text in ("", CPU_COUNT):
        return CPU_COUNT  # BentoML counts the CPUs this process may use (cgroup limits too)
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise ValueError(f"{WORKERS_ENV} must be a positive integer or {CPU_COUNT!r}, not {value!r}")


def pinned_native_threads() -> list[dict[str, str]]:
    """Service ``envs`` that give each worker one OpenMP/BLAS thread."""
    return [{"name": name, "value": "1"} for name in NATIVE_THREAD_VARIABLES]


def service_options(env: Mapping[str, str]) -> dict[str, Any]:
    """The service's ``@bentoml.service`` settings, from the server's environment.

    Read when BentoML imports the service module in each process, as its decorator needs.
    """
    return {
        # Processes, not threads, are what survive a crash: one per CPU by default.
        "workers": workers_setting(env.get(WORKERS_ENV)),
        # Sync APIs run on a pool of this many threads per worker (BentoML's default is 1,
        # which queues every request behind the one in flight). The Feast lookup, the
        # SQLite reads and numpy release the GIL, so a few threads overlap well; the
        # prediction log, metrics and the routing table are safe to share between them.
        "threads": int(env.get("LOOPLINE_SERVING_THREADS", "4")),
        "traffic": {"timeout": 30},
        "envs": pinned_native_threads(),
        # BentoML's access log (a line per request) and its own request metrics, both on
        # by default; "0" turns one off (docs/serving.md, "Performance", measures each).
        "logging": {"access": {"enabled": env.get("LOOPLINE_SERVING_ACCESS_LOG", "1") != "0"}},
        "metrics": {"enabled": env.get("LOOPLINE_SERVING_BENTOML_METRICS", "1") != "0"},
    }
