"""Permutation importance on the holdout: how much worse the run's metric gets when one
input column's values are shuffled across rows.

Measured on the holdout (not the training rows), so it shows what the model relies on for
data it has not seen. Each input column of the feature service is shuffled as a whole,
before the pipeline's encoders, so the importance is per feature as the user knows it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from threadpoolctl import threadpool_limits

from loopline.training.evaluate import LOWER_IS_BETTER, metric_value

# Shuffles per feature. Three keep the cost near three holdout predictions per feature;
# the spread of the three is recorded beside the mean.
REPEATS = 3
# Beyond this many holdout rows a seeded sample is permuted: the importance of the
# demo's features is stable to about 0.002 ROC AUC at 20,000 rows, and the cost grows
# with rows times features times repeats.
MAX_ROWS = 20_000


def permutation_ranking(
    model: Any,
    inputs: pd.DataFrame,
    y_true: np.ndarray,
    metric: str,
    threshold: float,
    seed: int,
    *,
    repeats: int = REPEATS,
    max_rows: int = MAX_ROWS,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per input column: mean and spread of the metric's drop, sorted by mean, highest first.

    Also returns what it was measured on (rows used of rows held out, repeats, metric). With
    one label class a ranking metric is undefined, and the ranking comes back empty.
    """
    y = np.asarray(y_true).astype(int)
    basis: dict[str, Any] = {"metric": metric, "repeats": repeats, "holdout_rows": len(y)}
    if len(np.unique(y)) < 2 and metric in ("roc_auc", "average_precision"):
        return [], basis | {"rows": 0}
    rows = np.arange(len(y))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0

    def score(estimator: Any, x: pd.DataFrame, y_part: np.ndarray) -> float:
        proba = np.asarray(estimator.predict_proba(x))[:, 1]
        return sign * metric_value(metric, y_part, proba, threshold)

    # One thread: the candidates are assessed in parallel tasks, and OpenMP pools
    # (HistGradientBoosting's) made it 3-4x slower on a busy 2-core machine.
    with threadpool_limits(limits=1):
        found = permutation_importance(
            model,
            inputs.iloc[rows],
            y[rows],
            scoring=score,
            n_repeats=repeats,
            random_state=seed,
        )
    ranked = sorted(
        zip(inputs.columns, found.importances_mean, found.importances_std, strict=True),
        key=lambda item: (-float(item[1]), str(item[0])),
    )
    ranking = [
        {"feature": str(column), "mean": round(float(m), 6), "std": round(float(s), 6)}
        for column, m, s in ranked
    ]
    return ranking, basis | {"rows": len(rows)}
