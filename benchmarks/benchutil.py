"""Small helpers every benchmark script shares: progress output, statistics, memory, results.

Each measuring script runs in its own process (so its peak memory is its own) and
hands its numbers back to ``run.py`` as one JSON file.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

START = time.perf_counter()


def say(message: str) -> None:
    """Progress goes to stderr, so stdout stays free for whatever a tool prints."""
    print(f"[bench {time.perf_counter() - START:6.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: with 1,000 samples p99 is the 990th value, not an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max and mean in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else math.nan,
        "mean_ms": sum(ms) / len(ms) if ms else math.nan,
    }


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mib() -> float:
    """Current resident set size of this process."""
    kib = _status_kib("VmRSS")
    return kib / 1024 if kib is not None else math.nan


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) so a later peak belongs to what runs next.

    Imports and warm-up calls would otherwise set the peak; Linux lets a process clear
    its own high-water mark by writing 5 to clear_refs.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak RSS since the last reset (or since start when resetting is not possible)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        # ru_maxrss is in KiB on Linux.
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process and all its live descendants (a server's workers).

    CPU per request does not depend on what else the machine runs, unlike latency and
    throughput on a shared 2-core machine, so it is the steadier comparison.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
        pid = int(entry.name)
        parents[pid] = int(fields[1])  # field 4 of stat: the parent pid
        cpu[pid] = int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    total = 0
    for pid in cpu:
        ancestor, hops = pid, 0
        while ancestor not in (root, 0, 1) and hops < 64:
            ancestor, hops = parents.get(ancestor, 0), hops + 1
        if ancestor == root:
            total += cpu[pid]
    return total / tick


def write_result(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def read_result(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def client_ids(paths: Any) -> list[int]:
    """Every customer id as a client sends it (the drop folder's batch; stores hold
    pseudonyms), sorted."""
    import pandas as pd

    from loopline.config import load_params

    params = load_params(paths.params_file)
    entity = params.dataset.entity
    frame = pd.read_parquet(paths.project / params.dataset.source, columns=[entity])
    return sorted(int(i) for i in frame[entity].unique())
