"""When a monitored window should trigger something: drift, degraded quality, cooldown.

Pure logic over a window's numbers, so the rules can be tested without data or Evidently.
Both events share one cooldown: a drift episode usually shows as input drift first and
as lower ROC AUC once labels arrive, and both should lead to the same single retrain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

DRIFT_DETECTED = "loopline.drift.detected"
PERFORMANCE_DEGRADED = "loopline.performance.degraded"


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


class MonitoringPolicy(BaseModel):
    """The knobs; the defaults are the ones measured in docs/monitoring.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Share of features whose drift test fails at which the window counts as drifted.
    drift_share_threshold: float = Field(default=0.3, gt=0, le=1)
    # Smaller windows say nothing either way: no event, and ``too_small`` is set.
    min_window_rows: int = Field(default=500, ge=1)
    # Degraded when the window's ROC AUC is more than this below the model's holdout ROC AUC
    # (an absolute drop; "accuracy" in the broad sense, measured as ROC AUC).
    accuracy_drop: float = Field(default=0.05, ge=0, le=1)
    # Fewer labelled rows than this and the window's ROC AUC is not judged.
    min_labels: int = Field(default=200, ge=1)
    # After an event, further events are held back this long: one episode, one retrain.
    cooldown_hours: float = Field(default=6.0, ge=0)


@dataclass(frozen=True)
class Decision:
    """What the policy concluded for one window; ``reasons`` say why in words."""

    events: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    suppressed_by_cooldown: bool = False
    too_small: bool = False

    @property
    def triggered(self) -> bool:
        return bool(self.events)


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
        degraded, reason = _quality(result, holdout_auc, policy)
        if degraded:
            found.append(PERFORMANCE_DEGRADED)
        reasons.append(reason)

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
    )


def _quality(
    result: WindowNumbers, holdout_auc: float, policy: MonitoringPolicy
) -> tuple[bool, str]:
    if result.n_labels < policy.min_labels:
        return (
            False,
            f"only {result.n_labels} labels (need {policy.min_labels}): ROC AUC not judged",
        )
    if result.roc_auc is None:
        return False, f"ROC AUC undefined on {result.n_labels} labels (one class only)"
    drop = holdout_auc - result.roc_auc
    # The tolerance keeps a drop of exactly the allowed amount (0.80 - 0.75 is 0.0500...04 in
    # floating point) on the allowed side, as the reason's rounded numbers would suggest.
    return drop > policy.accuracy_drop + 1e-9, (
        f"ROC AUC {result.roc_auc:.3f} on {result.n_labels} labels against the holdout's"
        f" {holdout_auc:.3f}: a drop of {drop:.3f} (allowed {policy.accuracy_drop:.3f})"
    )


def _cooling_down(last_trigger_at: datetime | None, now: datetime, hours: float) -> bool:
    if last_trigger_at is None:
        return False
    return _utc(now) - _utc(last_trigger_at) < timedelta(hours=hours)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
