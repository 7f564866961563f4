"""Prometheus metrics by model version and arm, beside BentoML's own on ``/metrics``.

prometheus_client is imported inside the constructor: BentoML workers set the
multiprocess directory after the service module is imported (BentoML's own advice).
"""

from __future__ import annotations

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)


class ServingMetrics:
    """Request counts, latency, score distribution and errors, labelled by version and arm."""

    def __init__(self) -> None:
        import prometheus_client as prom

        labels = ["model_version", "arm"]
        self.predictions = prom.Counter("loopline_predictions", "Predictions served", labels)
        self.latency = prom.Histogram(
            "loopline_prediction_latency_seconds",
            "Time from request to answer, once per request and arm",
            labels,
            buckets=LATENCY_BUCKETS,
        )
        self.score = prom.Histogram(
            "loopline_prediction_score",
            "Predicted churn probability",
            labels,
            buckets=SCORE_BUCKETS,
        )
        self.errors = prom.Counter("loopline_errors", "Requests refused, by reason", ["reason"])
        self.batch = prom.Histogram(
            "loopline_batch_customers",
            "Customers scored together in one batch (one feature read, one model call)",
            buckets=BATCH_BUCKETS,
        )

    def observe(self, version: str, arm: str, scores: list[float], seconds: float) -> None:
        """One request's predictions by one arm: counted, timed once, each score binned.

        In BentoML's multiprocess mode every observation is a write to a shared file (~4 us):
        a 1,000-customer request observed per prediction spent 12 ms in metrics alone.
        """
        self.predictions.labels(version, arm).inc(len(scores))
        self.latency.labels(version, arm).observe(seconds)
        histogram = self.score.labels(version, arm)
        for score in scores:
            histogram.observe(score)

    def error(self, reason: str) -> None:
        self.errors.labels(reason).inc()
