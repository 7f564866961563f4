"""``params.yaml``: the one project configuration, typed and validated when loaded."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loopline.errors import LooplineError

FeatureKind = Literal["numeric", "categorical"]
MissingPolicy = Literal["reject", "impute", "allow"]
ImputeStrategy = Literal["median", "most_frequent", "constant"]
Metric = Literal["roc_auc", "average_precision", "log_loss", "f1", "accuracy"]
EstimatorName = Literal["logistic_regression", "hist_gradient_boosting", "random_forest"]


class ConfigError(LooplineError):
    """A wrong or missing value in ``params.yaml``; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """One model input: its kind, and what a missing value in a batch means."""

    kind: FeatureKind
    # reject: a missing value rejects the batch. impute: it is filled inside the model's
    # pipeline, fitted on training rows only, so serving fills the same way. allow: it is
    # kept and the model sees it: a category of its own, or a number's "was missing" flag.
    missing: MissingPolicy = "reject"
    # With impute: median (numbers only), most_frequent, or constant (fill_value).
    strategy: ImputeStrategy | None = None
    fill_value: float | str | None = None

    @model_validator(mode="after")
    def _strategy_fits(self) -> FeatureSpec:
        if self.missing != "impute":
            if self.strategy is not None or self.fill_value is not None:
                raise ValueError("strategy and fill_value apply only with missing: impute")
            return self
        if self.strategy == "median" and self.kind == "categorical":
            raise ValueError("a categorical feature cannot be imputed with the median")
        if self.strategy == "constant":
            if self.fill_value is None:
                raise ValueError("strategy: constant needs a fill_value")
            if self.kind == "numeric" and not isinstance(self.fill_value, int | float):
                raise ValueError(
                    f"fill_value of a numeric feature must be a number, got {self.fill_value!r}"
                )
        elif self.fill_value is not None:
            raise ValueError("fill_value applies only with strategy: constant")
        return self

    @property
    def imputation(self) -> ImputeStrategy | None:
        """How the pipeline fills this feature (None: it does not, or only as a safety net)."""
        if self.missing != "impute":
            return None
        return self.strategy or ("median" if self.kind == "numeric" else "most_frequent")


PiiHandling = Literal["drop", "keep", "identifier"]


class LabelEvery(_Strict):
    """Every ``every_days`` days per entity: for daily snapshots, whose neighbours repeat."""

    every_days: int = Field(ge=1)


class DatasetParams(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    source: str
    entity: str
    timestamp: str
    # column: the file has the timestamp column. arrival: it has none, and each accepted
    # batch gets the column, holding the time it arrived.
    timestamp_source: Literal["column", "arrival"] = "column"
    label: str
    # How the file spells the label, e.g. {"Yes": 1, "No": 0}; None: it holds 0 and 1.
    label_values: dict[str, Literal[0, 1]] | None = None
    features: dict[str, FeatureSpec] = Field(min_length=1)
    # Personal columns and what ingestion does with each: drop (never stored), keep
    # (stored encrypted per subject) or identifier (replaced by a keyed pseudonym, like the
    # entity). A list is short for every column dropped.
    pii: dict[str, PiiHandling] = {}
    # Cells holding one of these (or only whitespace) are missing values.
    na_values: list[str] = [""]
    # Which labelled rows become training examples: all, or every N days per entity.
    label_sampling: Literal["all"] | LabelEvery = "all"
    label_delay_days: int = Field(default=0, ge=0)

    @field_validator("features", mode="before")
    @classmethod
    def _kind_shorthand(cls, value: object) -> object:
        # "plan: categorical" is short for "plan: {kind: categorical}".
        if isinstance(value, dict):
            return {k: {"kind": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("pii", mode="before")
    @classmethod
    def _pii_list(cls, value: object) -> object:
        if isinstance(value, list):
            return dict.fromkeys(value, "drop")
        return value

    @field_validator("label_values")
    @classmethod
    def _both_classes(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is not None and set(value.values()) != {0, 1}:
            raise ValueError(f"must map spellings to both 0 and 1, got {value}")
        return value

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

    def pii_columns(self, handling: PiiHandling) -> list[str]:
        """The personal columns ingestion handles this way, in the order params.yaml names them."""
        return [c for c, h in self.pii.items() if h == handling]

    @property
    def numeric(self) -> list[str]:
        return [c for c, spec in self.features.items() if spec.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [c for c, spec in self.features.items() if spec.kind == "categorical"]

    def describe_sampling(self) -> str:
        if self.label_sampling == "all":
            return "every labelled row"
        return f"one labelled row every {self.label_sampling.every_days} days per entity"


class GeneratorParams(_Strict):
    customers: int = Field(ge=10, le=10_000_000)
    days: int = Field(ge=2, le=3650)
    seed: int
    drift_day: int | None = Field(default=None, ge=1)
    start_date: date


class FeatureParams(_Strict):
    service: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    online_ttl_days: int = Field(ge=1)
    # Where Feast keeps features (loopline.feast_profiles): local files, or shared servers
    # named by environment variables. LOOPLINE_FEAST_STORE overrides it.
    store: Literal["local", "postgres", "redis"] = "local"


class TrainingParams(_Strict):
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


class RateParams(_Strict):
    """A token bucket: ``requests_per_second`` on average, ``burst`` at once (null: no limit)."""

    requests_per_second: float | None = Field(default=None, gt=0)
    # Null: one second's worth of requests (at least one).
    burst: int | None = Field(default=None, ge=1)

    @property
    def capacity(self) -> int:
        """The bucket's size: ``burst``, or one second's worth of requests."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.requests_per_second or 1))


class LimitsParams(RateParams):
    """What one request may send, and how often one key may call (docs/serving.md)."""

    # Per key and per worker process: N workers let a key through up to N times this.
    requests_per_second: float | None = Field(default=1000.0, gt=0)
    burst: int | None = Field(default=2000, ge=1)
    # A 1,000-customer batch is about 20 KB; a body over this is refused with 413.
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    # Per-key exceptions to the rate above, by key name (a bulk scorer, a partner).
    keys: dict[str, RateParams] = {}


class TlsParams(_Strict):
    """HTTPS for ``bentoml serve``: PEM files, relative to the project folder (null: HTTP)."""

    certfile: str | None = None
    keyfile: str | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> TlsParams:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("set both certfile and keyfile, or neither")
        return self


class ServingParams(_Strict):
    model_name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    threshold: float = Field(gt=0, lt=1)
    batching: BatchingParams = BatchingParams()
    limits: LimitsParams = LimitsParams()
    tls: TlsParams = TlsParams()
    # With no version in production the service answers /predict with 503 until one is
    # promoted. True lets the Bento's own model answer meanwhile, labelled arm
    # "unpromoted" (never "champion"): for local trials and benchmarks, not for users.
    allow_unpromoted: bool = False


class Params(_Strict):
    dataset: DatasetParams
    # The built-in dataset's generator (``loopline data generate``, the simulator and the
    # drift story); a project with its own data has none.
    generator: GeneratorParams | None = None
    features: FeatureParams
    training: TrainingParams
    promotion: PromotionParams = PromotionParams()
    monitoring: MonitoringParams = MonitoringParams()
    serving: ServingParams

    def built_in(self) -> GeneratorParams:
        """The generator section, for what only works on the built-in dataset."""
        if self.generator is None:
            raise ConfigError(
                "params.yaml has no generator section: the built-in dataset's generator, "
                "simulator and drift story need it (a project with its own data has none)"
            )
        return self.generator

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


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A params snapshot recorded by an older Loopline, in today's keys (for reproduction).

    ``generator.label_every_days`` sampled the labels of every dataset; it is now
    ``dataset.label_sampling``.
    """
    generator = raw.get("generator")
    if not isinstance(generator, dict) or "label_every_days" not in generator:
        return raw
    every = generator["label_every_days"]
    dataset = {"label_sampling": {"every_days": every}, **raw.get("dataset", {})}
    rest = {k: v for k, v in generator.items() if k != "label_every_days"}
    return {**raw, "dataset": dataset, "generator": rest}


def _moved_keys(raw: dict[str, Any], source: Path) -> None:
    generator = raw.get("generator")
    if isinstance(generator, dict) and "label_every_days" in generator:
        every = generator["label_every_days"]
        raise ConfigError(
            f"{source.name}: generator.label_every_days is gone: which labelled rows train is "
            f"now a dataset setting; write `label_sampling: {{every_days: {every}}}` under "
            "dataset (or leave it out: every labelled row)"
        )


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
    _moved_keys(raw, path)
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
