"""How many worker processes serve, and what each one gets from its environment.

Each BentoML worker is its own process with its own model, Feast store, registry watcher
and prediction-log writer; they share only the listening socket and what lives on disk
(registry, key file, log partitions, Prometheus' multiprocess directory). Read by the
service module when BentoML imports it, so this module imports nothing heavy.
"""

from __future__ import annotations

from typing import Final, Literal

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
