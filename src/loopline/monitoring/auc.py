"""How far a window's ROC AUC can be trusted: its standard error and confidence interval.

A window's ROC AUC on a few hundred labels, of which only a few dozen are churners, varies
by a few hundredths from window to window, as much as the drops the monitor looks for. The
policy therefore judges the interval, not the estimate.

The standard error is Hanley and McNeil's (1982), which needs only the estimate and the
count of each class (the policy sees numbers, not rows). Rows of one customer share their
label, so they are not independent: the counts are scaled by distinct customers per
labelled row, which treats a customer's repeated rows as one observation (conservative,
and a no-op when every row is another customer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class AucInterval:
    """A ROC AUC, its standard error and its two-sided ``confidence`` interval."""

    roc_auc: float
    se: float
    low: float
    high: float
    confidence: float


def hanley_mcneil_se(auc: float, positives: float, negatives: float) -> float:
    """Hanley-McNeil standard error of a ROC AUC on ``positives`` and ``negatives``."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def auc_interval(auc: float, positives: float, negatives: float, confidence: float) -> AucInterval:
    """The normal interval ``auc ± z·se`` at ``confidence`` (two-sided), clipped to [0, 1].

    ``positives`` and ``negatives`` may be effective (fractional) counts.
    """
    se = hanley_mcneil_se(auc, positives, negatives)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return AucInterval(auc, se, max(0.0, auc - z * se), min(1.0, auc + z * se), confidence)
