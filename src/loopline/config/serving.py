"""``serving``: how the model meets requests (batching, limits, TLS)."""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from loopline.config.base import (
    Strict,
)


class BatchingParams(Strict):
    """Adaptive batching of concurrent requests in each worker (docs/serving.md)."""

    # Customers per batch: one Feast read and one model call serve them all.
    max_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # A request that waited this long for its batch to start is refused with 503: the
    # worker is behind its load. Seconds, not milliseconds: a pause of the machine (measured:
    # batches of 0.3-1.6 s on a 2-core machine at load 5) is not an overload.
    max_latency_ms: float = Field(default=5000.0, gt=0, le=60_000)


class RateParams(Strict):
    """A token bucket: ``requests_per_second`` on average, ``burst`` at once (null: no limit)."""

    requests_per_second: float | None = Field(default=None, gt=0)
    # Null: one second's worth of requests (at least one).
    burst: int | None = Field(default=None, ge=1)

    @property
    def capacity(self) -> int:
        """The bucket's size: ``burst``, or one second's worth of requests."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.requests_per_second or 1))


class LimitsParams(RateParams):
    """What one request may send, and how often one key may call (docs/serving.md)."""

    # Per key and per worker process: N workers let a key through up to N times this.
    requests_per_second: float | None = Field(default=1000.0, gt=0)
    burst: int | None = Field(default=2000, ge=1)
    # A 1,000-customer batch is about 20 KB; a body over this is refused with 413.
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    # Per-key exceptions to the rate above, by key name (a bulk scorer, a partner).
    keys: dict[str, RateParams] = {}


class TlsParams(Strict):
    """HTTPS for ``bentoml serve``: PEM files, relative to the project folder (null: HTTP)."""

    certfile: str | None = None
    keyfile: str | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> TlsParams:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("set both certfile and keyfile, or neither")
        return self


class ServingParams(Strict):
    model_name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    threshold: float = Field(gt=0, lt=1)
    batching: BatchingParams = BatchingParams()
    limits: LimitsParams = LimitsParams()
    tls: TlsParams = TlsParams()
    # With no version in production the service answers /predict with 503 until one is
    # promoted. True lets the Bento's own model answer meanwhile, labelled arm
    # "unpromoted" (never "champion"): for local trials and benchmarks, not for users.
    allow_unpromoted: bool = False
