"""Shadow scoring off the response path, in batches.

Under a ``shadow`` policy the challenger scores every request the champion answers. Doing
that per request doubles the model's CPU per request, and a one-row prediction is mostly
fixed cost (input checks, array set-up): scoring the requests that arrived in the last few
milliseconds in one call costs about as much as scoring one. So requests only enqueue
their features; one daemon thread takes whatever is queued, waits at most ``linger``
seconds for more, and scores it per challenger version in a single call. A tenth of a
second batches several requests even from one sequential client, and delays nothing a
caller sees: shadow rows only reach the prediction log.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ShadowRequest:
    """One answered request for the challenger to score too."""

    arm: Any  # the routing table's challenger arm: .version, .model, .inputs
    request_id: str
    at: datetime
    ids: list[int]
    features: dict[str, list[Any]]  # the columns the champion was served, one value per id


# (request, scores in the order of request.ids, the batch's latency in ms)
Sink = Callable[[ShadowRequest, list[float], float], None]


class ShadowScorer:
    """A queue of shadowed requests and the thread that scores them in batches."""

    def __init__(self, sink: Sink, *, linger: float = 0.1, max_requests: int = 256) -> None:
        self._sink = sink
        self._linger = linger
        self._max = max_requests
        self._queue: queue.Queue[ShadowRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)

    def start(self) -> ShadowScorer:
        self._thread.start()
        return self

    def submit(self, request: ShadowRequest) -> None:
        self._queue.put(request)

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop (graceful shutdown loses no shadow rows)."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._gather(first)
            self._score(batch)
            if stopping:
                return

    def _gather(self, first: ShadowRequest) -> tuple[list[ShadowRequest], bool]:
        batch = [first]
        deadline = time.monotonic() + self._linger
        while len(batch) < self._max:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _score(self, batch: list[ShadowRequest]) -> None:
        by_version: dict[str, list[ShadowRequest]] = {}
        for request in batch:
            by_version.setdefault(request.arm.version, []).append(request)
        for requests in by_version.values():
            arm = requests[0].arm
            started = time.perf_counter()
            columns = {c: [v for r in requests for v in r.features[c]] for c in arm.inputs}
            scores = [float(s) for s in arm.model.positive_proba(columns)]
            latency_ms = 1e3 * (time.perf_counter() - started)
            offset = 0
            for request in requests:
                count = len(request.ids)
                self._sink(request, scores[offset : offset + count], latency_ms)
                offset += count
