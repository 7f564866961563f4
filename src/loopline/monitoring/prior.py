"""Label-prior shift: the window's positive rate and mean score against the reference's.

Neither ROC AUC nor the input features see a change in how many customers churn: ROC AUC
ignores the class balance, and a prior shift can leave every input's distribution nearly
as it was. Two means can: the positive rate of labelled feedback, and the mean predicted
probability (which needs no labels, so it speaks long before they arrive).

The rows are daily snapshots of customers, and one customer's rows share their churn, so
rows are not independent: the standard errors here are cluster-robust by customer (CR1).
With iid rows they reduce to the usual ``s / sqrt(n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

LABEL_RATE = "label rate"
MEAN_SCORE = "mean score"


@dataclass(frozen=True)
class MeanShift:
    """One quantity's mean in the window and in the reference, with standard errors.

    ``n`` counts the rows with a value and ``clusters`` the distinct customers among them.
    ``positives`` is the sum of the values (the positive labels, for the label rate).
    """

    quantity: str
    window_mean: float | None
    window_se: float | None
    window_n: int
    window_clusters: int
    window_positives: float
    reference_mean: float | None
    reference_se: float | None
    reference_n: int
    reference_clusters: int


def mean_shift(
    quantity: str,
    reference: pd.Series,
    current: pd.Series,
    reference_groups: pd.Series | None = None,
    current_groups: pd.Series | None = None,
) -> MeanShift:
    """Means and cluster-robust standard errors of ``current`` and ``reference``."""
    w_mean, w_se, w_n, w_g, w_sum = _mean_se(current, current_groups)
    r_mean, r_se, r_n, r_g, _ = _mean_se(reference, reference_groups)
    return MeanShift(quantity, w_mean, w_se, w_n, w_g, w_sum, r_mean, r_se, r_n, r_g)


def _mean_se(
    values: pd.Series, groups: pd.Series | None
) -> tuple[float | None, float | None, int, int, float]:
    x = pd.to_numeric(values, errors="coerce")
    known = x.notna().to_numpy()
    y = x.to_numpy(dtype="float64")[known]
    n = len(y)
    if n == 0:
        return None, None, 0, 0, 0.0
    mean = float(y.mean())
    ids = np.arange(n) if groups is None else pd.factorize(groups.to_numpy()[known])[0]
    clusters = int(ids.max()) + 1
    if clusters < 2:
        return mean, None, n, clusters, float(y.sum())
    # CR1: the residuals summed within each customer, squared, with the small-sample factor.
    sums = np.bincount(ids, weights=y - mean, minlength=clusters)
    variance = clusters / (clusters - 1) * float(np.sum(sums**2)) / n**2
    return mean, math.sqrt(variance), n, clusters, float(y.sum())
