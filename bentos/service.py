"""The HTTP service: online features from the Feast feature service, then the model.

Run it with ``bentoml serve bentos.service:ChurnService`` from the project folder.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Annotated, Any

import bentoml
from bentoml.exceptions import InvalidArgument, NotFound
from pydantic import BaseModel, Field

MAX_BATCH = 1000
CustomerId = Annotated[int, Field(ge=0, le=2**62)]


class Prediction(BaseModel):
    customer_id: int
    probability: float
    label: int
    model_version: str
    request_id: str


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str
    request_id: str


@bentoml.service(name="loopline", traffic={"timeout": 30})
class ChurnService:
    """Churn probability for customers, from the same feature service training used."""

    model_ref = bentoml.models.BentoModel(os.environ.get("LOOPLINE_MODEL_TAG", "churn:latest"))

    def __init__(self) -> None:
        import joblib

        from loopline import features
        from loopline.config import load_params
        from loopline.settings import activate

        paths = activate()
        params = load_params(paths.params_file)
        self.entity = params.dataset.entity
        self.threshold = params.serving.threshold
        self.model = joblib.load(self.model_ref.path_of("model.joblib"))
        self.model_version = str(self.model_ref.tag)
        self.inputs = list(self.model.feature_names_in_)
        self.store = features.feature_store(paths)
        self.feature_service = self.store.get_feature_service(params.features.service)
        stored = {f.name for view in self.store.list_feature_views() for f in view.features}
        self.stored_inputs = [c for c in self.inputs if c in stored]
        self._warm_up()

    def _warm_up(self) -> None:
        # The first Feast lookup pays seconds of lazy imports: pay them before reporting ready.
        started = time.perf_counter()
        self._score([0])
        self.warmup_seconds = time.perf_counter() - started

    def _score(self, ids: list[int]) -> tuple[list[float], list[int]]:
        import pandas as pd

        values = self.store.get_online_features(
            features=self.feature_service, entity_rows=[{self.entity: i} for i in ids]
        ).to_dict()
        frame = pd.DataFrame(values)
        # A customer the online store has never seen comes back with every stored feature null.
        known = frame[self.stored_inputs].notna().any(axis=1)
        unknown = [i for i, ok in zip(ids, known, strict=True) if not ok]
        scores = self.model.predict_proba(frame[self.inputs])[:, 1] if len(frame) else []
        return [float(s) for s in scores], unknown

    @bentoml.api(route="/predict")
    def predict(
        self,
        customer_id: CustomerId | None = None,
        customer_ids: Annotated[list[CustomerId], Field(min_length=1, max_length=MAX_BATCH)]
        | None = None,
    ) -> PredictResponse:
        """Churn probability for one ``customer_id`` or a list of ``customer_ids``."""
        if (customer_id is None) == (customer_ids is None):
            raise InvalidArgument("send exactly one of 'customer_id' or 'customer_ids'")
        ids = [customer_id] if customer_id is not None else list(customer_ids or [])
        scores, unknown = self._score(ids)
        if unknown:
            raise NotFound(f"unknown {self.entity}: {', '.join(map(str, unknown[:20]))}")
        request_id = uuid.uuid4().hex
        predictions = [
            Prediction(
                customer_id=i,
                probability=round(s, 6),
                label=int(s >= self.threshold),
                model_version=self.model_version,
                request_id=request_id,
            )
            for i, s in zip(ids, scores, strict=True)
        ]
        return PredictResponse(
            predictions=predictions, model_version=self.model_version, request_id=request_id
        )

    @bentoml.api(route="/model")
    def model_info(self) -> dict[str, Any]:
        """Which model serves, and what it was made from."""
        return {"model_version": self.model_version, "metadata": dict(self.model_ref.info.metadata)}
