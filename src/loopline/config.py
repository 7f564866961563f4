"""``params.yaml``: the one project configuration, typed and validated when loaded."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

FeatureKind = Literal["numeric", "categorical"]
Metric = Literal["roc_auc", "average_precision", "log_loss", "f1", "accuracy"]
EstimatorName = Literal["logistic_regression", "hist_gradient_boosting", "random_forest"]


class ConfigError(ValueError):
    """A wrong or missing value in ``params.yaml``; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetParams(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    source: str
    entity: str
    timestamp: str
    label: str
    features: dict[str, FeatureKind] = Field(min_length=1)
    pii: list[str] = []
    label_delay_days: int = Field(ge=0)

    @model_validator(mode="after")
    def _columns_distinct(self) -> DatasetParams:
        keys = {"entity": self.entity, "timestamp": self.timestamp, "label": self.label}
        for role, column in keys.items():
            if column in self.features:
                raise ValueError(f"{role} column {column!r} is also listed in features")
            if column in self.pii:
                raise ValueError(f"{role} column {column!r} is also listed in pii")
        overlap = sorted(set(self.pii) & set(self.features))
        if overlap:
            raise ValueError(f"pii columns may not be model features: {overlap}")
        return self

    @property
    def numeric(self) -> list[str]:
        return [c for c, kind in self.features.items() if kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [c for c, kind in self.features.items() if kind == "categorical"]


class GeneratorParams(_Strict):
    customers: int = Field(ge=10, le=10_000_000)
    days: int = Field(ge=2, le=3650)
    label_every_days: int = Field(ge=1)
    seed: int
    drift_day: int | None = Field(default=None, ge=1)
    start_date: date


class FeatureParams(_Strict):
    service: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    online_ttl_days: int = Field(ge=1)


class TrainingParams(_Strict):
    metric: Metric
    holdout_days: int = Field(ge=1)
    seed: int
    candidates: dict[EstimatorName, dict[str, list[float | int | str | None]]] = Field(min_length=1)
    # Candidates this close to the best metric are ranked by serving latency: "bootstrap_se"
    # (the holdout's standard error of the best metric) or a number >= 0 (0: metric alone).
    selection_tolerance: Literal["bootstrap_se"] | float = "bootstrap_se"

    @field_validator("selection_tolerance", mode="before")
    @classmethod
    def _tolerance_known(cls, value: object) -> object:
        if value == "bootstrap_se":
            return value
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf:
            return float(value)
        raise ValueError(f"must be 'bootstrap_se' or a finite number >= 0, got {value!r}")

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


class PromotionParams(_Strict):
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


class ReviewParams(_Strict):
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


class MonitoringParams(_Strict):
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


class BatchingParams(_Strict):
    """Adaptive batching of concurrent requests in each worker (docs/serving.md)."""

    # Customers per batch: one Feast read and one model call serve them all.
    max_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # A request that waited this long for its batch to start is refused with 503: the
    # worker is behind its load. Seconds, not milliseconds: a pause of the machine (measured:
    # batches of 0.3-1.6 s on a 2-core machine at load 5) is not an overload.
    max_latency_ms: float = Field(default=5000.0, gt=0, le=60_000)


class ServingParams(_Strict):
    model_name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    threshold: float = Field(gt=0, lt=1)
    batching: BatchingParams = BatchingParams()


class Params(_Strict):
    dataset: DatasetParams
    generator: GeneratorParams
    features: FeatureParams
    training: TrainingParams
    promotion: PromotionParams = PromotionParams()
    monitoring: MonitoringParams = MonitoringParams()
    serving: ServingParams

    @model_validator(mode="after")
    def _segment_is_categorical(self) -> Params:
        column = self.promotion.segment_column
        if column is not None and column not in self.dataset.categorical:
            raise ValueError(
                f"promotion.segment_column {column!r} must be a categorical dataset feature"
            )
        return self


def _describe(error: ValidationError, source: Path) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{source.name}: {key}: {item['msg']}")
    return "\n".join(lines)


def load_params(path: Path) -> Params:
    """Read and validate ``params.yaml``; raise :class:`ConfigError` naming every bad key."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
