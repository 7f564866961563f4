"""The monitoring policy: thresholds, window size, label count, and the cooldown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from loopline.monitoring.policy import (
    DRIFT_DETECTED,
    PERFORMANCE_DEGRADED,
    MonitoringPolicy,
    decide,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
POLICY = MonitoringPolicy(
    drift_share_threshold=0.3, min_window_rows=500, accuracy_drop=0.05, min_labels=200
)
HOLDOUT_AUC = 0.80


@dataclass(frozen=True)
class Window:
    rows: int = 2000
    drift_share: float = 0.0
    n_labels: int = 0
    roc_auc: float | None = None


def events(window: Window, last: datetime | None = None, now: datetime = NOW) -> list[str]:
    decision = decide(window, holdout_auc=HOLDOUT_AUC, last_trigger_at=last, now=now, policy=POLICY)
    return decision.events


def test_a_quiet_window_raises_nothing_and_says_why() -> None:
    decision = decide(
        Window(drift_share=0.1, n_labels=500, roc_auc=0.79),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert decision.events == [] and not decision.triggered
    assert not decision.too_small and not decision.suppressed_by_cooldown
    assert any("below the 30% threshold" in r for r in decision.reasons)
    assert any("drop of 0.010" in r for r in decision.reasons)


@pytest.mark.parametrize(
    ("share", "expected"), [(0.29, []), (0.3, [DRIFT_DETECTED]), (0.5, [DRIFT_DETECTED])]
)
def test_drift_share_at_or_above_the_threshold_is_drift(share: float, expected: list[str]) -> None:
    assert events(Window(drift_share=share)) == expected


def test_a_window_below_the_minimum_size_is_not_judged() -> None:
    decision = decide(
        Window(rows=499, drift_share=1.0, n_labels=450, roc_auc=0.5),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert decision.too_small and decision.events == []
    assert "499 rows" in decision.reasons[0]
    assert events(Window(rows=500, drift_share=1.0)) == [DRIFT_DETECTED]


@pytest.mark.parametrize(
    ("auc", "expected"),
    [(0.76, []), (0.75, []), (0.749, [PERFORMANCE_DEGRADED]), (0.60, [PERFORMANCE_DEGRADED])],
)
def test_a_roc_auc_drop_beyond_the_allowed_one_is_degradation(
    auc: float, expected: list[str]
) -> None:
    assert events(Window(n_labels=300, roc_auc=auc)) == expected


def test_roc_auc_on_too_few_labels_or_one_class_is_not_judged() -> None:
    few = decide(
        Window(n_labels=199, roc_auc=0.5),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert few.events == [] and any("only 199 labels" in r for r in few.reasons)
    one_class = decide(
        Window(n_labels=300, roc_auc=None),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert one_class.events == [] and any("one class" in r for r in one_class.reasons)


def test_drift_and_degradation_together_raise_both_events() -> None:
    window = Window(drift_share=0.6, n_labels=400, roc_auc=0.62)
    assert events(window) == [DRIFT_DETECTED, PERFORMANCE_DEGRADED]


def test_a_second_window_within_the_cooldown_raises_nothing() -> None:
    drifted = Window(drift_share=0.6, n_labels=400, roc_auc=0.62)
    first = decide(drifted, holdout_auc=HOLDOUT_AUC, last_trigger_at=None, now=NOW, policy=POLICY)
    assert first.triggered
    later = NOW + timedelta(hours=POLICY.cooldown_hours - 1)
    second = decide(drifted, holdout_auc=HOLDOUT_AUC, last_trigger_at=NOW, now=later, policy=POLICY)
    assert second.events == [] and second.suppressed_by_cooldown
    # What was found is still told, with why it was held back.
    assert any("held back" in r for r in second.reasons)
    assert any("60% of features drifted" in r for r in second.reasons)


def test_after_the_cooldown_the_same_window_triggers_again() -> None:
    after = NOW + timedelta(hours=POLICY.cooldown_hours)
    assert events(Window(drift_share=0.6), last=NOW, now=after) == [DRIFT_DETECTED]


def test_a_quiet_window_within_the_cooldown_is_not_marked_suppressed() -> None:
    decision = decide(
        Window(drift_share=0.0),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=NOW,
        now=NOW + timedelta(minutes=5),
        policy=POLICY,
    )
    assert not decision.suppressed_by_cooldown and decision.events == []


def test_naive_and_aware_datetimes_mix_as_utc() -> None:
    naive_last = datetime(2026, 5, 1, 11)  # an hour before NOW, in UTC
    assert events(Window(drift_share=0.6), last=naive_last) == []
    assert events(Window(drift_share=0.6), last=naive_last - timedelta(days=2)) == [DRIFT_DETECTED]


def test_the_default_policy_is_used_when_none_is_given() -> None:
    decision = decide(Window(drift_share=0.5), holdout_auc=0.8, last_trigger_at=None, now=NOW)
    assert decision.events == [DRIFT_DETECTED]


@pytest.mark.parametrize(
    "bad",
    [
        {"drift_share_threshold": 0},
        {"drift_share_threshold": 1.5},
        {"min_window_rows": 0},
        {"accuracy_drop": -0.1},
        {"cooldown_hours": -1},
        {"unknown_knob": 1},
    ],
)
def test_nonsense_knobs_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        MonitoringPolicy(**bad)
