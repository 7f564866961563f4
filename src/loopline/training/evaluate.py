"""Metrics on a holdout, and which direction is better for each."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import metrics

LOWER_IS_BETTER = {"log_loss"}

_Metric = Callable[[np.ndarray, np.ndarray, float], float]

_METRICS: dict[str, _Metric] = {
    "roc_auc": lambda y, score, _: metrics.roc_auc_score(y, score),
    "average_precision": lambda y, score, _: metrics.average_precision_score(y, score),
    "log_loss": lambda y, score, _: metrics.log_loss(
        y, np.clip(score, 1e-6, 1 - 1e-6), labels=[0, 1]
    ),
    "f1": lambda y, score, t: metrics.f1_score(y, (score >= t).astype(int), zero_division=0),
    "accuracy": lambda y, score, t: metrics.accuracy_score(y, (score >= t).astype(int)),
}


def metric_value(metric: str, y_true: np.ndarray, score: np.ndarray, threshold: float) -> float:
    """One metric of one set of scores; ``threshold`` labels them for F1 and accuracy."""
    return float(_METRICS[metric](y_true, score, threshold))


def classification_metrics(
    y_true: np.ndarray, score: np.ndarray, threshold: float
) -> dict[str, float]:
    """ROC AUC, average precision, log loss, F1 and accuracy for one set of scores."""
    return {name: metric_value(name, y_true, score, threshold) for name in _METRICS}


def better(metric: str, a: float, b: float) -> bool:
    """Whether score ``a`` beats ``b`` on ``metric``."""
    return a < b if metric in LOWER_IS_BETTER else a > b
