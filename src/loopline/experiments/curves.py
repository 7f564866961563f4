"""ROC, precision-recall and calibration curves and the confusion counts of one set of scores.

Pure functions over numpy arrays, returning JSON-ready dicts: the registry stores them, the
dashboard draws them and DVC's plot files are written from them, so all three agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

CALIBRATION_BINS = 10


def diagnostics(
    y_true: np.ndarray, score: np.ndarray, threshold: float, *, points: int = 101
) -> dict[str, Any]:
    """Curves (at most about ``points`` rows each), calibration and the confusion counts.

    With one label class in ``y_true`` the ROC and precision-recall curves are undefined:
    they come back empty and ``unavailable`` says why; calibration and confusion still hold.
    """
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    out: dict[str, Any] = {
        "roc": [],
        "precision_recall": [],
        "calibration": calibration(y, s),
        "confusion": confusion(y, s, threshold),
        "unavailable": one_class_reason(y),
    }
    if out["unavailable"] is None:
        out["roc"] = roc(y, s, points=points)
        out["precision_recall"] = precision_recall(y, s, points=points)
    return out


def one_class_reason(y_true: np.ndarray) -> str | None:
    """Why curves of these labels cannot be drawn (None when both classes are present)."""
    y = np.asarray(y_true).astype(int)
    if len(y) == 0:
        return "the holdout has no rows: ROC and precision-recall curves need both label classes"
    classes = np.unique(y)
    if len(classes) > 1:
        return None
    return (
        f"the holdout has only one label class ({len(y)} rows, all {int(classes[0])}): "
        "ROC and precision-recall curves need both"
    )


def roc(y_true: np.ndarray, score: np.ndarray, *, points: int = 101) -> list[dict[str, float]]:
    """The ROC curve from (0, 0) to (1, 1), thinned to about ``points`` of its vertices."""
    fpr, tpr, _ = roc_curve(y_true, score)
    keep = _thin(fpr, tpr, points)
    return [{"fpr": _r(fpr[i]), "tpr": _r(tpr[i])} for i in keep]


def precision_recall(
    y_true: np.ndarray, score: np.ndarray, *, points: int = 101
) -> list[dict[str, float]]:
    """The precision-recall curve by rising recall, thinned to about ``points`` vertices."""
    precision, recall, _ = precision_recall_curve(y_true, score)
    # sklearn lists it by falling recall, ending at (recall 0, precision 1).
    precision, recall = precision[::-1], recall[::-1]
    keep = _thin(recall, precision, points)
    return [{"recall": _r(recall[i]), "precision": _r(precision[i])} for i in keep]


def calibration(
    y_true: np.ndarray, score: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[dict[str, Any]]:
    """Mean predicted against observed positive rate in quantile bins of the score.

    Quantile bins hold about equal rows each, so every point has the same weight of
    evidence; tied scores can merge bins, so there may be fewer than ``bins``.
    """
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(score, dtype=float)
    if len(s) == 0:
        return []
    edges = np.unique(np.quantile(s, np.linspace(0, 1, bins + 1)))
    # Inner edges only: the lowest and highest scores fall into the first and last bin.
    which = np.searchsorted(edges[1:-1], s, side="right")
    rows = []
    for b in range(len(edges) - 1 if len(edges) > 1 else 1):
        mask = which == b
        count = int(mask.sum())
        if count:
            rows.append(
                {
                    "predicted": _r(s[mask].mean()),
                    "observed": _r(y[mask].mean()),
                    "count": count,
                }
            )
    return rows


def confusion(y_true: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, Any]:
    """Counts at the serving threshold (a score at or above it predicts the positive class)."""
    y = np.asarray(y_true).astype(int)
    predicted = np.asarray(score, dtype=float) >= threshold
    actual = y == 1
    return {
        "threshold": float(threshold),
        "tp": int(np.sum(predicted & actual)),
        "fp": int(np.sum(predicted & ~actual)),
        "tn": int(np.sum(~predicted & ~actual)),
        "fn": int(np.sum(~predicted & actual)),
    }


def _thin(x: np.ndarray, y: np.ndarray, points: int) -> list[int]:
    """Indices of about ``points`` vertices spread evenly along the curve's length.

    Evenly by length rather than by index: a curve's vertices crowd where scores crowd,
    and thinning by index would draw a steep part as one straight segment. The first and
    last vertices always stay.
    """
    n = len(x)
    if n <= points:
        return list(range(n))
    step = np.abs(np.diff(x)) + np.abs(np.diff(y))
    length = np.concatenate([[0.0], np.cumsum(step)])
    targets = np.linspace(0.0, length[-1], points)
    picked = np.searchsorted(length, targets, side="left").clip(0, n - 1)
    return sorted({0, n - 1, *(int(i) for i in picked)})


def _r(value: Any) -> float:
    return round(float(value), 6)
