"""``training``, ``promotion`` and ``monitoring``: how models are chosen, promoted and watched."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from loopline.config.base import (
    EstimatorName,
    Metric,
    Strict,
)


class TrainingParams(Strict):
    metric: Metric
    # The holdout: the last holdout_days of label timestamps, or (for data without a
    # meaningful time order, e.g. stamped on arrival) a seeded share of the entities.
    holdout_days: int | None = Field(default=None, ge=1)
    holdout_fraction: float | None = Field(default=None, gt=0, lt=1)
    seed: int
    candidates: dict[EstimatorName, dict[str, list[float | int | str | None]]] = Field(min_length=1)
    # Candidates this close to the best metric are ranked by serving latency: "bootstrap_se"
    # (the holdout's standard error of the best metric) or a number >= 0 (0: metric alone).
    selection_tolerance: Literal["bootstrap_se"] | float = "bootstrap_se"
    # More labelled rows than this: each of training and holdout is a stratified sample of
    # this many (the holdout never below what keeps the metric's error under 0.005).
    max_rows: int | None = Field(default=None, ge=1)

    @field_validator("selection_tolerance", mode="before")
    @classmethod
    def _tolerance_known(cls, value: object) -> object:
        if value == "bootstrap_se":
            return value
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf:
            return float(value)
        raise ValueError(f"must be 'bootstrap_se' or a finite number >= 0, got {value!r}")

    @model_validator(mode="after")
    def _one_holdout(self) -> TrainingParams:
        if (self.holdout_days is None) == (self.holdout_fraction is None):
            raise ValueError("set exactly one of holdout_days and holdout_fraction")
        return self

    @field_validator("candidates")
    @classmethod
    def _grids_not_empty(
        cls, value: dict[str, dict[str, list[float | int | str | None]]]
    ) -> dict[str, dict[str, list[float | int | str | None]]]:
        for name, grid in value.items():
            for param, options in grid.items():
                if not options:
                    raise ValueError(f"{name}.{param} lists no values")
        return value


class PromotionParams(Strict):
    floors: dict[Metric, float] = {}
    relative_to_champion: dict[Metric, float] = {}
    segment_column: str | None = None
    max_segment_regression: float = Field(default=0.03, ge=0)
    min_segment_rows: int = Field(default=50, ge=1)
    latency_p95_ms: float | None = Field(default=None, gt=0)
    data_quality: bool = True
    approval: Literal["auto", "manual"] = "auto"
    approver: str | None = None

    @model_validator(mode="after")
    def _manual_needs_approver(self) -> PromotionParams:
        if self.approval == "manual" and not self.approver:
            raise ValueError("approval: manual needs an approver")
        return self


class ReviewParams(Strict):
    """How the rollout review decides between challenger and champion on live labels."""

    metric: Literal["roc_auc", "accuracy"] = "roc_auc"
    # analytic: DeLong for ROC AUC, Wald for accuracy; bootstrap: stratified percentile.
    method: Literal["analytic", "bootstrap"] = "analytic"
    confidence: float = Field(default=0.99, gt=0.5, lt=1)
    margin: float = Field(default=0.01, ge=0, lt=1)
    # Per class and per arm: ROC AUC's variance is driven by the rarer class.
    min_positives: int = Field(default=100, ge=0)
    min_negatives: int = Field(default=100, ge=0)
    # The limits after which an inconclusive rollout gets the default outcome.
    max_labels: int = Field(default=50_000, ge=1)
    max_minutes: float = Field(default=14 * 24 * 60, gt=0)
    default: Literal["rollback", "promote"] = "rollback"
    resamples: int = Field(default=2000, ge=100)
    seed: int = 0


class MonitoringParams(Strict):
    interval_minutes: float = Field(default=10, gt=0)
    window_minutes: float = Field(default=60, gt=0)
    drift_share_threshold: float = Field(default=0.1, gt=0, le=1)
    # A feature drifts when its test's distance passes this (Evidently's default: 0.1).
    feature_drift_threshold: float | None = Field(default=None, gt=0, le=1)
    min_window_rows: int = Field(default=500, ge=1)
    accuracy_drop: float = Field(default=0.05, ge=0, le=1)
    # ROC AUC degraded only when the upper bound of its two-sided interval at this confidence
    # is below holdout - accuracy_drop; judged with this many positives and negatives.
    auc_confidence: float = Field(default=0.9, gt=0.5, lt=1)
    auc_min_class_labels: int = Field(default=30, ge=2)
    min_labels: int = Field(default=200, ge=1)
    cooldown_hours: float = Field(default=6, ge=0)
    # What windows are compared with: the served traffic of recent healthy windows (it ages
    # with the customers), or always the model's holdout.
    reference: Literal["recent", "holdout"] = "recent"
    reference_hours: float = Field(default=24, gt=0)
    # Fewer healthy rows than this and the holdout is the reference.
    reference_min_rows: int = Field(default=2000, ge=1)
    # The feature threshold against the holdout, which is label_delay_days + holdout_days
    # older than the traffic (None: feature_drift_threshold).
    holdout_feature_drift_threshold: float | None = Field(default=None, gt=0, le=1)
    # Prior shift: label rate or mean score moved beyond this relative change, at this
    # confidence; labels judged only with this many expected positives and negatives.
    prior_tolerance: float = Field(default=0.25, gt=0)
    prior_confidence: float = Field(default=0.95, gt=0.5, lt=1)
    prior_min_positives: int = Field(default=30, ge=1)
    retrain_cron: str = "0 2 * * *"
    retrain_on_new_data: bool = False
    rollout: Literal["canary", "shadow"] = "canary"
    canary_share: float = Field(default=0.2, gt=0, le=1)
    canary_min_labels: int = Field(default=200, ge=1)
    canary_minutes: float = Field(default=30, ge=0)
    review: ReviewParams = ReviewParams()
