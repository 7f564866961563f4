"""The monitoring policy: thresholds, window size, label count, the cooldown, the prior-shift
check, and which recorded windows make the recent reference."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from loopline.monitoring.policy import (
    DRIFT_DETECTED,
    PERFORMANCE_DEGRADED,
    MonitoringPolicy,
    decide,
    prior_check,
)
from loopline.monitoring.prior import LABEL_RATE, MEAN_SCORE, MeanShift, mean_shift
from loopline.monitoring.reference import healthy_spans, in_spans, window_reference

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
    label_rate: MeanShift | None = None
    mean_score: MeanShift | None = None


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
        {"prior_tolerance": 0},
        {"prior_confidence": 1.0},
        {"prior_min_positives": 0},
        {"unknown_knob": 1},
    ],
)
def test_nonsense_knobs_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        MonitoringPolicy(**bad)


# --- the prior-shift check ------------------------------------------------------------------

REFERENCE_RATE = 0.08


def labels(n: int, rate: float, seed: int) -> pd.Series:
    return pd.Series((np.random.default_rng(seed).random(n) < rate).astype(int))


def rate_shift(window_rate: float, window_n: int, seed: int = 0) -> MeanShift:
    """Independent labels (one per customer): 10,000 in the reference at 8 %."""
    reference = labels(10_000, REFERENCE_RATE, seed)
    return mean_shift(LABEL_RATE, reference, labels(window_n, window_rate, seed + 1))


def test_a_doubled_label_rate_on_enough_labels_is_a_prior_shift() -> None:
    # 2,000 labels at 16 % against 10,000 at 8 %: the relative change estimates +100 % with a
    # standard error of about 0.12, and fires once its 95 % lower bound (estimate - 0.24)
    # passes +25 %, i.e. for an estimate above +49 %: 4.1 standard errors below the truth,
    # so another seed fails this test with probability about 2e-5.
    window = Window(n_labels=2000, label_rate=rate_shift(0.16, 2000))
    decision = decide(window, holdout_auc=HOLDOUT_AUC, last_trigger_at=None, now=NOW, policy=POLICY)
    assert decision.events == [DRIFT_DETECTED]
    (check,) = decision.prior
    assert check.outcome == "shifted" and check.low is not None and check.low > 0.25
    assert any(r.startswith("label rate") and "shifted" in r for r in decision.reasons)
    assert not decision.healthy


def test_a_handful_of_labels_is_not_enough_evidence() -> None:
    # 100 labels at the reference's 8 % hold 8 expected positives, fewer than the 30 needed:
    # decided by the counts alone, whatever the draw.
    window = Window(n_labels=100, label_rate=rate_shift(0.30, 100))
    decision = decide(window, holdout_auc=HOLDOUT_AUC, last_trigger_at=None, now=NOW, policy=POLICY)
    assert decision.events == [] and decision.healthy
    assert [p.outcome for p in decision.prior] == ["not enough evidence"]
    assert any("not enough evidence" in r for r in decision.reasons)
    assert prior_check(rate_shift(0.30, 375), POLICY, labels=True).outcome != "not enough evidence"


def test_equal_label_rates_stay_quiet() -> None:
    # Both at 8 %: the change's standard error is about 0.08, so an alarm needs an estimate
    # beyond +-(0.25 + 1.96 x 0.08) = +-0.41, over 5 standard errors: probability ~3e-7.
    check = prior_check(rate_shift(REFERENCE_RATE, 2000), POLICY, labels=True)
    assert check.outcome == "within tolerance"
    assert check.low is not None and check.high is not None and check.low < 0 < check.high


def test_a_fallen_mean_score_is_a_prior_shift_and_needs_no_labels() -> None:
    # Scores spread like the model's (beta, mean 0.08 vs 0.04): a standard error of about
    # 0.012 on the relative change of -50 %; the upper bound (estimate + 0.023) reaches -25 %
    # only for an estimate 19 standard errors off: never, in practice.
    rng = np.random.default_rng(3)
    reference = pd.Series(rng.beta(1, 11.5, size=10_000))
    window = pd.Series(rng.beta(1, 24, size=2000))
    shift = mean_shift(MEAN_SCORE, reference, window)
    decision = decide(
        Window(mean_score=shift), holdout_auc=HOLDOUT_AUC, last_trigger_at=None, now=NOW
    )
    assert decision.events == [DRIFT_DETECTED]
    assert decision.prior[0].change is not None and decision.prior[0].change < -0.25


def test_rows_of_one_customer_count_once_in_the_standard_error() -> None:
    values = labels(500, 0.2, seed=5)
    repeated = pd.Series(np.repeat(values.to_numpy(), 4))
    customers = pd.Series(np.repeat(np.arange(500), 4))
    iid = mean_shift(LABEL_RATE, repeated, repeated)
    clustered = mean_shift(LABEL_RATE, repeated, repeated, customers, customers)
    assert iid.window_se is not None and clustered.window_se is not None
    # Four copies of each label carry no more information than one: twice the naive error.
    assert clustered.window_se == pytest.approx(2 * iid.window_se, rel=0.01)
    assert (clustered.window_n, clustered.window_clusters) == (2000, 500)


def test_a_window_held_back_by_the_cooldown_is_not_healthy() -> None:
    decision = decide(
        Window(drift_share=0.6), holdout_auc=HOLDOUT_AUC, last_trigger_at=NOW, now=NOW
    )
    assert decision.suppressed_by_cooldown and decision.events == []
    assert decision.found == [DRIFT_DETECTED] and not decision.healthy
    too_small = decide(Window(rows=10), holdout_auc=HOLDOUT_AUC, last_trigger_at=None, now=NOW)
    assert not too_small.healthy


# --- the recent reference ---------------------------------------------------------------------


def record(start_hours: float, *, healthy: bool | None = True, version: str = "v1") -> dict:
    start = NOW + timedelta(hours=start_hours)
    return {
        "window_start": start,
        "window_end": start + timedelta(hours=1),
        "model_version": version,
        "healthy": healthy,
    }


def test_the_recent_reference_takes_healthy_windows_of_the_champion_before_the_window() -> None:
    windows = [
        record(-30),  # older than the 24 hours
        record(-5),
        record(-4, healthy=False),  # raised an event, or was held back by the cooldown
        record(-3, healthy=None),  # recorded before windows said whether they were healthy
        record(-2, version="v0"),  # another model's scores
        record(-1),
        record(-0.5),  # overlaps the current window, which starts at NOW
    ]
    spans = healthy_spans(windows, model_version="v1", before=NOW, hours=24)
    assert spans == [
        (NOW - timedelta(hours=5), NOW - timedelta(hours=4)),
        (NOW - timedelta(hours=1), NOW),
    ]


def test_rows_in_overlapping_spans_count_once_and_too_few_fall_back_to_the_holdout() -> None:
    at = pd.Series([NOW - timedelta(minutes=m) for m in (90, 50, 30, 10)])
    rows = pd.DataFrame({"at": at, "x": [1, 2, 3, 4]})
    spans = [(NOW - timedelta(hours=1), NOW), (NOW - timedelta(minutes=40), NOW)]
    assert in_spans(rows, spans)["x"].tolist() == [2, 3, 4]
    holdout = pd.DataFrame({"x": range(10)})
    recent = window_reference(holdout, rows, spans, min_rows=3)
    assert (recent.source, recent.rows, recent.windows) == ("recent", 3, 2)
    assert "recent healthy windows" in recent.describe()
    fallback = window_reference(holdout, rows, spans, min_rows=4)
    assert fallback.source == "holdout" and fallback.frame is holdout
    assert window_reference(holdout, rows, [], min_rows=1).source == "holdout"
    # The holdout, older than the traffic by the label delay, has its own feature threshold.
    assert recent.feature_threshold(0.1, 0.15) == 0.1
    assert fallback.feature_threshold(0.1, 0.15) == 0.15
    assert fallback.feature_threshold(0.1, None) == 0.1
