"""Fit every candidate on the past, score it on the most recent days, keep the best.

"Best" is cost-aware (:mod:`loopline.training.selection`): of the candidates within the
holdout's noise of the top metric, the one that serves fastest.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from loopline.config import DatasetParams, TrainingParams
from loopline.errors import LooplineError
from loopline.experiments.record import Assessment
from loopline.faults import checkpoint
from loopline.training.candidates import Candidate, build_pipeline, expand
from loopline.training.evaluate import classification_metrics
from loopline.training.selection import (
    BOOTSTRAP_RESAMPLES,
    Predict,
    best_index,
    bootstrap_se,
    choose,
    latency_p95_ms,
)

# Holdout rows on which a candidate's compiled scorer is compared with sklearn's before
# it is timed (the compiled path is timed only where it agrees).
PARITY_ROWS = 20_000


class TrainingDataError(LooplineError):
    """The labelled rows cannot make a training set and a holdout as configured."""


class TrainingError(LooplineError):
    """No candidate could be kept: every one failed to fit (or the pinned one did)."""


@dataclass(frozen=True)
class Split:
    """Training rows and holdout rows: by time (everything up to ``cutoff`` trains), or by
    entity (``cutoff`` None)."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    cutoff: pd.Timestamp | None


@dataclass
class CandidateResult:
    """One candidate's fit: its model and holdout scores, or (``error``) why it failed."""

    candidate: Candidate
    metrics: dict[str, float]
    fit_seconds: float
    model: Pipeline | None = field(default=None, repr=False)
    latency_p95_ms: float = float("nan")
    holdout_score: np.ndarray | None = field(default=None, repr=False)
    error: str | None = None
    # Intervals, curves, importance, segments and size (loopline.experiments.record).
    assessment: Assessment | None = field(default=None, repr=False)

    @property
    def failed(self) -> bool:
        return self.error is not None

    def row(self) -> dict[str, Any]:
        """The candidate's line in ``candidates.json`` and the run's table."""
        if self.failed:
            return {
                "candidate": self.candidate.name,
                "estimator": self.candidate.estimator,
                "error": self.error,
            }
        return {
            "candidate": self.candidate.name,
            "estimator": self.candidate.estimator,
            **{k: round(v, 4) for k, v in self.metrics.items()},
            "fit_seconds": round(self.fit_seconds, 2),
            "latency_p95_ms": round(self.latency_p95_ms, 3),
        }

    def experiment(self, *, selected: bool) -> dict[str, Any]:
        """The candidate's experiment record (the run-level fields are added where it is
        stored, :meth:`loopline.tracking.Store.record_candidates`)."""
        record: dict[str, Any] = {
            "candidate": self.candidate.name,
            "estimator": self.candidate.estimator,
            "params": self.candidate.params,
            "status": "failed" if self.failed else "ok",
            "error": self.error,
            "selected": selected,
            "metrics": {},
            "fit_seconds": None,
            "latency_p95_ms": None,
            "model_bytes": None,
            "diagnostics": {},
        }
        if self.failed:
            return record
        a = self.assessment
        latency = self.latency_p95_ms
        return record | {
            "metrics": a.metrics if a else {k: {"value": v} for k, v in self.metrics.items()},
            "fit_seconds": round(self.fit_seconds, 3),
            "latency_p95_ms": round(latency, 4) if math.isfinite(latency) else None,
            "model_bytes": a.model_bytes if a else None,
            "diagnostics": a.diagnostics if a else {},
        }


@dataclass(frozen=True)
class Selection:
    """The candidate kept, the tolerance it was kept with, and why it won."""

    selected: CandidateResult
    metric: str
    tolerance: float
    best_metric: float
    best_metric_se: float | None
    within: list[str]
    reason: str

    def record(self) -> dict[str, Any]:
        """The selection's part of ``candidates.json``."""
        se = None if self.best_metric_se is None else round(self.best_metric_se, 6)
        return {
            "selection_tolerance": round(self.tolerance, 6),
            "best_metric": round(self.best_metric, 4),
            "best_metric_se": se,
            "within_tolerance": self.within,
            "selection_reason": self.reason,
        }


def holdout_split(frame: pd.DataFrame, dataset: DatasetParams, training: TrainingParams) -> Split:
    """The holdout ``training`` asks for: by time (``holdout_days``) or by entity share."""
    if training.holdout_days is not None:
        return time_split(frame, dataset, training.holdout_days)
    assert training.holdout_fraction is not None  # the config allows exactly one
    return entity_split(frame, dataset, training.holdout_fraction, training.seed)


def time_split(frame: pd.DataFrame, dataset: DatasetParams, holdout_days: int) -> Split:
    """Hold out the last ``holdout_days`` of label timestamps; refuse a split with no data."""
    stamps = frame[dataset.timestamp]
    cutoff = stamps.max() - timedelta(days=holdout_days)
    train, holdout = frame[stamps <= cutoff], frame[stamps > cutoff]
    where = f"time split (cutoff {cutoff:%Y-%m-%d}, holdout_days={holdout_days})"
    _both_classes(train, holdout, dataset, where)
    return Split(train=train, holdout=holdout, cutoff=cutoff)


def entity_split(frame: pd.DataFrame, dataset: DatasetParams, fraction: float, seed: int) -> Split:
    """Hold out a seeded share of the entities, all their rows: no entity is on both sides.

    For data whose timestamps do not order it (one arrival time for a whole file).
    """
    entities = np.sort(frame[dataset.entity].unique())
    chosen = np.random.default_rng(seed).permutation(entities)[
        : math.ceil(fraction * len(entities))
    ]
    held = frame[dataset.entity].isin(chosen)
    train, holdout = frame[~held], frame[held]
    _both_classes(train, holdout, dataset, f"entity split (holdout_fraction={fraction})")
    return Split(train=train, holdout=holdout, cutoff=None)


def _both_classes(
    train: pd.DataFrame, holdout: pd.DataFrame, dataset: DatasetParams, where: str
) -> None:
    for part, rows in (("training", train), ("holdout", holdout)):
        if rows[dataset.label].nunique() < 2:
            raise TrainingDataError(
                f"the {part} part of the {where} needs both label classes; it has "
                f"{len(rows)} rows: change training.holdout_days or holdout_fraction in params.yaml"
            )


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
    """Fit each grid point on the training part, score it on the holdout, then time them all."""
    results = [
        fit_one(candidate, split, dataset, training, threshold)
        for candidate in expand(training.candidates)
    ]
    time_candidates([r for r in results if not r.failed], split.holdout, dataset)
    return results


def fit_one(
    candidate: Candidate,
    split: Split,
    dataset: DatasetParams,
    training: TrainingParams,
    threshold: float,
) -> CandidateResult:
    """One candidate fitted on the training part and scored on the holdout.

    A fit that raises (an estimator refusing its grid value, a numerical failure) gives a
    failed result naming the error, so the other candidates are still compared.
    """
    numeric, categorical = feature_columns(split.train, dataset)
    inputs = numeric + categorical
    specs = dataset.features
    started = time.perf_counter()
    try:
        pipeline = build_pipeline(candidate, numeric, categorical, training.seed, specs=specs)
        pipeline.fit(split.train[inputs], split.train[dataset.label].to_numpy())
        elapsed = time.perf_counter() - started
        score = pipeline.predict_proba(split.holdout[inputs])[:, 1]
        metrics = classification_metrics(split.holdout[dataset.label].to_numpy(), score, threshold)
    except Exception as exc:  # noqa: BLE001 - any failure of this one fit is recorded
        return CandidateResult(candidate, {}, time.perf_counter() - started, error=one_line(exc))
    checkpoint("fit")
    return CandidateResult(candidate, metrics, elapsed, pipeline, holdout_score=score)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line of at most ``limit`` characters: its type and first line."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def time_candidates(
    results: list[CandidateResult], holdout: pd.DataFrame, dataset: DatasetParams
) -> None:
    """Each candidate's single-row p95 latency as it would serve, set on its result.

    All at once and interleaved, in one process, so machine noise does not favour one.
    """
    numeric, categorical = feature_columns(holdout, dataset)
    rows = holdout[numeric + categorical]
    # Which scorer gets timed is judged on a fixed sample: comparing every candidate's
    # compiled path with sklearn's on a 200,000-row holdout took 25 s. Packaging still
    # compares the selected model's on the whole holdout before it may serve compiled.
    judged = rows.sample(n=PARITY_ROWS, random_state=0) if len(rows) > PARITY_ROWS else rows
    predicts = [serving_predict(r.model, judged) for r in results]
    timed = latency_p95_ms(predicts, rows, as_columns=True)
    for result, p95 in zip(results, timed, strict=True):
        result.latency_p95_ms = p95


def serving_predict(pipeline: Pipeline | None, holdout: pd.DataFrame) -> Predict:
    """P(churn) as serving will compute it for ``pipeline``, called with a dict of columns.

    The holdout decides, as at packaging, whether the compiled path is exact enough to be
    the one that serves (else scikit-learn's own, which is what is then timed).
    """
    from loopline.inference import serving_scorer

    if pipeline is None:
        raise ValueError("a candidate without a fitted model cannot be timed")
    scorer, _ = serving_scorer(pipeline, holdout)
    return cast(Predict, scorer.positive_proba)


def naive_baseline(split: Split, dataset: DatasetParams, threshold: float) -> dict[str, float]:
    """The score of always predicting the training churn rate: what a model must beat."""
    rate = float(split.train[dataset.label].mean())
    y_hold = split.holdout[dataset.label].to_numpy()
    return classification_metrics(y_hold, np.full(len(y_hold), rate), threshold)


def select_best(
    results: list[CandidateResult],
    metric: str,
    tolerance: float = 0.0,
    *,
    se: float | None = None,
    pinned: str | None = None,
) -> Selection:
    """The fastest candidate within ``tolerance`` of the best ``metric`` (0: the best metric).

    ``pinned`` names the candidate to keep whatever the rule says: a reproduction keeps the
    one the original run kept, since latency does not measure the same twice.
    """
    names = [r.candidate.name for r in results]
    scores = [r.metrics[metric] for r in results]
    choice = choose(names, scores, [r.latency_p95_ms for r in results], metric, tolerance)
    index, reason = choice.index, choice.reason
    if pinned is not None:
        if pinned not in names:
            raise ValueError(f"the pinned candidate {pinned!r} is not among {names}")
        index, reason = names.index(pinned), f"pinned to {pinned} (the recorded selection)"
    return Selection(
        selected=results[index],
        metric=metric,
        tolerance=tolerance,
        best_metric=scores[choice.best_index],
        best_metric_se=se,
        within=[names[i] for i in choice.within],
        reason=reason,
    )


def select(
    results: list[CandidateResult],
    y_hold: np.ndarray,
    training: TrainingParams,
    threshold: float,
    *,
    pinned: str | None = None,
) -> Selection:
    """:func:`select_best` with ``training.selection_tolerance`` resolved on this holdout.

    The bootstrap standard error of the best candidate's metric is always computed (and
    recorded); it is the tolerance unless the configuration names a number.
    """
    if not results:
        raise ValueError("no candidates were trained: training.candidates is empty")
    failed = [r for r in results if r.failed]
    for result in failed:
        if result.candidate.name == pinned:
            raise TrainingError(f"the pinned candidate {pinned} failed to fit: {result.error}")
    if len(failed) == len(results):
        reasons = "; ".join(f"{r.candidate.name}: {r.error}" for r in failed)
        raise TrainingError(f"every candidate failed to fit ({reasons})")
    results = [r for r in results if not r.failed]
    metric = training.metric
    top = results[best_index([r.metrics[metric] for r in results], metric)]
    if top.holdout_score is None:
        raise ValueError(f"{top.candidate.name} has no holdout scores to bootstrap")
    se = bootstrap_se(
        metric, y_hold, top.holdout_score, threshold, training.seed, BOOTSTRAP_RESAMPLES
    )
    setting = training.selection_tolerance
    tolerance = se if setting == "bootstrap_se" else float(setting)
    return select_best(results, metric, tolerance, se=se, pinned=pinned)
