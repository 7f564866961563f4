"""What a serving worker does once, at start-up: its models' scorers, its heap, its warnings.

Kept apart from ``bentos/service.py`` so the service reads as its routes.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

log = logging.getLogger("loopline.serving")
# "sklearn" serves every model with scikit-learn itself, compiled or not.
ENGINE_ENV = "LOOPLINE_SERVING_ENGINE"
# A full collection of a worker's heap, off the allocation count (see freeze_heap).
FULL_COLLECTION_S = float(os.environ.get("LOOPLINE_SERVING_FULL_GC_S", "600"))
NEVER = 1_000_000_000  # gen-1 collections before a full one: never, in practice


class TamperedModel(RuntimeError):
    """A stored model file whose hash is not the one recorded when it was trained."""


def load_scorer(version: str, registry: Any = None) -> Any:
    """The scorer a version serves with: compiled where packaging found it exact.

    The file must hash to what the registry recorded at training (the model store's own
    record for a version the registry does not know) and pass the model scan; it is
    loaded only then."""
    import bentoml
    import pandas as pd

    from loopline import packaging
    from loopline.inference import NotCompilable, SklearnScorer, compile_pipeline, serving_scorer
    from loopline.model_scan import read_model

    model_file, holdout_file = packaging.stored_files(version)
    expected = _recorded_sha256(version, registry)
    actual = packaging.file_sha256(model_file)
    if expected != actual:
        raise TamperedModel(
            f"model {version}: stored file hash {actual[:12]} is not the one recorded at "
            f"training ({str(expected)[:12]}); refusing to load it"
        )
    pipeline = read_model(model_file, f"model {version}")
    if os.environ.get(ENGINE_ENV) == "sklearn":  # the operator's choice (and the benchmarks')
        return SklearnScorer(pipeline)
    inference = bentoml.models.get(version).info.metadata.get("inference")
    engine = inference.get("engine") if isinstance(inference, dict) else None
    if engine is None:  # packaged before the compiled path existed: check parity now
        scorer, found = serving_scorer(pipeline, pd.read_parquet(holdout_file))
        log.info("model %s: serving with %s (%s)", version, scorer.engine, found)
        return scorer
    if engine == "numpy":
        try:
            return compile_pipeline(pipeline)
        except NotCompilable as exc:  # it compiled when packaged: a library changed since
            log.warning("model %s: serving with scikit-learn: %s", version, exc)
    return SklearnScorer(pipeline)


def _recorded_sha256(version: str, registry: Any) -> str | None:
    import bentoml

    from loopline.registry.errors import UnknownVersion

    if registry is not None:
        try:
            recorded = registry.get(version).lineage.get("model_sha256")
        except UnknownVersion:
            recorded = None
        if recorded:
            return str(recorded)
    stored = bentoml.models.get(version).info.metadata.get("model_sha256")
    return None if stored is None else str(stored)


def freeze_heap(full_every_s: float = FULL_COLLECTION_S) -> None:
    """Keep the cyclic garbage collector off the request path; call once, after warm-up.

    A worker holds ~380,000 long-lived objects (Feast's registry and protos, pandas,
    scikit-learn, the model). Full collections walked them all: 300-400 ms pauses, a few a
    minute under load, each stalling every request in flight. Freezing what exists after
    the warm-up helped by half, but BentoML keeps adding long-lived objects per request
    (its trivial endpoint, measured: full collections of 8-135 ms, growing, p99 124 ms at
    one client). So full collections no longer start by allocation count; young ones
    (cheap: a few hundred objects) still collect cyclic garbage as it is made, and a
    thread runs a full collection every ``full_every_s`` for what reaches the old
    generation. Measured on BentoML's trivial endpoint: p99 at one client 124 -> 1.0 ms.
    """
    import gc
    import threading

    gc.collect()
    gc.freeze()
    first, second, _ = gc.get_threshold()
    gc.set_threshold(first, second, NEVER)

    def collect() -> None:
        while True:
            time.sleep(full_every_s)
            gc.collect()

    threading.Thread(target=collect, name="full-gc", daemon=True).start()


def switch_interval() -> None:
    # Three threads share each worker's GIL: the event loop (reading requests, writing
    # answers), the batch thread (reading and scoring) and the shadow's. At CPython's
    # default 5 ms, a request that arrives while a batch computes waits up to 5 ms for the
    # loop. At 0.5 ms (measured, wrk, one run of 4 s points on a busy 2-core machine): p99
    # at one client 5.8 -> 3.1 ms, shadow at one client 17.6 -> 5.4 ms, throughput within
    # noise. LOOPLINE_SERVING_SWITCH_INTERVAL (seconds) sets another value.
    import sys

    sys.setswitchinterval(float(os.environ.get("LOOPLINE_SERVING_SWITCH_INTERVAL") or 0.0005))


def quiet_request_path() -> None:
    # BentoML 1.4.40 reads ``model_fields`` off each request's input (app.py), which pydantic
    # 2.11+ deprecates. Feast's modules set "once" for DeprecationWarning, and code on the
    # request path changes warning filters, which resets "once": the warning was written to
    # the log on most requests (a write per request, and noise). This filter goes first.
    import warnings

    from pydantic.warnings import PydanticDeprecatedSince211

    warnings.filterwarnings("ignore", category=PydanticDeprecatedSince211)
