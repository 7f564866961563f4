"""Metrics on a holdout, and which direction is better for each."""

from __future__ import annotations

import numpy as np
from sklearn import metrics

LOWER_IS_BETTER = {"log_loss"}


def classification_metrics(
    y_true: np.ndarray, score: np.ndarray, threshold: float
) -> dict[str, float]:
    """ROC AUC, average precision, log loss, F1 and accuracy for one set of scores."""
    label = (score >= threshold).astype(int)
    clipped = np.clip(score, 1e-6, 1 - 1e-6)
    return {
        "roc_auc": float(metrics.roc_auc_score(y_true, score)),
        "average_precision": float(metrics.average_precision_score(y_true, score)),
        "log_loss": float(metrics.log_loss(y_true, clipped, labels=[0, 1])),
        "f1": float(metrics.f1_score(y_true, label, zero_division=0)),
        "accuracy": float(metrics.accuracy_score(y_true, label)),
    }


def better(metric: str, a: float, b: float) -> bool:
    """Whether score ``a`` beats ``b`` on ``metric``."""
    return a < b if metric in LOWER_IS_BETTER else a > b
