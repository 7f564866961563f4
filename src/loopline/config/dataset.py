"""``dataset``, ``generator`` and ``features``: what the data is and where features live."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from loopline.config.base import (
    FeatureKind,
    ImputeStrategy,
    MissingPolicy,
    Strict,
)


class FeatureSpec(Strict):
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


class LabelEvery(Strict):
    """Every ``every_days`` days per entity: for daily snapshots, whose neighbours repeat."""

    every_days: int = Field(ge=1)


class DatasetParams(Strict):
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


class GeneratorParams(Strict):
    customers: int = Field(ge=10, le=10_000_000)
    days: int = Field(ge=2, le=3650)
    seed: int
    drift_day: int | None = Field(default=None, ge=1)
    start_date: date


class FeatureParams(Strict):
    service: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    online_ttl_days: int = Field(ge=1)
    # Where Feast keeps features (loopline.feast_profiles): local files, or shared servers
    # named by environment variables. LOOPLINE_FEAST_STORE overrides it.
    store: Literal["local", "postgres", "redis"] = "local"
