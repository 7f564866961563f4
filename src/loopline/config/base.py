"""What every section of ``params.yaml`` shares: strict models, the error, the names."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from loopline.errors import LooplineError

FeatureKind = Literal["numeric", "categorical"]
MissingPolicy = Literal["reject", "impute", "allow"]
ImputeStrategy = Literal["median", "most_frequent", "constant"]
Metric = Literal["roc_auc", "average_precision", "log_loss", "f1", "accuracy"]
EstimatorName = Literal["logistic_regression", "hist_gradient_boosting", "random_forest"]


class ConfigError(LooplineError):
    """A wrong or missing value in ``params.yaml``; the message names the key."""


class Strict(BaseModel):
    """A section: unknown keys are errors (a typo is never silently ignored), values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
