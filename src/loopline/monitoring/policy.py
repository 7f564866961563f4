"""When a monitored window should trigger something: drift, prior shift, degraded quality.

Pure logic over a window's numbers, so the rules can be tested without data or Evidently.
Both events share one cooldown: a drift episode usually shows as input drift first and
as lower ROC AUC once labels arrive, and both should lead to the same single retrain.

The ROC AUC check is a statistical decision too: degraded only when the whole confidence
interval of the window's ROC AUC lies below the holdout's minus ``accuracy_drop``, so a
noisy estimate on a few hundred labels does not fire on its own.

A label-prior shift (the churn rate or the mean predicted probability moving) is drift in
what the model predicts, not in its inputs: it raises ``loopline.drift.detected`` too, so
the retrain trigger that already listens for drift acts on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from loopline.monitoring.auc import auc_interval

DRIFT_DETECTED = "loopline.drift.detected"
PERFORMANCE_DEGRADED = "loopline.performance.degraded"


class MeanNumbers(Protocol):
    """The part of a :class:`~loopline.monitoring.prior.MeanShift` the policy reads."""

    @property
    def quantity(self) -> str: ...

    @property
    def window_mean(self) -> float | None: ...

    @property
    def window_se(self) -> float | None: ...

    @property
    def window_n(self) -> int: ...

    @property
    def window_clusters(self) -> int: ...

    @property
    def window_positives(self) -> float: ...

    @property
    def reference_mean(self) -> float | None: ...

    @property
    def reference_se(self) -> float | None: ...

    @property
    def reference_n(self) -> int: ...


class WindowNumbers(Protocol):
    """The part of a :class:`~loopline.monitoring.drift.WindowResult` the policy reads."""

    @property
    def rows(self) -> int: ...

    @property
    def drift_share(self) -> float: ...

    @property
    def n_labels(self) -> int: ...

    @property
    def roc_auc(self) -> float | None: ...

    @property
    def label_rate(self) -> MeanNumbers | None: ...

    @property
    def mean_score(self) -> MeanNumbers | None: ...


class MonitoringPolicy(BaseModel):
    """The knobs; the defaults are the ones measured in docs/monitoring.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Share of features whose drift test fails at which the window counts as drifted.
    drift_share_threshold: float = Field(default=0.3, gt=0, le=1)
    # Smaller windows say nothing either way: no event, and ``too_small`` is set.
    min_window_rows: int = Field(default=500, ge=1)
    # Degraded when the window's ROC AUC is more than this below the model's holdout ROC AUC
    # (an absolute drop; "accuracy" in the broad sense, measured as ROC AUC) with
    # ``auc_confidence``: the upper bound of its two-sided interval is below the floor.
    accuracy_drop: float = Field(default=0.05, ge=0, le=1)
    auc_confidence: float = Field(default=0.9, gt=0.5, lt=1)
    # Fewer labelled rows than this, or fewer positives or negatives than
    # ``auc_min_class_labels``, and the window's ROC AUC is not judged.
    min_labels: int = Field(default=200, ge=1)
    auc_min_class_labels: int = Field(default=30, ge=2)
    # After an event, further events are held back this long: one episode, one retrain.
    cooldown_hours: float = Field(default=6.0, ge=0)
    # Prior shift: the label rate or mean score changed by more than this share of the
    # reference's (0.25: below x0.75 or above x1.25) with ``prior_confidence``.
    prior_tolerance: float = Field(default=0.25, gt=0)
    prior_confidence: float = Field(default=0.95, gt=0.5, lt=1)
    # The label rate is judged only when the window's labels hold at least this many
    # positives and negatives at the reference's rate (the normal interval needs them).
    prior_min_positives: int = Field(default=30, ge=1)


Outcome = Literal["shifted", "within tolerance", "not enough evidence"]
AucOutcome = Literal["degraded", "within tolerance", "not enough evidence", "not judged"]


@dataclass(frozen=True)
class AucCheck:
    """The ROC AUC test: the estimate, its interval, the floor it is held to, the counts.

    ``positives`` and ``negatives`` count labelled rows; ``customers`` the distinct customers
    among them, by which the interval's effective counts are scaled.
    """

    outcome: AucOutcome
    roc_auc: float | None
    floor: float
    n_labels: int
    positives: int | None = None
    negatives: int | None = None
    customers: int | None = None
    se: float | None = None
    low: float | None = None
    high: float | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class PriorCheck:
    """One prior-shift test: the relative change of a mean, its interval, and the counts."""

    quantity: str
    outcome: Outcome
    window_mean: float | None
    reference_mean: float | None
    window_n: int
    reference_n: int
    change: float | None = None
    low: float | None = None
    high: float | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class Decision:
    """What the policy concluded for one window; ``reasons`` say why in words."""

    events: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    suppressed_by_cooldown: bool = False
    too_small: bool = False
    # What the checks found, cooldown or not: a window is healthy only when this is empty.
    found: list[str] = field(default_factory=list)
    prior: list[PriorCheck] = field(default_factory=list)
    auc: AucCheck | None = None

    @property
    def triggered(self) -> bool:
        return bool(self.events)

    @property
    def healthy(self) -> bool:
        """Judged and nothing found: fit to serve as a recent reference for later windows."""
        return not self.too_small and not self.found


def decide(
    result: WindowNumbers,
    *,
    holdout_auc: float,
    last_trigger_at: datetime | None,
    now: datetime,
    policy: MonitoringPolicy | None = None,
) -> Decision:
    """The events ``result`` calls for under ``policy``, after the cooldown since the last one.

    Naive datetimes are taken as UTC, so the comparison never fails on a mix of the two.
    """
    policy = policy or MonitoringPolicy()
    found: list[str] = []
    reasons: list[str] = []
    prior: list[PriorCheck] = []
    auc: AucCheck | None = None
    too_small = result.rows < policy.min_window_rows
    if too_small:
        reasons.append(
            f"window has {result.rows} rows, fewer than {policy.min_window_rows}: not judged"
        )
    else:
        drifted = result.drift_share >= policy.drift_share_threshold
        if drifted:
            found.append(DRIFT_DETECTED)
        reasons.append(
            f"{result.drift_share:.0%} of features drifted"
            f" ({'at or above' if drifted else 'below'} the"
            f" {policy.drift_share_threshold:.0%} threshold)"
        )
        prior = [
            prior_check(m, policy, labels=m is result.label_rate)
            for m in (result.label_rate, result.mean_score)
            if m is not None
        ]
        if any(p.outcome == "shifted" for p in prior) and not drifted:
            found.append(DRIFT_DETECTED)
        reasons.extend(_prior_reason(p, policy) for p in prior)
        auc = auc_check(result, holdout_auc, policy)
        if auc.outcome == "degraded":
            found.append(PERFORMANCE_DEGRADED)
        reasons.append(_auc_reason(auc, holdout_auc, policy))

    cooling = bool(found) and _cooling_down(last_trigger_at, now, policy.cooldown_hours)
    if cooling and last_trigger_at is not None:
        reasons.append(
            f"held back: last trigger at {_utc(last_trigger_at).isoformat()},"
            f" within the {policy.cooldown_hours:g} h cooldown"
        )
    return Decision(
        events=[] if cooling else found,
        reasons=reasons,
        suppressed_by_cooldown=cooling,
        too_small=too_small,
        found=found,
        prior=prior,
        auc=auc,
    )


def prior_check(numbers: MeanNumbers, policy: MonitoringPolicy, *, labels: bool) -> PriorCheck:
    """Whether a mean moved beyond ``prior_tolerance`` of the reference's, with confidence.

    The change is relative, ``window / reference - 1``, with a normal interval from both
    sides' standard errors (delta method). Shifted when the whole interval lies beyond the
    tolerance; not enough evidence when a side has no standard error or, for labels
    (``labels``), fewer positives or negatives are expected than ``prior_min_positives``.
    """
    w, r, w_se, r_se = (
        numbers.window_mean,
        numbers.reference_mean,
        numbers.window_se,
        numbers.reference_se,
    )
    base = PriorCheck(
        numbers.quantity, "not enough evidence", w, r, numbers.window_n, numbers.reference_n
    )
    if w is None or r is None or w_se is None or r_se is None or r <= 0:
        return base
    if labels and min(r, 1 - r) * numbers.window_n < policy.prior_min_positives:
        return base
    change = w / r - 1
    se = math.sqrt(w_se**2 + (w / r) ** 2 * r_se**2) / r
    z = NormalDist().inv_cdf(0.5 + policy.prior_confidence / 2)
    low, high = change - z * se, change + z * se
    shifted = low > policy.prior_tolerance or high < -policy.prior_tolerance
    return PriorCheck(
        numbers.quantity,
        "shifted" if shifted else "within tolerance",
        w,
        r,
        numbers.window_n,
        numbers.reference_n,
        change=change,
        low=low,
        high=high,
        confidence=policy.prior_confidence,
    )


def _prior_reason(check: PriorCheck, policy: MonitoringPolicy) -> str:
    counts = f"on {check.window_n} rows against the reference's {check.reference_n}"
    if check.change is None or check.low is None or check.high is None:
        needed = f"at least {policy.prior_min_positives} expected positives and negatives"
        return f"{check.quantity} {counts}: not enough evidence ({needed}, both sides)"
    return (
        f"{check.quantity} {check.window_mean:.4f} {counts} ({check.reference_mean:.4f}):"
        f" {check.change:+.0%}, {check.confidence:.0%} interval {check.low:+.0%} to"
        f" {check.high:+.0%}, {check.outcome} (tolerance ±{policy.prior_tolerance:.0%})"
    )


def auc_check(result: WindowNumbers, holdout_auc: float, policy: MonitoringPolicy) -> AucCheck:
    """Whether the window's ROC AUC is below ``holdout_auc - accuracy_drop`` with confidence.

    Degraded when the upper bound of the two-sided ``auc_confidence`` interval
    (Hanley-McNeil, see :mod:`loopline.monitoring.auc`) lies below that floor. Not judged
    on fewer than ``min_labels`` labels or one class; not enough evidence when the class
    counts are unknown or a class has fewer than ``auc_min_class_labels`` rows.
    """
    floor = holdout_auc - policy.accuracy_drop
    n, auc, counts = result.n_labels, result.roc_auc, result.label_rate
    if n < policy.min_labels or auc is None:
        return AucCheck("not judged", auc, floor, n)
    if counts is None or counts.window_n == 0:
        return AucCheck("not enough evidence", auc, floor, n)
    positives = round(counts.window_positives)
    negatives = counts.window_n - positives
    base = AucCheck(
        "not enough evidence", auc, floor, n, positives, negatives, counts.window_clusters
    )
    if min(positives, negatives) < policy.auc_min_class_labels:
        return base
    per_row = min(1.0, counts.window_clusters / counts.window_n)
    interval = auc_interval(auc, positives * per_row, negatives * per_row, policy.auc_confidence)
    # The tolerance keeps a bound of exactly the floor (0.80 - 0.05 is 0.7500...04 in floating
    # point) on the allowed side, as the reason's rounded numbers would suggest.
    degraded = interval.high < floor - 1e-9
    return replace(
        base,
        outcome="degraded" if degraded else "within tolerance",
        se=interval.se,
        low=interval.low,
        high=interval.high,
        confidence=interval.confidence,
    )


def _auc_reason(check: AucCheck, holdout_auc: float, policy: MonitoringPolicy) -> str:
    if check.roc_auc is None:
        return f"ROC AUC undefined on {check.n_labels} labels (one class only)"
    if check.outcome == "not judged":
        return f"only {check.n_labels} labels (need {policy.min_labels}): ROC AUC not judged"
    drop = holdout_auc - check.roc_auc
    head = (
        f"ROC AUC {check.roc_auc:.3f} on {check.n_labels} labels against the holdout's"
        f" {holdout_auc:.3f}: a drop of {drop:.3f} (allowed {policy.accuracy_drop:.3f},"
        f" floor {check.floor:.3f})"
    )
    if check.positives is None or check.negatives is None:
        return f"{head}; not enough evidence (class counts unknown)"
    counts = (
        f"{check.positives} positives, {check.negatives} negatives, {check.customers} customers"
    )
    if check.high is None or check.low is None or check.confidence is None:
        needed = f"need {policy.auc_min_class_labels} of each class"
        return f"{head}; {counts}: not enough evidence ({needed})"
    verdict = "below the floor: degraded" if check.outcome == "degraded" else "within tolerance"
    return (
        f"{head}; {counts}: {check.confidence:.0%} interval {check.low:.3f} to"
        f" {check.high:.3f} (se {check.se:.3f}), {verdict}"
    )


def _cooling_down(last_trigger_at: datetime | None, now: datetime, hours: float) -> bool:
    if last_trigger_at is None:
        return False
    return _utc(now) - _utc(last_trigger_at) < timedelta(hours=hours)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
