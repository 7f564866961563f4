"""Promotion gates as code: every check a candidate must clear before it replaces the champion.

Every configured check runs, so one report says everything that is wrong with a candidate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from loopline.config import DatasetParams, PromotionParams
from loopline.promotion.quality import run_quality_suite
from loopline.training.evaluate import LOWER_IS_BETTER, classification_metrics

NO_CHAMPION = "no champion yet"
ONE_CLASS = "the holdout has a single label class, so the metric is undefined"
# Discarded calls before timing: the first predictions pay for lazy imports and caches.
WARMUP_CALLS = 5
_ORDER = {"FAIL": 0, "PASS": 1, "SKIP": 2}


class Classifier(Protocol):
    """What the gates need of a model: its input columns and probability scores."""

    feature_names_in_: Any

    def predict_proba(self, frame: pd.DataFrame) -> Any: ...


@dataclass(frozen=True)
class Check:
    """One gate's verdict with the value it measured and the bar it had to clear."""

    name: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str
    skipped: bool = False

    @property
    def status(self) -> str:
        """``PASS``, ``FAIL`` or ``SKIP``."""
        if self.skipped:
            return "SKIP"
        return "PASS" if self.passed else "FAIL"


def _json_number(value: float | None) -> float | None:
    # NaN and infinity are not JSON; the registry history must stay loadable anywhere.
    return value if value is None or math.isfinite(value) else None


@dataclass(frozen=True)
class GateReport:
    """The outcome of every promotion check for one candidate."""

    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """Whether every check that ran passed (skipped checks do not block)."""
        return not self.failures

    @property
    def failures(self) -> list[Check]:
        """The checks that ran and failed."""
        return [c for c in self.checks if c.status == "FAIL"]

    @property
    def skipped(self) -> list[Check]:
        """The checks that could not run, each with the reason in ``detail``."""
        return [c for c in self.checks if c.skipped]

    def as_json(self) -> list[dict[str, Any]]:
        """The checks as JSON-able dicts, for the registry history."""
        return [
            {**asdict(c), "value": _json_number(c.value), "threshold": _json_number(c.threshold)}
            for c in self.checks
        ]

    @classmethod
    def from_json(cls, rows: Iterable[Mapping[str, Any]]) -> GateReport:
        """Rebuild a report from :meth:`as_json` output."""
        return cls(tuple(Check(**row) for row in rows))

    def describe(self) -> str:
        """Human text: a verdict line, then every check with failing ones first."""
        ran = len(self.checks) - len(self.skipped)
        if self.passed:
            head = f"gates passed: {ran} checks passed, {len(self.skipped)} skipped"
        else:
            head = f"gates FAILED: {len(self.failures)} of {ran} checks failed"
        ranked = sorted(self.checks, key=lambda c: _ORDER[c.status])
        return "\n".join([head, *(f"{c.status} {c.name}: {c.detail}" for c in ranked)])


def _meets(metric: str, value: float, bar: float) -> bool:
    return value <= bar if metric in LOWER_IS_BETTER else value >= bar


def _compare(metric: str, value: float, bar: float, passed: bool) -> str:
    meets, misses = ("<=", ">") if metric in LOWER_IS_BETTER else (">=", "<")
    sign = meets if passed else misses
    return f"{value:.3f} {sign} {bar:.3f}"


def _floor_check(metric: str, value: float | None, floor: float) -> Check:
    name = f"floor:{metric}"
    if value is None:
        return Check(name, None, floor, False, ONE_CLASS)
    passed = _meets(metric, value, floor)
    return Check(name, value, floor, passed, _compare(metric, value, floor, passed))


def _champion_check(
    metric: str, value: float | None, champion: float | None, allowed: float, has_champion: bool
) -> Check:
    name = f"vs_champion:{metric}"
    if not has_champion:
        return Check(name, None, None, True, NO_CHAMPION, skipped=True)
    if value is None or champion is None:
        return Check(name, value, None, False, ONE_CLASS)
    # ``allowed`` is the change the candidate may show, in the metric's better direction.
    bar = champion - allowed if metric in LOWER_IS_BETTER else champion + allowed
    passed = _meets(metric, value, bar)
    verdict = _compare(metric, value, bar, passed)
    detail = f"{verdict} (champion {champion:.3f}, allowed {allowed:+.3f})"
    return Check(name, value, bar, passed, detail)


def _segment_check(
    name: str,
    y: np.ndarray,
    score: np.ndarray,
    champion: np.ndarray | None,
    policy: PromotionParams,
) -> Check:
    if champion is None:
        return Check(name, None, None, True, NO_CHAMPION, skipped=True)
    rows = len(y)
    if rows < policy.min_segment_rows:
        detail = f"{rows} rows < min_segment_rows {policy.min_segment_rows}"
        return Check(name, None, None, True, detail, skipped=True)
    if len(np.unique(y)) < 2:
        return Check(name, None, None, True, f"{rows} rows with one label class", skipped=True)
    value = float(roc_auc_score(y, score))
    reference = float(roc_auc_score(y, champion))
    bar = reference - policy.max_segment_regression
    passed = value >= bar
    detail = (
        f"roc_auc {_compare('roc_auc', value, bar, passed)} (champion {reference:.3f}, "
        f"max regression {policy.max_segment_regression:.3f}, {rows} rows)"
    )
    return Check(name, value, bar, passed, detail)


def _segment_checks(
    holdout: pd.DataFrame,
    y: np.ndarray,
    score: np.ndarray,
    champion: np.ndarray | None,
    policy: PromotionParams,
) -> list[Check]:
    column = policy.segment_column
    if column is None:
        return []
    if column not in holdout.columns:
        return [Check(f"segment:{column}", None, None, False, "column is not in the holdout")]
    values = holdout[column].astype(str).to_numpy()
    checks = []
    for segment in sorted(set(values)):
        mask = values == segment
        segment_champion = None if champion is None else champion[mask]
        name = f"segment:{column}={segment}"
        checks.append(_segment_check(name, y[mask], score[mask], segment_champion, policy))
    return checks


def _inputs(model: Classifier, holdout: pd.DataFrame) -> pd.DataFrame:
    columns = list(model.feature_names_in_)
    missing = [c for c in columns if c not in holdout.columns]
    if missing:
        raise ValueError(f"the holdout lacks the model's input columns {missing}")
    return holdout[columns]


def _scores(model: Classifier, holdout: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(_inputs(model, holdout)))[:, 1]


def _metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float] | None:
    if len(np.unique(y)) < 2:
        return None
    return classification_metrics(y, score, threshold)


def _latency_check(model: Classifier, holdout: pd.DataFrame, budget: float, calls: int) -> Check:
    name = "latency_p95_ms"
    inputs = _inputs(model, holdout)
    if inputs.empty:
        return Check(name, None, budget, False, "the holdout has no rows to time")
    # Rows are sliced before timing so only the model is measured, as in a serving call.
    rows = [inputs.iloc[[i % len(inputs)]] for i in range(calls)]
    elapsed = []
    # One thread, as a serving worker should run a single-row predict: OpenMP pools
    # (HistGradientBoosting) otherwise stall for hundreds of ms on a busy machine.
    with threadpool_limits(limits=1):
        for row in rows[:WARMUP_CALLS]:
            model.predict_proba(row)
        for row in rows:
            started = time.perf_counter()
            model.predict_proba(row)
            elapsed.append(time.perf_counter() - started)
    p95 = float(np.percentile(elapsed, 95)) * 1000
    passed = p95 <= budget
    sign = "<=" if passed else ">"
    detail = f"{p95:.3f} ms {sign} {budget:g} ms (p95 of {calls} single-row calls)"
    return Check(name, p95, budget, passed, detail)


def _quality_check(holdout: pd.DataFrame, dataset: DatasetParams) -> Check:
    result = run_quality_suite(holdout, dataset)
    failed = len(result.failed)
    if failed:
        detail = f"{failed} of {result.tests} tests failed: " + "; ".join(result.failed)
    else:
        detail = f"all {result.tests} Evidently data-quality tests passed"
    return Check("data_quality", float(failed), 0.0, failed == 0, detail)


def evaluate_gates(
    candidate: Classifier,
    holdout: pd.DataFrame,
    policy: PromotionParams,
    dataset: DatasetParams,
    *,
    champion: Classifier | None = None,
    threshold: float = 0.5,
    latency_rows: int = 200,
) -> GateReport:
    """Run every configured promotion check for ``candidate`` on ``holdout``."""
    if latency_rows < 1:
        raise ValueError(f"latency_rows must be at least 1, got {latency_rows}")
    # Metrics need known labels; unknown ones are left for the data-quality gate to report.
    labelled = holdout[holdout[dataset.label].notna()]
    y = labelled[dataset.label].to_numpy(dtype=int)
    score = _scores(candidate, labelled)
    champion_score = None if champion is None else _scores(champion, labelled)
    ours = _metrics(y, score, threshold) or {}
    theirs = {} if champion_score is None else _metrics(y, champion_score, threshold) or {}

    checks = [_floor_check(m, ours.get(m), floor) for m, floor in policy.floors.items()]
    checks += [
        _champion_check(m, ours.get(m), theirs.get(m), allowed, champion is not None)
        for m, allowed in policy.relative_to_champion.items()
    ]
    checks += _segment_checks(labelled, y, score, champion_score, policy)
    if policy.latency_p95_ms is not None:
        checks.append(_latency_check(candidate, holdout, policy.latency_p95_ms, latency_rows))
    if policy.data_quality:
        checks.append(_quality_check(holdout, dataset))
    return GateReport(tuple(checks))
