"""Training on a sample when the labelled set outgrows ``training.max_rows``.

Rows are drawn stratified by label and by week of their timestamp, so the sample keeps the
churn rate and the mix of seasons the full set has. The holdout is sampled too when it is
larger than ``max_rows``, but never below the size that keeps the metric's standard error
under :data:`SE_TARGET`: a holdout that noisy could not tell candidates apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopline.errors import LooplineError

SE_TARGET = 0.005
# ROC AUC's standard error depends on the AUC itself; the bound takes the worst over this
# range (a model that does not beat 0.5 is refused by the gates anyway).
_AUC_GRID = np.linspace(0.5, 0.99, 50)


class SampleTooSmall(LooplineError):
    """``training.max_rows`` would leave a holdout too small to measure the metric."""


def auc_standard_error(auc: float, positives: float, negatives: float) -> float:
    """Hanley and McNeil's (1982) standard error of ROC AUC for these class counts."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def worst_standard_error(metric: str, rows: int, positive_share: float) -> float:
    """An upper bound of the metric's standard error on ``rows`` holdout rows.

    ROC AUC: Hanley-McNeil at the worst AUC. Accuracy: a proportion at 0.5. The other
    metrics have no closed form; they take ROC AUC's bound, and the selected model's
    bootstrap error on the holdout (on the model card) is the check.
    """
    if metric == "accuracy":
        return math.sqrt(0.25 / rows)
    positives = max(rows * positive_share, 1.0)
    negatives = max(rows * (1 - positive_share), 1.0)
    return max(auc_standard_error(float(a), positives, negatives) for a in _AUC_GRID)


def holdout_minimum(metric: str, positive_share: float, target: float = SE_TARGET) -> int:
    """The fewest holdout rows whose worst-case standard error is at most ``target``."""
    if not 0 < positive_share < 1:
        raise ValueError(f"a holdout needs both classes; positive share is {positive_share}")
    low, high = 2, 2
    while worst_standard_error(metric, high, positive_share) > target:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if worst_standard_error(metric, middle, positive_share) > target:
            low = middle
        else:
            high = middle
    return high


def stratified_sample(
    frame: pd.DataFrame, label: str, timestamp: str, rows: int, seed: int
) -> pd.DataFrame:
    """``rows`` rows of ``frame``, each (label, week) stratum in proportion, in input order.

    Quotas are rounded by largest remainder so they add up to ``rows`` exactly; within a
    stratum the rows kept are a seeded random choice.
    """
    if rows >= len(frame):
        return frame
    stamps = frame[timestamp]
    week = ((stamps - stamps.min()).dt.days // 7).to_numpy()
    strata = pd.MultiIndex.from_arrays([frame[label].to_numpy(), week])
    codes, uniques = pd.factorize(strata)
    sizes = np.bincount(codes, minlength=len(uniques))
    exact = sizes * rows / len(frame)
    quota = np.floor(exact).astype(np.int64)
    short = rows - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1
    order = np.random.default_rng(seed).random(len(frame))
    rank = pd.Series(order).groupby(codes).rank(method="first").to_numpy()
    return frame[rank <= quota[codes]]


@dataclass(frozen=True)
class SampleRecord:
    """What was sampled, for candidates.json and the model card."""

    max_rows: int
    train_rows: int
    train_rows_sampled: int
    holdout_rows: int
    holdout_rows_sampled: int
    holdout_minimum: int
    holdout_se_bound: float

    @property
    def sampled(self) -> bool:
        return self.train_rows_sampled < self.train_rows or (
            self.holdout_rows_sampled < self.holdout_rows
        )

    def record(self) -> dict[str, Any]:
        return {
            "max_rows": self.max_rows,
            "train_rows_before": self.train_rows,
            "holdout_rows_before": self.holdout_rows,
            "holdout_minimum": self.holdout_minimum,
            "holdout_se_bound": round(self.holdout_se_bound, 6),
            "stratified_by": "label and week",
        }


def sample_parts(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    label: str,
    timestamp: str,
    metric: str,
    max_rows: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, SampleRecord]:
    """Both parts cut to ``max_rows`` each; the holdout never below its minimum."""
    share = float(holdout[label].mean())
    minimum = holdout_minimum(metric, share)
    kept = holdout
    if len(holdout) > max_rows:
        if max_rows < minimum:
            raise SampleTooSmall(
                f"training.max_rows={max_rows:,} would cut the holdout ({len(holdout):,} rows) "
                f"below the {minimum:,} rows that keep the {metric} standard error under "
                f"{SE_TARGET} at its {share:.1%} positive share: raise training.max_rows "
                "to at least that"
            )
        kept = stratified_sample(holdout, label, timestamp, max_rows, seed + 1)
    sample = stratified_sample(train, label, timestamp, max_rows, seed)
    record = SampleRecord(
        max_rows=max_rows,
        train_rows=len(train),
        train_rows_sampled=len(sample),
        holdout_rows=len(holdout),
        holdout_rows_sampled=len(kept),
        holdout_minimum=minimum,
        holdout_se_bound=worst_standard_error(metric, len(kept), share),
    )
    return sample, kept, record
