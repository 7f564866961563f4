"""The HTTP service: online features from the Feast feature service, then the model(s).

The registry decides what serves: the champion, and a challenger under a canary, A/B,
shadow or blue-green policy. With nothing in production ``/predict`` answers 503 naming
the command that promotes a version (or, with ``serving.allow_unpromoted``, the Bento's
own model answers as the ``unpromoted`` arm). A watcher thread picks up every registry
change without a restart. Every prediction is logged; feedback joins it later.
Run it with ``bentoml serve bentos.service:ChurnService`` from the project folder.

Workers: ``LOOPLINE_SERVING_WORKERS`` processes (default one per CPU), each with its own
model, Feast store and watcher; a worker killed by the OS is restarted by BentoML's
arbiter while the others keep answering (docs/serving.md, "Workers").
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import bentoml
from bentoml.exceptions import InvalidArgument, NotFound
from pydantic import Field

from loopline.online import OnlineReader
from loopline.serving.answers import Answer, NotServing, UnknownEntity, answer_batch
from loopline.serving.api_models import (
    MAX_BATCH,
    CustomerId,
    FeedbackResponse,
    Prediction,
    PredictResponse,
    Reason,
)
from loopline.serving.auth import ApiKeyMiddleware, Role
from loopline.serving.batcher import Batcher, Overloaded
from loopline.serving.errors import ErrorShapeMiddleware, request_id
from loopline.serving.limits import BodyLimitMiddleware, RateLimitMiddleware
from loopline.serving.process import freeze_heap, load_scorer, quiet_request_path, switch_interval
from loopline.serving.router import no_production, shadowed
from loopline.serving.shadow import ShadowRequest
from loopline.serving.workers import service_options

log = logging.getLogger("loopline.serving")
# A batch slower than this is logged: batches are normally a few milliseconds.
SLOW_BATCH_MS = 100.0


@bentoml.service(name="loopline", **service_options(os.environ))
class ChurnService:
    """Churn probability for customers, from the same feature service training used."""

    # The Bento carries this model. Only the registry's production version answers as the
    # champion; this one answers (as "unpromoted") only under serving.allow_unpromoted.
    model_ref = bentoml.models.BentoModel(os.environ.get("LOOPLINE_MODEL_TAG", "churn:latest"))

    def __init__(self) -> None:
        from threadpoolctl import threadpool_limits

        from loopline import features
        from loopline.config import load_params
        from loopline.privacy.pseudonyms import Pseudonyms
        from loopline.privacy.secrets import pseudonym_key
        from loopline.privacy.subjects import ErasedSubjects
        from loopline.registry import Registry
        from loopline.serving import metrics
        from loopline.serving.predlog import FeedbackLog, PredictionLog
        from loopline.serving.shadow import ShadowScorer
        from loopline.serving.watcher import ModelCache, RegistryWatcher
        from loopline.settings import activate

        started = time.perf_counter()
        self.ready = False  # /readyz: not until this worker has answered a warm-up prediction
        self.last_read_ms = 0.0  # written by the batch thread only
        # One thread per predict: for one-row requests, thread pools cost far more than
        # they save (HistGradientBoosting: ~6 ms vs 150+ ms on a busy 2-core machine). This
        # reaches this thread only; request threads get it from OMP_NUM_THREADS=1, which
        # the service's envs put into every worker's environment.
        threadpool_limits(1)
        paths = activate()
        params = load_params(paths.params_file)
        self.entity = params.dataset.entity
        # Clients send the ids they know; every store holds pseudonyms (docs/privacy.md).
        # Ids repeat: a cache keeps the HMAC off the path of a returning customer.
        key = pseudonym_key(paths)
        self.pseudonym = functools.lru_cache(maxsize=1 << 18)(Pseudonyms(key).of)
        self.threshold = params.serving.threshold
        self.model_name = params.serving.model_name
        self.store = features.feature_store(paths)
        self.feature_service = self.store.get_feature_service(params.features.service)
        # Feast's own call for 1,000 customers took ~120 ms, nearly all of it Python per value;
        # this reads the same tables and returns exactly what it returns (src/loopline/online.py).
        self.reader = OnlineReader(self.store, self.feature_service)
        if not self.reader.fast:
            log.warning("feature reads go through Feast's call: %s", self.reader.reason)
        self.stored_features = frozenset(features.stored_feature_names(self.store))
        self.registry = Registry(paths.registry_url)
        self.registry.upgrade()
        self.metrics = metrics.ServingMetrics()
        self.monitor_metrics = metrics.MonitorMetrics(self.registry.engine, self.model_name)
        # An erased subject's rows still buffered here are dropped at the flush.
        self.erased = ErasedSubjects(paths.registry_url)
        self.predictions = PredictionLog(paths.serving_log, erased=self.erased).start()
        self.feedback_log = FeedbackLog(paths.serving_log, erased=self.erased).start()
        self.shadow = ShadowScorer(self._log_shadow).start()
        self.cache = ModelCache(lambda version: load_scorer(version, self.registry))
        self.table: Any = None
        self.watcher = RegistryWatcher(
            self.registry,
            self.model_name,
            self.cache,
            str(self.model_ref.tag) if params.serving.allow_unpromoted else None,
            self._publish,
            interval=float(os.environ.get("LOOPLINE_RELOAD_INTERVAL", "0.5")),
        )
        self.watcher.refresh(force=True)
        self.watcher.start()
        batching = params.serving.batching
        self.batcher: Batcher[list[int], Answer | UnknownEntity | NotServing] = Batcher(
            self._answer_batch,
            max_batch_size=batching.max_batch_size,
            max_latency_ms=batching.max_latency_ms,
            size=len,
            name="predict-batch",
        )
        self._warm_up()
        quiet_request_path()  # after the warm-up: Feast's imports add warning filters of their own
        freeze_heap()  # last: after everything long-lived is loaded
        switch_interval()  # finer GIL hand-offs between the loop and the batch thread
        # How long a (re)started worker takes to serve: what a crashed worker costs in time.
        log.info("worker %d ready in %.1f s", os.getpid(), time.perf_counter() - started)

    def _publish(self, table: Any) -> None:
        self.table = table  # one assignment: requests see the old table or the new one
        if self.ready:  # a model loaded by hot reload is long-lived too (see freeze_heap)
            import gc

            gc.freeze()

    def _warm_up(self) -> None:
        # The first Feast lookup and the first prediction pay lazy imports and caches: pay
        # them on the request path's own code before reporting ready. Nothing is logged: a
        # warm-up is not a prediction anyone asked for.
        table = self.table
        if table.default_arm is None:
            # Nothing may answer yet (and /readyz still says ready: the worker is up, and
            # /predict explains what is missing); warm the feature read alone.
            self.batcher.call(self._read, [0])
        else:  # on the thread that will read and score every batch
            self.batcher.run_now([[0]])
        if table.challenger:
            columns = self._read([0])
            table.challenger.model.positive_proba(columns)
        self.ready = True

    def __metrics__(self, content: str) -> str:
        """BentoML's hook on ``/metrics``: the monitor's last window joins every scrape."""
        return content + self.monitor_metrics.exposition()

    def __is_ready__(self) -> bool:
        """Whether this worker has its model and Feast store warm (BentoML's ``/readyz``)."""
        return self.ready

    def _read(self, ids: list[int]) -> dict[str, list[Any]]:
        started = time.perf_counter()
        columns = self.reader.read(ids)
        self.last_read_ms = 1e3 * (time.perf_counter() - started)  # for the slow-batch line
        return columns

    def _answer_batch(self, requests: list[list[int]]) -> list[Answer | UnknownEntity | NotServing]:
        # On the batcher's thread: one routing table for the whole batch.
        started = time.perf_counter()
        customers = sum(map(len, requests))
        self.metrics.batch.observe(customers)
        answers = answer_batch(
            self.table, self._read, self.stored_features, requests, random.random
        )
        took_ms = 1e3 * (time.perf_counter() - started)
        if took_ms > SLOW_BATCH_MS:
            log.warning(
                "a batch of %d customers took %.0f ms (feature read %.0f ms)",
                customers,
                took_ms,
                self.last_read_ms,
            )
        return answers

    def _describe(self) -> dict[str, Any]:
        # The worker's pid tells callers (and the crash test) which process answered.
        return {**self.table.describe(), "worker": os.getpid()}

    @bentoml.on_shutdown
    def _close(self) -> None:
        self.watcher.stop()
        self.batcher.close()
        self.shadow.close()
        self.predictions.close()
        self.feedback_log.close()
        self.erased.close()

    @bentoml.api(route="/predict")
    async def predict(
        self,
        ctx: bentoml.Context,
        customer_id: CustomerId | None = None,
        customer_ids: Annotated[list[CustomerId], Field(min_length=1, max_length=MAX_BATCH)]
        | None = None,
    ) -> PredictResponse:
        """Churn probability for one ``customer_id`` or a list of ``customer_ids``."""
        started = time.perf_counter()
        if (customer_id is None) == (customer_ids is None):
            return _refuse(ctx, 400, "send exactly one of 'customer_id' or 'customer_ids'")
        asked = [customer_id] if customer_id is not None else list(customer_ids or [])
        ids = [self.pseudonym(i) for i in asked]
        given = dict(zip(ids, asked, strict=True))
        try:
            # Served together with whatever else this worker is asked meanwhile.
            answer = await self.batcher.submit(ids)
        except UnknownEntity as exc:
            self.metrics.error("unknown_entity")
            shown = ", ".join(str(given.get(i, i)) for i in exc.ids[:20])
            return _refuse(ctx, 404, f"unknown {self.entity}: {shown}")
        except NotServing:
            self.metrics.error("no_production")
            return _refuse(ctx, 503, no_production(self.model_name), code="no_production")
        except Overloaded as exc:
            self.metrics.error("overloaded")
            return _refuse(ctx, 503, str(exc))
        rid = request_id(ctx.request.scope)
        latency_ms = 1e3 * (time.perf_counter() - started)
        now = datetime.now(UTC)
        predictions = []
        logged = [c for c in answer.features if c != self.entity]
        for n, i in enumerate(answer.ids):
            score, arm, version = answer.scores[n], answer.arms[n], answer.versions[n]
            predictions.append(
                Prediction(
                    customer_id=given[i],
                    probability=round(score, 6),
                    label=int(score >= self.threshold),
                    model_version=version,
                    arm=arm,
                    request_id=rid,
                )
            )
            row = {c: answer.features[c][n] for c in logged}
            self._log(rid, now, i, row, version, arm, score, latency_ms)
        for arm, version in sorted(set(zip(answer.arms, answer.versions, strict=True))):
            mine = [s for s, a in zip(answer.scores, answer.arms, strict=True) if a == arm]
            self.metrics.observe(version, arm, mine, latency_ms / 1e3)
        table = answer.table
        if shadowed(table, random.random()):
            self.shadow.submit(ShadowRequest(table.challenger, rid, now, ids, answer.features))
        return PredictResponse(predictions=predictions, request_id=rid)

    def _log(
        self,
        request_id: str,
        at: datetime,
        entity_id: int,
        features: dict[str, Any],
        version: str,
        arm: str,
        score: float,
        latency_ms: float,
        shadow: bool = False,
    ) -> None:
        self.predictions.log(
            request_id=request_id,
            at=at,
            entity_id=entity_id,
            model_version=version,
            arm=arm,
            shadow=shadow,
            score=score,
            label=int(score >= self.threshold),
            latency_ms=latency_ms,
            features=features,
        )

    def _log_shadow(self, request: Any, scores: list[float], latency_ms: float) -> None:
        # On the shadow thread: the caller already has the champion's answer.
        version = request.arm.version
        logged = [c for c in request.features if c != self.entity]
        for n, (i, score) in enumerate(zip(request.ids, scores, strict=True)):
            features = {c: request.features[c][n] for c in logged}
            self._log(
                request.request_id,
                request.at,
                i,
                features,
                version,
                "challenger",
                score,
                latency_ms,
                True,
            )
        self.metrics.observe(version, "shadow", scores, latency_ms / 1e3)

    @bentoml.api(route="/feedback")
    def feedback(
        self,
        ctx: bentoml.Context,
        label: Literal[0, 1],
        request_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = None,
        customer_id: CustomerId | None = None,
        at: datetime | None = None,
    ) -> FeedbackResponse:
        """The true outcome of an earlier prediction, by ``request_id`` or customer and time."""
        if request_id is None and (customer_id is None or at is None):
            raise InvalidArgument("send 'request_id', or both 'customer_id' and 'at'")
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        entity_id = None if customer_id is None else self.pseudonym(customer_id)
        self.feedback_log.record(label=label, request_id=request_id, entity_id=entity_id, at=at)
        return FeedbackResponse(accepted=1, request_id=request_id)

    @bentoml.api(route="/model")
    def model_info(self, ctx: bentoml.Context) -> dict[str, Any]:
        """What serves now, under which policy, and which worker process answered."""
        return self._describe()

    @bentoml.api(route="/admin/reload")
    def reload(self, ctx: bentoml.Context) -> dict[str, Any]:
        """Re-read the registry now in the worker that answers; the others poll (admin key).

        A version whose file fails its hash check or its scan is refused with 409 naming
        it, and what served before goes on serving."""
        from loopline.model_scan import UnsafeModel
        from loopline.serving.process import TamperedModel

        try:
            self.watcher.refresh(force=True)
        except (TamperedModel, UnsafeModel) as exc:
            log.error("%s; still serving the previous table", exc)
            return _refuse(ctx, 409, f"{exc}; still serving the previous table", "model_refused")
        return self._describe()

    @bentoml.api(route="/admin/traffic")
    def traffic(
        self,
        ctx: bentoml.Context,
        policy: Literal["single", "canary", "ab", "shadow", "blue-green"],
        reason: Reason,
        challenger_share: Annotated[float, Field(ge=0, le=1)] = 0.0,
    ) -> dict[str, Any]:
        """Change the traffic policy (admin key); recorded in the registry with the key's name."""
        key = ctx.request.state.api_key  # set by ApiKeyMiddleware
        try:
            self.registry.set_policy(
                self.model_name, policy, challenger_share, actor=f"key:{key.name}", reason=reason
            )
        except LookupError as exc:  # no version of this model registered yet
            raise NotFound(str(exc)) from exc
        except ValueError as exc:  # the registry's own validation errors are client errors
            raise InvalidArgument(str(exc)) from exc
        # This worker at once; the others at their next poll (LOOPLINE_RELOAD_INTERVAL).
        self.watcher.refresh()
        return self._describe()


# Outermost of ours: every error (ours, BentoML's, the key check's) leaves in one shape.
ChurnService.add_asgi_middleware(ErrorShapeMiddleware)
# serving.limits (params.yaml): a body over the limit is refused on every route, key or not.
ChurnService.add_asgi_middleware(BodyLimitMiddleware)
# Keys are checked before BentoML sees the request, so 401/403 carry their reason.
ChurnService.add_asgi_middleware(
    ApiKeyMiddleware,
    routes={
        "/predict": Role.CLIENT,
        "/feedback": Role.CLIENT,
        "/model": Role.CLIENT,
        "/admin/reload": Role.ADMIN,
        "/admin/traffic": Role.ADMIN,
    },
)
# After the key check: the buckets are per key name (and per worker process).
ChurnService.add_asgi_middleware(RateLimitMiddleware)


def _refuse(ctx: bentoml.Context, status: int, message: str, code: str | None = None) -> Any:
    """An error answer without raising: BentoML logs a traceback for every raised error
    (a cost per bad request under load) and hides the message of a 5xx. ``code`` replaces
    the status's usual one (serving/errors.py) where one status has two meanings."""
    from starlette.responses import JSONResponse

    ctx.response.status_code = status  # BentoML sets the answer's status from the context
    body = {"error": message} if code is None else {"error": message, "code": code}
    return JSONResponse(body, status_code=status)
