"""A killed worker is survivable: ``kill -9`` of one of two workers under steady load.

Real ``bentoml serve`` with two workers on a free port. Threads send a steady open-loop
load; one worker (the one holding most of the load's connections) is killed with SIGKILL.
What may be lost is what was in flight on that worker: at most one request per load
connection it held (HTTP/1.1 without pipelining carries one request at a time), so never
more than the load's concurrency. The other worker must answer in every second after the
kill while BentoML's arbiter starts a replacement, and ``/readyz`` must stay 200 (a
booting worker does not accept connections before its model and Feast store are warm).
The time until the replacement answers is measured and printed, not asserted.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest

from loopline import platform
from tests.e2e.test_rollouts import ensure_production
from tests.ids import known_customers

pytestmark = pytest.mark.e2e

WORKERS = 2
THREADS = 8
RATE = 30.0  # requests/s offered: well under what one worker sustains on this machine
BEFORE_KILL_S = 4.0
AFTER_REPLACED_S = 3.0
# Bounds on how long the test may run, not expectations of speed.
REPLACEMENT_LIMIT_S = 180.0
REQUEST_TIMEOUT_S = 10.0
POLL_S = 0.05
# uvicorn (under BentoML) closes a connection idle for 5 s; a client must stop reusing one
# well before that, or a request can cross the server's close and be reset (see
# test_zero_downtime.py). Each load thread sends every THREADS / RATE s, far below this.
KEEPALIVE_S = 2.0


@dataclass(frozen=True)
class Sample:
    """One request, on the monotonic clock: when it was sent and answered, and its status."""

    sent: float
    received: float
    status: int
    error: str = ""


@dataclass
class Kill:
    """What happened to the killed worker, on the monotonic clock."""

    victim: int
    survivor: int
    connections: int  # the load's connections the victim held at the kill
    at: float = 0.0
    gone: float = 0.0
    replacement: int = 0
    spawned: float = 0.0
    serving: float = 0.0


@pytest.fixture(scope="module")
def serving(built: dict[str, Any], params: Any, paths: Any) -> Iterator[platform.Service]:
    ensure_production(params, paths, built["package"]["model"], "test-worker-crash")
    service = platform.start_serving(
        paths, platform.free_port(), built["package"]["model"], workers=WORKERS
    )
    with platform.running(service):
        platform.wait_ready(service, "/readyz")
        yield service


def fresh_client(url: str, headers: dict[str, str]) -> httpx.Client:
    """A client that opens a new connection per request, so any worker may accept it."""
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S, limits=limits)


def wait_answering(
    url: str, headers: dict[str, str], pids: set[int], limit: float, readyz: list[int]
) -> float:
    """Poll ``/model`` (and ``/readyz``) on fresh connections until each of ``pids`` answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + limit
    with fresh_client(url, headers) as client:
        while not pids <= seen and time.monotonic() < deadline:
            response = client.post("/model", json={})
            if response.status_code == 200:
                seen.add(int(response.json()["worker"]))
            readyz.append(client.get("/readyz").status_code)
            time.sleep(POLL_S)
    assert pids <= seen, f"workers {sorted(pids - seen)} never answered within {limit:.0f} s"
    return time.monotonic()


def load_connections(pid: int, port: int) -> int:
    """How many client connections to ``port`` the worker ``pid`` holds now."""
    connections = psutil.Process(pid).net_connections(kind="tcp")
    return sum(1 for c in connections if c.status == psutil.CONN_ESTABLISHED and c.laddr[1] == port)


def steady_load(
    url: str, headers: dict[str, str], customers: list[int], stop: threading.Event
) -> list[Sample]:
    """Open-loop load at RATE from THREADS threads until ``stop`` (or a hard limit)."""
    start = time.monotonic() + 0.2
    hard_stop = start + BEFORE_KILL_S + REPLACEMENT_LIMIT_S + 60.0
    lock = threading.Lock()
    slots = iter(range(math.ceil(RATE * (hard_stop - start))))
    results: list[list[Sample]] = [[] for _ in range(THREADS)]

    def worker(k: int) -> None:
        limits = httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=KEEPALIVE_S
        )
        with httpx.Client(
            base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S, limits=limits
        ) as client:
            while not stop.is_set():
                with lock:
                    n = next(slots, None)
                if n is None:
                    return
                wait = start + n / RATE - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    return
                sent = time.monotonic()
                try:
                    response = client.post(
                        "/predict", json={"customer_id": customers[n % len(customers)]}
                    )
                except httpx.HTTPError as exc:
                    results[k].append(Sample(sent, time.monotonic(), -1, repr(exc)))
                    continue
                error = "" if response.status_code == 200 else response.text[:300]
                results[k].append(Sample(sent, time.monotonic(), response.status_code, error))

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(THREADS)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=max(1.0, hard_stop - time.monotonic() + REQUEST_TIMEOUT_S))
    return sorted((s for part in results for s in part), key=lambda s: s.sent)


def kill_one_worker(service: platform.Service, headers: dict[str, str], readyz: list[int]) -> Kill:
    """SIGKILL the worker with most load connections; follow its replacement until it answers."""
    port = int(service.url.rsplit(":", 1)[1])
    before = platform.serving_workers(service)
    held = {pid: load_connections(pid, port) for pid in before}
    victim = max(before, key=lambda pid: held[pid])
    (survivor,) = set(before) - {victim}
    process = psutil.Process(victim)
    kill = Kill(victim, survivor, held[victim], at=time.monotonic())
    os.kill(victim, signal.SIGKILL)
    # Returns once the arbiter has reaped it (psutil polls a process that is not our child).
    process.wait(timeout=REQUEST_TIMEOUT_S)
    kill.gone = time.monotonic()
    deadline = kill.at + REPLACEMENT_LIMIT_S
    while time.monotonic() < deadline:
        new = set(platform.serving_workers(service)) - set(before)
        if new:
            (kill.replacement,) = new
            kill.spawned = time.monotonic()
            break
        readyz.append(httpx.get(service.url + "/readyz", timeout=REQUEST_TIMEOUT_S).status_code)
        time.sleep(POLL_S)
    assert kill.replacement, f"no replacement worker within {REPLACEMENT_LIMIT_S:.0f} s"
    left = deadline - time.monotonic()
    kill.serving = wait_answering(service.url, headers, {kill.replacement}, left, readyz)
    return kill


def answered_per_second(samples: list[Sample], start: float, end: float) -> list[int]:
    """Successful answers received in each whole second of [start, end)."""
    counts = [0] * int(end - start)
    for sample in samples:
        second = int(sample.received - start)
        if sample.status == 200 and start <= sample.received and second < len(counts):
            counts[second] += 1
    return counts


def predictions_counted(url: str) -> float:
    """``loopline_predictions_total`` summed over its labels, as ``/metrics`` shows it."""
    text = httpx.get(url + "/metrics", timeout=REQUEST_TIMEOUT_S).text
    lines = [line for line in text.splitlines() if line.startswith("loopline_predictions_total{")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def summarize(samples: list[Sample], kill: Kill, per_second: list[int]) -> dict[str, Any]:
    failed = [s for s in samples if s.status != 200]
    during = sorted(
        s.received - s.sent for s in samples if s.status == 200 and kill.at <= s.sent < kill.serving
    )
    return {
        "workers": WORKERS,
        "load": {"rate": RATE, "threads": THREADS, "requests": len(samples)},
        "failed": len(failed),
        "victim_connections": kill.connections,
        "failures": sorted({s.error[:120] for s in failed}),
        "reaped_s": round(kill.gone - kill.at, 3),
        "respawned_s": round(kill.spawned - kill.at, 3),
        "replacement_serving_s": round(kill.serving - kill.at, 3),
        "latency_during_restart_ms": {
            "p50": round(1e3 * during[len(during) // 2], 1) if during else None,
            "max": round(1e3 * during[-1], 1) if during else None,
        },
        "answers_per_second_after_kill": per_second,
    }


def test_killing_one_of_two_workers_loses_only_its_in_flight_requests(
    serving: platform.Service, paths: Any, params: Any, record_property: Any
) -> None:
    keys = platform.dev_keys(paths)
    headers = {"Authorization": f"Bearer {keys['client']}"}
    customers = known_customers(paths, params, 97)
    readyz: list[int] = []
    pids = set(platform.serving_workers(serving))
    assert len(pids) == WORKERS, pids
    wait_answering(serving.url, headers, pids, REPLACEMENT_LIMIT_S, readyz)

    stop = threading.Event()
    samples: list[Sample] = []
    loader = threading.Thread(
        target=lambda: samples.extend(steady_load(serving.url, headers, customers, stop)),
        daemon=True,
    )
    loader.start()
    stop.wait(BEFORE_KILL_S)  # the load runs steadily on both workers before the kill
    kill = kill_one_worker(serving, headers, readyz)
    stop.wait(AFTER_REPLACED_S)
    stop.set()
    loader.join(timeout=REQUEST_TIMEOUT_S + 5)
    assert not loader.is_alive()

    end = max(s.received for s in samples)
    per_second = answered_per_second(samples, kill.at, end)
    summary = summarize(samples, kill, per_second)
    record_property("worker_crash", json.dumps(summary))
    print(f"\nworker-crash: {json.dumps(summary)}")

    failed = [s for s in samples if s.status != 200]
    # Only what the killed worker had in flight: sent before it was gone, one per connection.
    assert all(s.status == -1 and s.sent < kill.gone for s in failed), failed[:3]
    assert len(failed) <= kill.connections <= THREADS, summary
    # The survivor answered throughout, and is the same process (not restarted with it).
    assert len(per_second) >= 1 and all(n > 0 for n in per_second), summary
    assert psutil.pid_exists(kill.survivor)
    assert set(platform.serving_workers(serving)) == {kill.survivor, kill.replacement}
    # Readiness never dropped: whoever answered /readyz was warm.
    assert readyz and set(readyz) == {200}, sorted(set(readyz))
    # Metrics are summed over every worker's files, the dead one's included.
    assert predictions_counted(serving.url) >= len(samples) - len(failed)
