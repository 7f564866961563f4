"""Refusals that cost the service nothing: a body over the size limit, a key over its rate.

``BodyLimitMiddleware`` answers 413 when ``Content-Length`` is over
``serving.limits.max_body_bytes``, or as soon as a streamed (chunked) body grows past it:
bytes are counted as they arrive, so no more than the limit plus one chunk is ever held.

``RateLimitMiddleware`` keeps a token bucket per API key name and answers 429 with
``Retry-After`` when a key's bucket is empty. It runs after ``ApiKeyMiddleware`` (it needs
the key's name) and keeps its buckets in the worker process: with N workers a key gets up
to N times its rate. Both run on the worker's event loop, so the buckets need no lock.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from loopline.config import LimitsParams, RateParams


class TokenBucket:
    """``rate`` tokens a second up to ``capacity``; each request takes one."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.stamp = now

    def take(self, now: float) -> float:
        """0.0 if a token was taken; otherwise the seconds until one will be there."""
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate


@functools.cache
def project_limits() -> LimitsParams:
    """``serving.limits`` of the project this process serves, read once per process."""
    from loopline.config import load_params
    from loopline.settings import Paths

    return load_params(Paths.discover().params_file).serving.limits


async def refuse(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A small JSON error; ErrorShapeMiddleware, outside, gives it the service's shape."""
    body = json.dumps({"error": message}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send(
        {"type": "http.response.start", "status": status, "headers": start + (headers or [])}
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """Raised into the app's ``receive`` when a streamed body passes the limit."""


class BodyLimitMiddleware:
    """ASGI middleware: 413 for a request body over ``max_bytes`` (the project's limit)."""

    def __init__(self, app: ASGIApp, max_bytes: int | None = None) -> None:
        self.app = app
        self._max_bytes = max_bytes

    @property
    def max_bytes(self) -> int:
        if self._max_bytes is None:  # on first use, when the worker knows its project
            self._max_bytes = project_limits().max_body_bytes
        return self._max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        length = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if length.isdigit():
            if int(length) > limit:
                await self._too_large(send)
                return
            # The HTTP server delivers exactly Content-Length bytes: nothing left to count.
            await self.app(scope, receive, send)
            return
        received = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal received, over
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge(f"request body is over the {limit}-byte limit")
            return incoming

        async def watched(outgoing: Message) -> None:
            nonlocal started
            if over:
                # BentoML answers an exception in its body read with a 500: replace it.
                if outgoing["type"] == "http.response.start" and not started:
                    started = True
                    await self._too_large(send)
                return
            if outgoing["type"] == "http.response.start":
                started = True
            await send(outgoing)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        message = f"request body is over the {self.max_bytes}-byte limit"
        # Closing the connection drops the rest of a body nobody will read.
        await refuse(send, 413, message, [(b"connection", b"close")])


class RateLimitMiddleware:
    """ASGI middleware: a token bucket per key name; 429 with ``Retry-After`` when empty.

    Requests without a key (routes the key check lets through) pass untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        limits: LimitsParams | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self._limits = limits
        self.clock = clock
        # Key name -> its bucket, or None for a key without a limit. Only keys that passed
        # the key check get here, so the dict is bounded by the key file.
        self.buckets: dict[str, TokenBucket | None] = {}

    @property
    def limits(self) -> LimitsParams:
        if self._limits is None:
            self._limits = project_limits()
        return self._limits

    def bucket(self, name: str, now: float) -> TokenBucket | None:
        """The bucket of key ``name``, made on its first request."""
        if name in self.buckets:
            return self.buckets[name]
        rate: RateParams = self.limits.keys.get(name, self.limits)
        bucket = None
        if rate.requests_per_second is not None:
            bucket = TokenBucket(rate.requests_per_second, rate.capacity, now)
        self.buckets[name] = bucket
        return bucket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = scope.get("state", {}).get("api_key") if scope["type"] == "http" else None
        if info is None:
            await self.app(scope, receive, send)
            return
        now = self.clock()
        bucket = self.bucket(info.name, now)
        if bucket is None or not (wait := bucket.take(now)):
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        await refuse(
            send,
            429,
            f"key {info.name!r} is over its limit of {bucket.rate:g} requests/s "
            f"(burst {bucket.capacity:g}) in this worker: retry after {retry} s",
            [(b"retry-after", b"%d" % retry)],
        )
