"""Fit every candidate on the past, score it on the most recent days, keep the best."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from loopline.config import DatasetParams, TrainingParams
from loopline.faults import checkpoint
from loopline.training.candidates import Candidate, build_pipeline, expand
from loopline.training.evaluate import better, classification_metrics


@dataclass(frozen=True)
class Split:
    """A time-based split: everything before ``cutoff`` trains, the rest is the holdout."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    cutoff: pd.Timestamp


@dataclass
class CandidateResult:
    candidate: Candidate
    metrics: dict[str, float]
    fit_seconds: float
    model: Pipeline | None = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate.name,
            "estimator": self.candidate.estimator,
            **{k: round(v, 4) for k, v in self.metrics.items()},
            "fit_seconds": round(self.fit_seconds, 2),
        }


def time_split(frame: pd.DataFrame, dataset: DatasetParams, holdout_days: int) -> Split:
    """Hold out the last ``holdout_days`` of label timestamps; refuse a split with no data."""
    stamps = frame[dataset.timestamp]
    cutoff = stamps.max() - timedelta(days=holdout_days)
    train, holdout = frame[stamps <= cutoff], frame[stamps > cutoff]
    for part, rows in (("training", train), ("holdout", holdout)):
        if rows[dataset.label].nunique() < 2:
            raise ValueError(
                f"the {part} part of the time split (cutoff {cutoff:%Y-%m-%d}, "
                f"holdout_days={holdout_days}) needs both label classes; it has {len(rows)} rows"
            )
    return Split(train=train, holdout=holdout, cutoff=cutoff)


def feature_columns(frame: pd.DataFrame, dataset: DatasetParams) -> tuple[list[str], list[str]]:
    """Numeric and categorical inputs: everything the feature service returned."""
    keys = {dataset.entity, dataset.timestamp, dataset.label}
    columns = [c for c in frame.columns if c not in keys]
    categorical = [c for c in columns if c in dataset.categorical]
    numeric = [c for c in columns if c not in categorical]
    return numeric, categorical


def fit_candidates(
    split: Split, dataset: DatasetParams, training: TrainingParams, threshold: float
) -> list[CandidateResult]:
    """Fit each grid point on the training part and score it on the holdout."""
    numeric, categorical = feature_columns(split.train, dataset)
    inputs = numeric + categorical
    y_train = split.train[dataset.label].to_numpy()
    y_hold = split.holdout[dataset.label].to_numpy()
    results = []
    for candidate in expand(training.candidates):
        pipeline = build_pipeline(candidate, numeric, categorical, training.seed)
        started = time.perf_counter()
        pipeline.fit(split.train[inputs], y_train)
        elapsed = time.perf_counter() - started
        score = pipeline.predict_proba(split.holdout[inputs])[:, 1]
        metrics = classification_metrics(y_hold, score, threshold)
        results.append(CandidateResult(candidate, metrics, elapsed, pipeline))
        checkpoint("fit")
    return results


def naive_baseline(split: Split, dataset: DatasetParams, threshold: float) -> dict[str, float]:
    """The score of always predicting the training churn rate: what a model must beat."""
    rate = float(split.train[dataset.label].mean())
    y_hold = split.holdout[dataset.label].to_numpy()
    return classification_metrics(y_hold, np.full(len(y_hold), rate), threshold)


def select_best(results: list[CandidateResult], metric: str) -> CandidateResult:
    """The best candidate by the configured metric; ties keep the earlier (simpler) one."""
    if not results:
        raise ValueError("no candidates were trained: training.candidates is empty")
    best = results[0]
    for result in results[1:]:
        if better(metric, result.metrics[metric], best.metrics[metric]):
            best = result
    return best
