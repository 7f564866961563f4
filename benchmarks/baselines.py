"""The two servers Loopline's HTTP numbers stand beside, started the way the service is.

- ``trivial``: ``bentoml serve`` of ``trivial_service.py``, a sync endpoint answering a
  constant on the service's own server settings: what BentoML allows here.
- ``bare``: a FastAPI app on uvicorn, with as many worker processes as the service has,
  doing the same per-request work (the Feast online lookup through the same feature
  service, then the same scorer) and nothing else: no keys, routing, prediction log or
  metrics. ``uvicorn baselines:bare_app --factory`` builds it in each worker; the model
  tag comes from ``LOOPLINE_BENCH_MODEL``.

Both answer ``POST /worker`` with their process id, so the caller can wait until every
worker is up rather than the first one.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
MODEL_ENV = "LOOPLINE_BENCH_MODEL"
# As in bentos/service.py: sync calls run on this many threads per worker.
THREADS_ENV = "LOOPLINE_SERVING_THREADS"


def start_trivial(paths: Any, port: int) -> Any:
    """``bentoml serve trivial_service:TrivialService``; workers and threads from the env."""
    from loopline import platform

    command = [str(Path(sys.executable).with_name("bentoml")), "serve"]
    command += ["trivial_service:TrivialService", "--host", HOST, "--port", str(port)]
    command += ["--working-dir", str(HERE)]
    return platform.start("trivial-bento", command, f"http://{HOST}:{port}", paths, {})


def start_bare(paths: Any, port: int, model_tag: str, workers: int) -> Any:
    """The bare app on uvicorn with ``workers`` processes, one OpenMP thread each."""
    from loopline import platform

    command = [sys.executable, "-m", "uvicorn", "baselines:bare_app", "--factory"]
    command += ["--app-dir", str(HERE), "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    # BentoML puts OMP_NUM_THREADS=1 into each of its workers (the service's envs); a
    # threadpool limit set while building the app would not reach the request threads.
    env = {MODEL_ENV: model_tag, "OMP_NUM_THREADS": "1"}
    return platform.start("bare-fastapi", command, f"http://{HOST}:{port}", paths, env)


def wait_workers(
    url: str, count: int, headers: dict[str, str] | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Call ``url`` on fresh connections until ``count`` distinct workers have answered."""
    import httpx

    seen: set[int] = set()
    started = time.monotonic()
    while len(seen) < count and time.monotonic() - started < timeout:
        try:
            # A new connection each time: the kernel hands it to whichever worker accepts.
            with httpx.Client(headers=headers, timeout=10) as client:
                response = client.post(url, json={})
            if response.status_code == 200:
                seen.add(int(response.json()["worker"]))
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return {"expected": count, "seen": len(seen), "seconds": round(time.monotonic() - started, 1)}


# --- the bare app -----------------------------------------------------------------------


class PredictBody(BaseModel):
    """The bare app's request (module level: FastAPI resolves annotations by name)."""

    customer_id: int | None = None
    customer_ids: list[int] | None = None


def scorer(
    model: Any, holdout: Any = None
) -> tuple[Callable[[dict[str, list[Any]]], Sequence[float]], str]:
    """The service's scorer for ``model`` (columns -> positive-class probabilities) and its name.

    ``loopline.inference.serving_scorer`` when this version of the project has it (with the
    holdout, it keeps the compiled path only where it matches scikit-learn, as packaging
    decides), else the pipeline's ``predict_proba`` on a DataFrame, as the service did before.
    """
    import numpy as np

    try:
        from loopline.inference import serving_scorer
    except ImportError:
        import pandas as pd

        inputs = list(model.feature_names_in_)

        def proba(columns: dict[str, list[Any]]) -> Sequence[float]:
            return list(model.predict_proba(pd.DataFrame(columns)[inputs])[:, 1])

        return proba, "pipeline.predict_proba"
    chosen, found = serving_scorer(model, holdout)

    def positive(columns: dict[str, list[Any]]) -> Sequence[float]:
        return list(np.asarray(chosen.positive_proba(columns), dtype=float).ravel())

    return positive, f"serving_scorer: {found.get('engine', type(chosen).__name__)}"


def bare_app() -> Any:
    """FastAPI app: Feast lookup through the feature service, then the scorer; nothing else."""
    import anyio.to_thread
    import pandas as pd
    from fastapi import FastAPI

    from loopline.settings import activate

    paths = activate()  # before Feast and BentoML are imported: they read their homes then
    from loopline import features, packaging
    from loopline.config import load_params

    params = load_params(paths.params_file)
    entity, threshold = params.dataset.entity, params.serving.threshold
    model_tag = os.environ[MODEL_ENV]
    store = features.feature_store(paths)
    feature_service = store.get_feature_service(params.features.service)
    model, _ = packaging.load_model(model_tag)
    _, holdout_file = packaging.stored_files(model_tag)
    score, _ = scorer(model, pd.read_parquet(holdout_file))

    def predict_ids(ids: list[int]) -> list[float]:
        rows = [{entity: i} for i in ids]
        values = store.get_online_features(features=feature_service, entity_rows=rows).to_dict()
        return [float(p) for p in score(values)]

    predict_ids([0])  # the first lookup and predict pay lazy imports and caches

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        # Sync endpoints run on anyio's thread pool (40 threads by default): give it as many
        # as a BentoML worker has.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = int(os.environ.get(THREADS_ENV, "4"))
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/predict")
    def predict(body: PredictBody) -> dict[str, Any]:
        ids = [body.customer_id] if body.customer_id is not None else body.customer_ids or []
        probabilities = predict_ids(ids)
        return {
            "predictions": [
                {
                    "customer_id": i,
                    "probability": round(p, 6),
                    "label": int(p >= threshold),
                    "model_version": model_tag,
                }
                for i, p in zip(ids, probabilities, strict=True)
            ]
        }

    @app.post("/worker")
    def worker() -> dict[str, int]:
        return {"worker": os.getpid()}

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app
