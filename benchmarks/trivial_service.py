"""BentoML's floor: a sync endpoint that returns a constant, on the service's server settings.

``bentoml serve trivial_service:TrivialService --working-dir benchmarks`` beside Loopline's
service: the same ``workers`` (``LOOPLINE_SERVING_WORKERS``), ``threads``
(``LOOPLINE_SERVING_THREADS``), traffic timeout and per-worker environment as
``bentos/service.py``, and the same request body, but no Feast, model, keys or logging.
What it answers per second is what BentoML itself allows on this machine.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml

from loopline.serving.workers import WORKERS_ENV, pinned_native_threads, workers_setting

THREADS = int(os.environ.get("LOOPLINE_SERVING_THREADS", "4"))
WORKERS = workers_setting(os.environ.get(WORKERS_ENV))


@bentoml.service(
    name="trivial",
    workers=WORKERS,
    threads=THREADS,
    traffic={"timeout": 30},
    envs=pinned_native_threads(),
)
class TrivialService:
    """Parses the request Loopline's ``/predict`` takes and answers a constant."""

    @bentoml.api(route="/predict")
    def predict(
        self, customer_id: int | None = None, customer_ids: list[int] | None = None
    ) -> dict[str, Any]:
        return {"probability": 0.5, "label": 0}

    @bentoml.api(route="/worker")
    def worker(self) -> dict[str, int]:
        """Which worker process answered (the benchmark waits until every one has)."""
        return {"worker": os.getpid()}
