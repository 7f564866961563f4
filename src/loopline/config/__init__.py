"""``params.yaml``: the one project configuration, typed and validated when loaded.

One module per group of sections (:mod:`~loopline.config.dataset`,
:mod:`~loopline.config.lifecycle`, :mod:`~loopline.config.serving`); this package names
them all, so callers write ``from loopline.config import Params, DatasetParams``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from loopline.config.base import (
    ConfigError,
    EstimatorName,
    FeatureKind,
    ImputeStrategy,
    Metric,
    MissingPolicy,
    Strict,
)
from loopline.config.dataset import (
    DatasetParams,
    FeatureParams,
    FeatureSpec,
    GeneratorParams,
    LabelEvery,
    PiiHandling,
)
from loopline.config.lifecycle import (
    MonitoringParams,
    PromotionParams,
    ReviewParams,
    TrainingParams,
)
from loopline.config.serving import (
    BatchingParams,
    LimitsParams,
    RateParams,
    ServingParams,
    TlsParams,
)

__all__ = [
    "BatchingParams",
    "ConfigError",
    "DatasetParams",
    "EstimatorName",
    "FeatureKind",
    "FeatureParams",
    "FeatureSpec",
    "GeneratorParams",
    "ImputeStrategy",
    "LabelEvery",
    "LimitsParams",
    "Metric",
    "MissingPolicy",
    "MonitoringParams",
    "Params",
    "PiiHandling",
    "PromotionParams",
    "RateParams",
    "ReviewParams",
    "ServingParams",
    "Strict",
    "TlsParams",
    "TrainingParams",
    "load_params",
    "migrate",
]


class Params(Strict):
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
