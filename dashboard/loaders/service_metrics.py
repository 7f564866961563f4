"""The service's Prometheus ``/metrics``, parsed by prometheus_client: rates and latency."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from loaders.common import http

# How far back the live request rate, latency and error rate look.
LIVE_WINDOW_S = 60.0
MAX_SAMPLES = 240


@dataclass(frozen=True)
class MetricsSample:
    """One scrape of ``/metrics``: counter totals and the latency histogram's buckets."""

    at: float
    predictions: dict[str, float]  # "version|arm" -> total
    errors: dict[str, float]
    latency_buckets: dict[float, float]  # upper bound -> cumulative count, all arms
    latency_count: float
    latency_sum: float


@dataclass(frozen=True)
class LiveService:
    """The service as the dashboard sees it: up or not, and its recent traffic."""

    url: str
    error: str | None = None
    by_arm: list[dict[str, Any]] = field(default_factory=list)
    request_rate: float | None = None
    error_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    window_s: float = 0.0
    total_predictions: float = 0.0
    total_errors: float = 0.0


@st.cache_data(ttl=2, show_spinner=False)
def _scrape(url: str) -> MetricsSample | str:
    import httpx

    try:
        response = http().get(f"{url}/metrics")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return parse_metrics(response.text, time.time())


def parse_metrics(text: str, at: float) -> MetricsSample:
    """The Loopline series of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    predictions: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[float, float] = {}
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "loopline_predictions_total":
                key = f"{labels.get('model_version', '?')}|{labels.get('arm', '?')}"
                predictions[key] = predictions.get(key, 0.0) + sample.value
            elif sample.name == "loopline_errors_total":
                reason = labels.get("reason", "?")
                errors[reason] = errors.get(reason, 0.0) + sample.value
            elif sample.name == "loopline_prediction_latency_seconds_bucket":
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "loopline_prediction_latency_seconds_count":
                count += sample.value
            elif sample.name == "loopline_prediction_latency_seconds_sum":
                total += sample.value
    return MetricsSample(at, predictions, errors, buckets, count, total)


@st.cache_resource(show_spinner=False)
def _samples(url: str) -> tuple[deque[MetricsSample], threading.Lock]:
    # Shared by every session: the rate is a difference between scrapes over time.
    return deque(maxlen=MAX_SAMPLES), threading.Lock()


def live_service(url: str) -> LiveService:
    """Scrape ``/metrics`` (at most every 2 s) and derive rates over the last minute."""
    sample = _scrape(url)
    if isinstance(sample, str):
        return LiveService(url=url, error=sample)
    kept, lock = _samples(url)
    with lock:
        if not kept or kept[-1].at != sample.at:
            if kept and sum(sample.predictions.values()) < sum(kept[-1].predictions.values()):
                kept.clear()  # the service restarted: its counters began again
            kept.append(sample)
        recent = [s for s in kept if s.at >= sample.at - LIVE_WINDOW_S]
    return summarize(url, recent)


def summarize(url: str, samples: list[MetricsSample]) -> LiveService:
    """Rates between the oldest and newest sample; latency from the histogram's deltas."""
    newest, oldest = samples[-1], samples[0]
    span = newest.at - oldest.at
    by_arm = []
    for key, total in sorted(newest.predictions.items()):
        version, arm = key.split("|", 1)
        before = oldest.predictions.get(key, 0.0)
        per_s = (total - before) / span if span > 0 else None
        by_arm.append({"model_version": version, "arm": arm, "predictions": total, "per_s": per_s})
    served = sum(newest.predictions.values())
    failed = sum(newest.errors.values())
    rate: float | None = None
    if span > 0:
        served_delta = served - sum(oldest.predictions.values())
        failed_delta = failed - sum(oldest.errors.values())
        buckets = {
            b: c - oldest.latency_buckets.get(b, 0.0) for b, c in newest.latency_buckets.items()
        }
        rate = served_delta / span
        error_rate = (
            failed_delta / (served_delta + failed_delta) if served_delta + failed_delta else None
        )
    else:  # one scrape so far: totals since the service started
        buckets = dict(newest.latency_buckets)
        error_rate = failed / (served + failed) if served + failed else None
    return LiveService(
        url=url,
        by_arm=by_arm,
        request_rate=rate,
        error_rate=error_rate,
        latency_p50_ms=_ms(histogram_quantile(0.5, buckets)),
        latency_p95_ms=_ms(histogram_quantile(0.95, buckets)),
        window_s=span,
        total_predictions=served,
        total_errors=failed,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus's ``histogram_quantile``: linear within the bucket the rank falls in."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            inside = count - lower_count
            return lower_bound + (bound - lower_bound) * (
                (rank - lower_count) / inside if inside else 0
            )
        lower_bound, lower_count = bound, count
    return lower_bound
