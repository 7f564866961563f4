"""Throughput and latency from ``wrk``, a compiled load generator in its own process.

A Python load generator on a 2-core machine competes with the server for the same cores
and measures its own interpreter as much as the server. ``wrk`` (Debian's package, see
``scripts/ensure_wrk.sh``) is C on an event loop: one thread (``-t1``) drives every
connection. ``wrk/predict.lua`` sends ``POST /predict`` for a random known customer per
request, with the client API key, and writes a JSON summary from ``done()``: that JSON is
what is read here, never wrk's text output.

Closed loop: each connection sends its next request when the previous answer arrives, so
latency under load includes queueing in the server, not in the generator.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().with_name("wrk") / "predict.lua"
THREADS = 1
# As long as the service's own traffic timeout: a slow answer is slow, not a wrk error.
TIMEOUT_S = 30


def binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not on PATH: run `bash scripts/ensure_wrk.sh` (make bench does)")
    return found


def version() -> str:
    """wrk's version line, e.g. ``wrk debian/4.1.0-3+b2 [epoll]``."""
    # `wrk -v` prints its version and usage, then exits 1.
    shown = subprocess.run([binary(), "-v"], capture_output=True, text=True, timeout=10)
    first = (shown.stdout or shown.stderr).splitlines()[0]
    return first.split(" Copyright")[0].strip()


def write_ids(ids: Sequence[int], folder: Path) -> Path:
    """The ids file the Lua script draws customers from, one id a line."""
    path = folder / "ids.txt"
    path.write_text("".join(f"{int(i)}\n" for i in ids))
    return path


def run(
    url: str,
    *,
    connections: int,
    seconds: int,
    ids_file: Path,
    api_key: str | None = None,
    field: str = "customer_id",
    seed: int = 11,
) -> dict[str, Any]:
    """One closed-loop wrk run against ``url`` (the full ``.../predict`` address).

    Returns requests, seconds, rps, latency (p50/p90/p99/max/mean ms), ``errors`` (socket
    errors plus non-2xx answers), their breakdown, the statuses seen and the cores wrk used.
    """
    with tempfile.TemporaryDirectory(prefix="loopline-wrk-") as folder:
        out = Path(folder) / "summary.json"
        env = {
            **os.environ,
            "WRK_IDS_FILE": str(ids_file),
            "WRK_FIELD": field,
            "WRK_SEED": str(seed),
            "WRK_SUMMARY": str(out),
            "WRK_API_KEY": api_key or "",
        }
        command = [binary(), f"-t{THREADS}", f"-c{connections}", f"-d{int(seconds)}s"]
        command += [f"--timeout={TIMEOUT_S}s", "-s", str(SCRIPT), url]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        shown = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=seconds + TIMEOUT_S + 30
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if shown.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"wrk failed ({shown.returncode}): {shown.stderr.strip() or shown.stdout.strip()}"
            )
        raw = json.loads(out.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return summarize(raw, connections) | {"wrk_cpu_cores": round(cpu / raw["duration_s"], 3)}


def summarize(raw: dict[str, Any], connections: int) -> dict[str, Any]:
    """The Lua summary in the shape the report reads (the same keys as ``latency_summary``)."""
    latency, errors = raw["latency_ms"], raw["errors"]
    sockets = sum(errors[k] for k in ("connect", "read", "write", "timeout"))
    return {
        "connections": connections,
        "requests": raw["requests"],
        "seconds": round(raw["duration_s"], 3),
        "rps": raw["rps"],
        "p50_ms": latency["p50"],
        "p90_ms": latency["p90"],
        "p99_ms": latency["p99"],
        "max_ms": latency["max"],
        "mean_ms": latency["mean"],
        "errors": sockets + errors["non_2xx"],
        "error_detail": errors,
        "statuses": raw["statuses"],
    }
