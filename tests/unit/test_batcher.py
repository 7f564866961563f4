"""The adaptive batcher: who is batched with whom, and what one bad item may not do."""

import asyncio
import threading
from collections.abc import Sequence

import pytest

from loopline.serving.batcher import Batcher, Overloaded


class Recorder:
    """Work that records its batches; the first batch can be held until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(items))
        self.started.set()
        self.release.wait(30)
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


async def _wait(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.001)


def test_a_lone_request_is_served_alone_and_at_once() -> None:
    work = Recorder()

    async def main() -> int:
        return await Batcher(work, max_batch_size=8, max_latency_ms=1000).submit(3)

    assert asyncio.run(main()) == 30
    assert work.batches == [[3]]


def test_requests_arriving_during_a_batch_are_the_next_batch() -> None:
    work = Recorder(hold_first=True)

    async def main() -> list[int]:
        batcher = Batcher(work, max_batch_size=8, max_latency_ms=60_000)
        first = asyncio.ensure_future(batcher.submit(1))
        await _wait(work.started)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)]
        await asyncio.sleep(0)
        work.release.set()
        return [await first, *[await r for r in rest]]

    assert asyncio.run(main()) == [10, 20, 30, 40]
    assert work.batches == [[1], [2, 3, 4]]


def test_one_bad_item_fails_alone() -> None:
    work = Recorder(hold_first=True)

    async def main() -> list[object]:
        batcher = Batcher(work, max_batch_size=8, max_latency_ms=60_000)
        first = asyncio.ensure_future(batcher.submit(0))
        await _wait(work.started)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in (5, -1, 6)]
        await asyncio.sleep(0)
        work.release.set()
        await first
        return list(await asyncio.gather(*rest, return_exceptions=True))

    good, bad, other = asyncio.run(main())
    assert (good, other) == (50, 60)
    assert isinstance(bad, ValueError) and str(bad) == "bad -1"
    assert work.batches[1] == [5, -1, 6]


def test_batches_respect_the_size_limit_and_a_large_item_goes_alone() -> None:
    batches: list[list[int]] = []
    started, release = threading.Event(), threading.Event()

    def work(items: list[list[int]]) -> list[int]:
        batches.append([len(i) for i in items])
        started.set()
        release.wait(30)
        return [len(i) for i in items]

    async def main() -> list[int]:
        batcher = Batcher(work, max_batch_size=4, max_latency_ms=60_000, size=len)
        first = asyncio.ensure_future(batcher.submit([0]))
        await _wait(started)
        sizes = [[1, 1], [1], [1], [1] * 9, [1]]
        rest = [asyncio.ensure_future(batcher.submit(s)) for s in sizes]
        await asyncio.sleep(0)
        release.set()
        return [await first, *[await r for r in rest]]

    assert asyncio.run(main()) == [1, 2, 1, 1, 9, 1]
    # Customers per batch: 2+1+1 fill one batch of 4; 9 goes alone; then the last.
    assert batches == [[1], [2, 1, 1], [9], [1]]


def test_a_request_that_waited_past_max_latency_is_refused_and_the_rest_served() -> None:
    now = [0.0]
    work = Recorder(hold_first=True)

    async def main() -> list[object]:
        batcher = Batcher(work, max_batch_size=8, max_latency_ms=100, clock=lambda: now[0])
        first = asyncio.ensure_future(batcher.submit(1))
        await _wait(work.started)
        late = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0)
        now[0] = 0.150  # 150 ms later: the queued request is past max_latency_ms
        fresh = asyncio.ensure_future(batcher.submit(3))
        await asyncio.sleep(0)
        work.release.set()
        return list(await asyncio.gather(first, late, fresh, return_exceptions=True))

    first, late, fresh = asyncio.run(main())
    assert (first, fresh) == (10, 30)
    assert isinstance(late, Overloaded) and "max_latency_ms=100" in str(late)
    assert work.batches == [[1], [3]]


def test_a_failing_batch_fails_each_of_its_requests_and_the_batcher_recovers() -> None:
    calls = []

    def work(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("feature store down")
        return items

    async def main() -> tuple[object, int]:
        batcher = Batcher(work, max_batch_size=8, max_latency_ms=60_000)
        failed = await asyncio.gather(batcher.submit(1), return_exceptions=True)
        return failed[0], await batcher.submit(2)

    failed, recovered = asyncio.run(main())
    assert isinstance(failed, RuntimeError) and recovered == 2


@pytest.mark.parametrize("size, latency", [(0, 10.0), (4, 0.0)])
def test_bad_settings_are_refused(size: int, latency: float) -> None:
    with pytest.raises(ValueError, match="max_batch_size|max_latency_ms"):
        Batcher(lambda items: items, max_batch_size=size, max_latency_ms=latency)
