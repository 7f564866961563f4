"""What the HTTP API takes and answers: the request fields' limits and the response bodies.

BentoML builds the OpenAPI schema and validates requests from these, so the limits here
are what a client sees refused with 400 before any work is done.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

MAX_BATCH = 1000
CustomerId = Annotated[int, Field(ge=0, le=2**62)]
Reason = Annotated[str, Field(min_length=3, max_length=500)]


class Prediction(BaseModel):
    customer_id: int
    probability: float
    label: int
    model_version: str
    arm: str
    request_id: str


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    request_id: str


class FeedbackResponse(BaseModel):
    accepted: int
    request_id: str | None
