"""What the prediction log loses when its process dies: kill -9, and a graceful SIGTERM.

A child process (this file, run as a script) logs predictions at a steady rate and prints
``<rows appended> <monotonic time>`` after every batch; the parent kills it, then counts
the rows on disk. Run with ``-s`` to see the measured figures.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

RATE = 2_000  # rows per second
INTERVAL = 1.0  # flush interval, seconds
BATCH = 20  # rows appended between two reports


def run_child(folder: Path, rate: int, interval: float) -> None:
    from loopline.serving.predlog import PredictionLog

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # No explicit close(): a graceful exit must be enough (atexit flushes the log).
    log = PredictionLog(folder, flush_interval=interval).start()
    features = {f"feature_{i}": float(i) for i in range(10)} | {"plan": "basic"}
    started = time.monotonic()
    while not stopping.is_set():
        due = int(rate * (time.monotonic() - started))
        for _ in range(min(BATCH, due - log.appended)):
            n = log.appended
            log.log(request_id=f"r{n}", entity_id=n, model_version="churn:v1", arm="champion",
                    score=0.5, label=1, latency_ms=3.0, features=features)  # fmt: skip
        print(log.appended, time.monotonic(), flush=True)
        time.sleep(BATCH / rate / 2)
    print("final", log.appended, flush=True)
    sys.exit(0)


class Child:
    """The logging child, with its reports collected by a thread so its pipe never fills."""

    def __init__(self, folder: Path, interval: float) -> None:
        command = [sys.executable, __file__, str(folder), str(RATE), str(interval)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + 60
        while not self.lines and time.monotonic() < deadline:  # imports take a while
            time.sleep(0.01)
        assert self.lines, "the child never started logging"
        time.sleep(seconds)

    def stop(self, signum: int) -> float:
        killed_at = time.monotonic()
        self.process.send_signal(signum)
        self.process.wait(timeout=60)
        self.reader.join(timeout=10)
        return killed_at

    def timeline(self) -> list[tuple[int, float]]:
        return [(int(n), float(t)) for n, t in (ln.split() for ln in self.lines if ln[0].isdigit())]


def rows_on_disk(folder: Path) -> int:
    from loopline.serving.predlog_read import read_predictions

    return len(read_predictions(folder))


@pytest.mark.parametrize("phase", [0.0, 0.35, 0.7])
def test_kill_9_loses_at_most_one_flush_interval(
    tmp_path: Path, phase: float, record_property: Callable[[str, object], None]
) -> None:
    child = Child(tmp_path, INTERVAL)
    child.run_for(3.0 + phase)
    killed_at = child.stop(signal.SIGKILL)
    timeline = child.timeline()
    appended = timeline[-1][0]

    on_disk = rows_on_disk(tmp_path)  # also proves no torn file is visible
    lost = appended - on_disk

    # The oldest lost row was appended after the last report that the disk already covers.
    covered_until = max((t for n, t in timeline if n <= on_disk), default=timeline[0][1])
    lost_seconds = killed_at - covered_until
    in_last_interval = appended - min(n for n, t in timeline if t >= killed_at - INTERVAL - 0.25)
    record_property("appended", appended)
    record_property("lost_rows", lost)
    record_property("lost_seconds", round(lost_seconds, 3))
    print(f"\nkill -9 after {appended} rows at {RATE}/s, flush every {INTERVAL}s: "
          f"lost {lost} rows, the last {lost_seconds:.2f}s")  # fmt: skip
    assert -BATCH <= lost <= in_last_interval  # a report can trail its batch by one batch
    assert lost_seconds <= INTERVAL + 0.25


def test_sigterm_loses_nothing(tmp_path: Path) -> None:
    child = Child(tmp_path, interval=3600.0)  # nothing flushes on its own before the signal
    child.run_for(2.0)
    child.stop(signal.SIGTERM)

    assert child.process.returncode == 0
    final = int(child.lines[-1].removeprefix("final "))
    assert final > 0 and rows_on_disk(tmp_path) == final


if __name__ == "__main__":
    run_child(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
