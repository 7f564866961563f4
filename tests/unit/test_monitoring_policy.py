"""The monitoring policy: thresholds, window size, label count, the ROC AUC interval, the
cooldown, the prior-shift check, and which recorded windows make the recent reference."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from loopline.monitoring.auc import auc_interval, hanley_mcneil_se
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


def counts(n: int, positives: int, customers: int | None = None) -> MeanShift:
    """The window's class counts as the label-rate numbers carry them (no reference side)."""
    return MeanShift(
        LABEL_RATE, positives / n, None, n, customers or n, positives, None, None, 0, 0
    )


def labelled(
    auc: float | None, n: int, positives: int, customers: int | None = None, drift_share: float = 0
) -> Window:
    """A window of ``n`` labels, ``positives`` of them churners, from ``customers`` customers."""
    label_rate = counts(n, positives, customers)
    return Window(n_labels=n, roc_auc=auc, label_rate=label_rate, drift_share=drift_share)


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


# --- the ROC AUC check -----------------------------------------------------------------------
# Holdout 0.80, allowed drop 0.05: the floor is 0.75. The default confidence is 0.9 (z 1.645).


def test_a_clearly_degraded_roc_auc_on_enough_labels_is_degradation() -> None:
    # 0.65 on 300 positives and 1,700 negatives: se 0.018, 90 % interval 0.620-0.680.
    decision = decide(
        labelled(0.65, 2000, 300),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert decision.events == [PERFORMANCE_DEGRADED]
    check = decision.auc
    assert check is not None and check.outcome == "degraded"
    assert check.high is not None and check.high == pytest.approx(0.680, abs=0.001)
    assert (check.positives, check.negatives, check.customers) == (300, 1700, 2000)
    (reason,) = [r for r in decision.reasons if r.startswith("ROC AUC")]
    assert "0.650 on 2000 labels" in reason and "floor 0.750" in reason
    assert "300 positives, 1700 negatives" in reason and "90% interval 0.620 to 0.680" in reason


def test_a_dip_within_the_interval_is_not_degradation() -> None:
    # 0.74 is 0.06 below the holdout, beyond the allowed drop, but on 150 positives its se is
    # 0.024 and the 90 % interval (0.701-0.779) reaches above the 0.75 floor.
    decision = decide(
        labelled(0.74, 2000, 150),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert decision.events == [] and decision.healthy
    assert decision.auc is not None and decision.auc.outcome == "within tolerance"
    assert any("drop of 0.060" in r and "within tolerance" in r for r in decision.reasons)


def test_an_upper_bound_exactly_at_the_floor_is_not_degradation() -> None:
    interval = auc_interval(0.70, 300, 1700, POLICY.auc_confidence)
    policy = POLICY.model_copy(update={"accuracy_drop": HOLDOUT_AUC - interval.high})
    window = labelled(0.70, 2000, 300)
    assert events(window) == [PERFORMANCE_DEGRADED]  # the default floor, 0.75, is above 0.729
    at_floor = decide(window, holdout_auc=HOLDOUT_AUC, last_trigger_at=None, now=NOW, policy=policy)
    assert at_floor.events == []


def test_few_positives_are_not_enough_evidence() -> None:
    # 2,000 labels but 20 churners: even a coin-flip ROC AUC says nothing reliable.
    decision = decide(
        labelled(0.50, 2000, 20),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert decision.events == []
    assert decision.auc is not None and decision.auc.outcome == "not enough evidence"
    assert any("not enough evidence (need 30 of each class)" in r for r in decision.reasons)


def test_unknown_class_counts_are_not_enough_evidence() -> None:
    decision = decide(
        Window(n_labels=2000, roc_auc=0.5),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert decision.events == [] and any("class counts unknown" in r for r in decision.reasons)


def test_repeated_rows_of_a_customer_widen_the_interval() -> None:
    # 0.70 on 300/1,700 rows is degraded (upper bound 0.729); the same rows from 500
    # customers count as 75/425 and the upper bound, 0.759, reaches the floor.
    assert events(labelled(0.70, 2000, 300)) == [PERFORMANCE_DEGRADED]
    assert events(labelled(0.70, 2000, 300, customers=500)) == []


def test_roc_auc_on_too_few_labels_or_one_class_is_not_judged() -> None:
    few = decide(
        labelled(0.5, 199, 60),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert few.events == [] and any("only 199 labels" in r for r in few.reasons)
    one_class = decide(
        labelled(None, 300, 0),
        holdout_auc=HOLDOUT_AUC,
        last_trigger_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert one_class.events == [] and any("one class" in r for r in one_class.reasons)


def binormal_auc(true_auc: float, seed: int) -> float:
    """ROC AUC of 150 positives and 1,850 negatives with binormal scores of ROC AUC ``true_auc``."""
    rng = np.random.default_rng(seed)
    shift = float(np.sqrt(2) * NormalDist().inv_cdf(true_auc))
    y = np.r_[np.ones(150), np.zeros(1850)]
    return float(roc_auc_score(y, rng.normal(size=2000) + shift * y))


def binormal_window(true_auc: float, seed: int) -> Window:
    return labelled(binormal_auc(true_auc, seed), 2000, 150)


def test_sampled_windows_fire_on_a_real_drop_and_not_without_one() -> None:
    # Fires when the estimate is below 0.75 - 1.645 se. No drop (true 0.80, se 0.022): that
    # bound is ~0.714, 3.9 se below the truth, P(false failure) ~5e-5. A real drop (true
    # 0.60, se 0.025): the bound is ~0.708, 4.3 se above the truth, P ~1e-5.
    assert events(binormal_window(0.80, seed=1)) == []
    assert events(binormal_window(0.60, seed=2)) == [PERFORMANCE_DEGRADED]


def test_hanley_mcneil_matches_the_spread_of_sampled_roc_aucs() -> None:
    # 400 sampled windows at a true 0.75: the sd of the estimates is itself estimated to
    # within sd / sqrt(2 * 399), 3.5 %, so a 15 % tolerance is 4.2 of those: P ~3e-5.
    aucs = [binormal_auc(0.75, seed=100 + k) for k in range(400)]
    assert np.std(aucs, ddof=1) == pytest.approx(hanley_mcneil_se(0.75, 150, 1850), rel=0.15)


def test_drift_and_degradation_together_raise_both_events() -> None:
    window = labelled(0.62, 400, 100, drift_share=0.6)
    assert events(window) == [DRIFT_DETECTED, PERFORMANCE_DEGRADED]


def test_a_second_window_within_the_cooldown_raises_nothing() -> None:
    drifted = labelled(0.62, 400, 100, drift_share=0.6)
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
        {"auc_confidence": 0.5},
        {"auc_min_class_labels": 1},
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
