"""Adaptive batching of concurrent requests inside one serving worker.

A one-customer request costs about the same fixed work as a hundred-customer one: a Feast
read, an input check, a model call. So concurrent requests are served together. Requests
queue on the worker's event loop; one thread runs one batch at a time; when it finishes,
everything that arrived meanwhile is the next batch (up to ``max_batch_size`` customers).
Nobody waits for a batch to fill: an idle worker starts a lone request at once, and a busy
one batches exactly as much as the load brings. Each request keeps its own result: a
batch's work returns one result or one exception per request, so one caller's unknown
customer fails that caller only.

A request that has queued for more than ``max_latency_ms`` when its batch would start is
refused with :class:`Overloaded` (HTTP 503) rather than served late: past that the worker
is behind its load, and shedding is what keeps the others' latency bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Returned = TypeVar("Returned")
# One result or one exception per item, in the order of the items.
Work = Callable[[list[Item]], Sequence[Result | BaseException]]


class Overloaded(Exception):
    """The request waited longer than ``max_latency_ms`` for its batch to start."""


@dataclass
class _Queued(Generic[Item, Result]):
    item: Item
    size: int
    future: asyncio.Future[Result]
    since: float


class Batcher(Generic[Item, Result]):
    """Serve items submitted from one event loop in batches on one thread."""

    def __init__(
        self,
        work: Work[Item, Result],
        *,
        max_batch_size: int,
        max_latency_ms: float,
        size: Callable[[Item], int] = lambda _: 1,
        name: str = "batcher",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_latency_ms <= 0:
            raise ValueError(f"max_latency_ms must be positive, got {max_latency_ms}")
        self._work = work
        self._size = size
        self._clock = clock
        self.max_batch_size = max_batch_size
        self.max_latency_ms = max_latency_ms
        self._queue: deque[_Queued[Item, Result]] = deque()
        self._draining: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)

    async def submit(self, item: Item) -> Result:
        """The item's result, computed in the next batch; its exception if it failed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        queued = _Queued(item, self._size(item), future, self._clock())
        self._queue.append(queued)
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await queued.future

    def run_now(self, items: list[Item]) -> Sequence[Result | BaseException]:
        """Run the work on the batcher's own thread and wait: a warm-up, from any thread.

        What the work keeps per thread (database connections, caches) is then made before
        the first request needs it.
        """
        return self.call(self._work, items)

    def call(self, function: Callable[..., Returned], *args: Any) -> Returned:
        """Run ``function(*args)`` on the batcher's own thread and wait (see ``run_now``)."""
        return self._executor.submit(function, *args).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = self._next_batch()
                if not batch:
                    continue
                try:
                    results = await loop.run_in_executor(
                        self._executor, self._work, [q.item for q in batch]
                    )
                except Exception as exc:  # the batch as a whole failed: a fault, not bad input
                    results = [exc] * len(batch)
                for queued, result in zip(batch, results, strict=True):
                    if queued.future.done():  # the caller went away (cancelled)
                        continue
                    if isinstance(result, BaseException):
                        queued.future.set_exception(result)
                    else:
                        queued.future.set_result(result)
        finally:
            self._draining = None

    def _next_batch(self) -> list[_Queued[Item, Result]]:
        now = self._clock()
        batch: list[_Queued[Item, Result]] = []
        total = 0
        while self._queue:
            queued = self._queue[0]
            if queued.future.done():
                self._queue.popleft()
                continue
            waited_ms = 1e3 * (now - queued.since)
            if waited_ms > self.max_latency_ms:
                self._queue.popleft()
                queued.future.set_exception(
                    Overloaded(
                        f"the server is overloaded: the request waited {waited_ms:.0f} ms "
                        f"for a batch (max_latency_ms={self.max_latency_ms:g}); retry later"
                    )
                )
                continue
            # A request larger than a batch still goes, alone.
            if batch and total + queued.size > self.max_batch_size:
                break
            self._queue.popleft()
            batch.append(queued)
            total += queued.size
        return batch
