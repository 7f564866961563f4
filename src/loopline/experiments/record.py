"""What a fitted candidate is recorded with, beyond its point metrics: intervals, curves,
calibration, confusion counts, permutation importance, per-segment metrics and its size.

Computed where the candidate is fitted (one task per candidate in the train flow), so the
extra cost runs in parallel with the other candidates' fits.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopline.experiments.curves import diagnostics
from loopline.experiments.importance import permutation_ranking
from loopline.experiments.intervals import metric_intervals

BOOTSTRAP_RESAMPLES = 200  # as many as the selection's standard error is computed from


@dataclass(frozen=True)
class Assessment:
    """A candidate's holdout metrics with intervals, its diagnostics and its size in bytes."""

    metrics: dict[str, dict[str, float | None]]
    diagnostics: dict[str, Any]
    model_bytes: int


def assess(
    model: Any,
    inputs: pd.DataFrame,
    y_true: np.ndarray,
    score: np.ndarray,
    *,
    metric: str,
    threshold: float,
    seed: int,
    segment_column: str | None,
    segment_values: pd.Series | None = None,
) -> Assessment:
    """Everything recorded of one fitted ``model`` on its holdout (``score``: its P(positive)).

    ``segment_values`` are the holdout's values of ``segment_column`` when that column is not
    among the model's ``inputs``.
    """
    y = np.asarray(y_true).astype(int)
    found = diagnostics(y, score, threshold)
    ranking, basis = permutation_ranking(model, inputs, y, metric, threshold, seed)
    found["importance"] = ranking
    found["importance_basis"] = basis
    found["segments"] = None
    if segment_column is not None:
        values = segment_values if segment_values is not None else inputs[segment_column]
        found["segments"] = segments(values, y, score, segment_column, threshold)
    return Assessment(
        metrics=metric_intervals(y, score, threshold, seed, BOOTSTRAP_RESAMPLES),
        diagnostics=found,
        model_bytes=model_bytes(model),
    )


def segments(
    values: pd.Series | np.ndarray,
    y_true: np.ndarray,
    score: np.ndarray,
    column: str,
    threshold: float,
) -> dict[str, Any]:
    """Rows, positives, ROC AUC (None with one class) and accuracy per value of ``column``."""
    from sklearn.metrics import roc_auc_score

    labels = pd.Series(values).astype(str).to_numpy()
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    rows = []
    for segment in sorted(set(labels)):
        mask = labels == segment
        ys, ss = y[mask], s[mask]
        auc = float(roc_auc_score(ys, ss)) if len(np.unique(ys)) == 2 else None
        rows.append(
            {
                "segment": segment,
                "rows": int(mask.sum()),
                "positives": int(ys.sum()),
                "roc_auc": None if auc is None else round(auc, 6),
                "accuracy": round(float(np.mean((ss >= threshold) == (ys == 1))), 6),
            }
        )
    return {"column": column, "rows": rows}


def model_bytes(model: Any) -> int:
    """The size of the fitted pipeline as joblib writes it (what the model store keeps)."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getbuffer().nbytes
