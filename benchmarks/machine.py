"""The machine a run measured, and how busy other processes kept it meanwhile.

Numbers from a shared 2-core machine mean little without knowing what else ran, so a
background sampler splits CPU time between this benchmark's process tree and the rest.
Linux only (reads /proc), like the rest of the platform's tooling.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "prefect",
    "feast",
    "bentoml",
    "dvc",
    "scikit-learn",
    "pandas",
    "numpy",
    "pyarrow",
    "duckdb",
    "httpx",
)
TICK = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    cpuinfo = _read("/proc/cpuinfo")
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )
    meminfo = dict(line.split(":", 1) for line in _read("/proc/meminfo").splitlines())
    mem_kib = int(meminfo.get("MemTotal", "0 kB").split()[0])
    os_name = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in _read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cgroup_cpu_max": _read("/sys/fs/cgroup/cpu.max").strip() or None,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": f"{os_name}, Linux {platform.release()}",
        "python": sys.version.split()[0],
        "packages": versions,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks used so far)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _read(f"/proc/{entry.name}/stat")
        if not stat:
            continue
        # The command name may contain spaces and parentheses: split after the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        try:
            table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        except (IndexError, ValueError):
            continue
    return table


def _label(pid: int) -> str:
    args = _read(f"/proc/{pid}/cmdline").split("\0")
    args = [a for a in args if a]
    if not args:
        return "?"
    # "python .../pytest tests/x" reads better as "pytest tests/x" than as the interpreter.
    words = [Path(a).name if "/" in a and not a.startswith("-") else a for a in args[:4]]
    if words[0].startswith("python") and len(words) > 1:
        words = words[1:]
    return " ".join(words)[:60]


def _machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks over all cores since boot."""
    parts = [int(x) for x in _read("/proc/stat").splitlines()[0].split()[1:9]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


@dataclass
class Phase:
    name: str
    seconds: float
    machine_busy_cores: float
    other_cores: float
    max_load1: float


@dataclass
class LoadMonitor:
    """Samples, every ``interval`` seconds, CPU use by this process tree and by everything else."""

    interval: float = 1.0
    phases: list[Phase] = field(default_factory=list)
    others: dict[str, float] = field(default_factory=dict)
    _other_ticks: int = 0
    _last: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _mark: tuple[str, float, int, int] | None = None
    _max_load: float = 0.0

    def start(self) -> None:
        self._sample()
        threading.Thread(target=self._loop, daemon=True, name="load-monitor").start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        me = os.getpid()
        table = _proc_table()

        def ours(pid: int) -> bool:
            seen = 0
            while pid > 1 and seen < 64:
                if pid == me:
                    return True
                pid = table.get(pid, (1, 0))[0]
                seen += 1
            return False

        load1 = float(_read("/proc/loadavg").split()[0] or 0)
        with self._lock:
            self._max_load = max(self._max_load, load1)
            current: dict[int, int] = {}
            for pid, (_, ticks) in table.items():
                current[pid] = ticks
                if ours(pid):
                    continue
                # A process first seen now counts only from now on: its past is not this run's.
                delta = ticks - self._last.get(pid, ticks)
                if delta > 0:
                    self._other_ticks += delta
                    label = _label(pid)
                    self.others[label] = self.others.get(label, 0.0) + delta / TICK
            self._last = current

    def mark(self, name: str) -> None:
        """End the current phase (if any) and start one called ``name``."""
        self._sample()
        busy, _ = _machine_busy_ticks()
        now = time.perf_counter()
        with self._lock:
            if self._mark is not None:
                previous, started, busy0, other0 = self._mark
                wall = max(now - started, 1e-9)
                self.phases.append(
                    Phase(
                        name=previous,
                        seconds=wall,
                        machine_busy_cores=(busy - busy0) / TICK / wall,
                        other_cores=(self._other_ticks - other0) / TICK / wall,
                        max_load1=self._max_load,
                    )
                )
            self._mark = (name, now, busy, self._other_ticks)
            self._max_load = float(_read("/proc/loadavg").split()[0] or 0)

    def stop(self) -> None:
        self.mark("end")
        self._stop.set()

    def top_others(self, n: int = 4) -> list[tuple[str, float]]:
        with self._lock:
            return sorted(self.others.items(), key=lambda kv: -kv[1])[:n]
