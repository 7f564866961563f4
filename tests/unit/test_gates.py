"""Promotion gates on real sklearn models trained on generated churn data (no Evidently here)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from loopline.config import DatasetParams, PromotionParams, load_params
from loopline.data.generate import Scenario, generate
from loopline.promotion.gates import NO_CHAMPION, Check, GateReport, evaluate_gates
from loopline.training.candidates import Candidate, build_pipeline

PARAMS = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
DATASET = PARAMS.dataset
SEGMENTS = {"segment:plan=basic", "segment:plan=premium", "segment:plan=standard"}


@dataclass(frozen=True)
class World:
    holdout: pd.DataFrame
    good: Pipeline
    shuffled: Pipeline
    bad_on_premium: Pipeline


def _labelled_frame(dataset: DatasetParams) -> pd.DataFrame:
    raw = generate(Scenario(customers=500, days=75, seed=7, start_date=date(2026, 1, 1)))
    frame = raw[raw[dataset.label].notna()]
    # Every other day keeps the frame small while each customer still appears often.
    frame = frame[(frame[dataset.timestamp] - frame[dataset.timestamp].min()).dt.days % 2 == 0]
    columns = [dataset.entity, dataset.timestamp, dataset.label, *dataset.features]
    return frame[columns].astype({dataset.label: int})


def _fit(estimator: str, params: dict[str, object], train: pd.DataFrame, y: np.ndarray) -> Pipeline:
    pipeline = build_pipeline(Candidate(estimator, params), DATASET.numeric, DATASET.categorical, 0)
    # One thread: OpenMP pools make boosting fits 20x slower on a busy two-core machine.
    with threadpool_limits(limits=1):
        return pipeline.fit(train[list(DATASET.features)], y)


@pytest.fixture(scope="module")
def world() -> World:
    frame = _labelled_frame(DATASET)
    cutoff = frame[DATASET.timestamp].min() + pd.Timedelta(days=30)
    train = frame[frame[DATASET.timestamp] < cutoff]
    y = train[DATASET.label].to_numpy()
    flipped = np.where(train["plan"] == "premium", 1 - y, y)
    return World(
        holdout=frame[frame[DATASET.timestamp] >= cutoff],
        good=_fit("logistic_regression", {"C": 1.0}, train, y),
        shuffled=_fit(
            "logistic_regression", {"C": 1.0}, train, np.random.default_rng(0).permutation(y)
        ),
        # Labels inverted on one plan: a boosted model learns the wrong ranking only there.
        bad_on_premium=_fit("hist_gradient_boosting", {"max_depth": 3}, train, flipped),
    )


def policy(**update: object) -> PromotionParams:
    """The project's policy with a generous latency budget and no Evidently, unless overridden."""
    base = {"data_quality": False, "latency_p95_ms": 1000.0}
    return PARAMS.promotion.model_copy(update={**base, **update})


def gates(
    candidate: Pipeline,
    holdout: pd.DataFrame,
    rules: PromotionParams,
    *,
    champion: Pipeline | None = None,
) -> GateReport:
    """The gates with a short latency batch, which keeps these tests fast."""
    return evaluate_gates(candidate, holdout, rules, DATASET, champion=champion, latency_rows=20)


def by_name(report: GateReport) -> dict[str, Check]:
    return {check.name: check for check in report.checks}


def test_better_candidate_passes_every_check(world: World) -> None:
    report = gates(world.good, world.holdout, policy(), champion=world.shuffled)
    assert report.passed, report.describe()
    expected = {"floor:roc_auc", "vs_champion:roc_auc", "latency_p95_ms"} | SEGMENTS
    assert set(by_name(report)) == expected
    assert not report.skipped


def test_model_on_shuffled_labels_is_refused_with_reasons(world: World) -> None:
    report = gates(world.shuffled, world.holdout, policy(), champion=world.good)
    checks = by_name(report)
    assert not report.passed
    floor, relative = checks["floor:roc_auc"], checks["vs_champion:roc_auc"]
    assert not floor.passed and floor.value is not None and floor.value < 0.65
    assert floor.threshold == 0.65 and floor.detail.startswith(f"{floor.value:.3f} < 0.650")
    assert not relative.passed and "champion" in relative.detail
    # No short-circuit: the segment and latency checks still ran after the floor failed.
    assert set(checks) >= SEGMENTS | {"latency_p95_ms"}
    assert checks["latency_p95_ms"].passed
    assert report.describe().splitlines()[1].startswith("FAIL ")


def test_regression_on_one_segment_is_caught(world: World) -> None:
    report = gates(
        world.bad_on_premium,
        world.holdout,
        policy(max_segment_regression=0.1),
        champion=world.good,
    )
    failing_segments = {c.name for c in report.failures if c.name.startswith("segment:")}
    assert failing_segments == {"segment:plan=premium"}
    premium = by_name(report)["segment:plan=premium"]
    assert premium.value is not None and premium.threshold is not None
    assert premium.value < premium.threshold
    assert "rows" in premium.detail and "champion" in premium.detail


def test_small_segments_are_skipped_not_failed(world: World) -> None:
    report = gates(world.good, world.holdout, policy(min_segment_rows=100_000), champion=world.good)
    segments = [c for c in report.checks if c.name in SEGMENTS]
    assert len(segments) == 3
    assert all(c.skipped and "min_segment_rows" in c.detail for c in segments)
    assert report.passed


def test_segment_with_one_label_class_is_skipped(world: World) -> None:
    holdout = world.holdout
    no_premium_churn = holdout[(holdout["plan"] != "premium") | (holdout[DATASET.label] == 0)]
    report = gates(world.good, no_premium_churn, policy(), champion=world.good)
    premium = by_name(report)["segment:plan=premium"]
    assert premium.skipped and "one label class" in premium.detail


def test_latency_budget_failure(world: World) -> None:
    report = evaluate_gates(world.good, world.holdout, policy(latency_p95_ms=0.0001), DATASET)
    latency = by_name(report)["latency_p95_ms"]
    assert not latency.passed
    assert latency.threshold == 0.0001
    assert latency.value is not None and latency.value > latency.threshold
    assert "ms > 0.0001 ms (p95 of 200 single-row calls)" in latency.detail
    assert [c.name for c in report.failures] == ["latency_p95_ms"]


def test_without_champion_relative_and_segment_checks_are_skipped(world: World) -> None:
    report = gates(world.good, world.holdout, policy())
    skipped = {c.name for c in report.skipped}
    assert skipped == {"vs_champion:roc_auc"} | SEGMENTS
    assert all(c.detail == NO_CHAMPION for c in report.skipped)
    assert report.passed
    assert "4 skipped" in report.describe()


def test_log_loss_floor_is_a_maximum(world: World) -> None:
    strict = gates(world.good, world.holdout, policy(floors={"log_loss": 0.01}))
    loose = gates(world.good, world.holdout, policy(floors={"log_loss": 5.0}))
    failed, passed = by_name(strict)["floor:log_loss"], by_name(loose)["floor:log_loss"]
    assert not failed.passed and " > 0.010" in failed.detail
    assert passed.passed and " <= 5.000" in passed.detail
    assert failed.value == passed.value


def test_log_loss_relative_check_is_mirrored(world: World) -> None:
    rules = policy(relative_to_champion={"log_loss": -0.005})
    better = gates(world.good, world.holdout, rules, champion=world.shuffled)
    worse = gates(world.shuffled, world.holdout, rules, champion=world.good)
    up, down = by_name(better)["vs_champion:log_loss"], by_name(worse)["vs_champion:log_loss"]
    assert up.passed and not down.passed
    # The bar is the champion's log loss plus the 0.005 it may be worse by.
    assert down.threshold == pytest.approx(up.value + 0.005)


def test_holdout_with_one_label_class_fails_instead_of_crashing(world: World) -> None:
    negatives = world.holdout[world.holdout[DATASET.label] == 0]
    report = gates(world.good, negatives, policy(), champion=world.good)
    checks = by_name(report)
    assert not checks["floor:roc_auc"].passed and checks["floor:roc_auc"].value is None
    assert not checks["vs_champion:roc_auc"].passed


def test_holdout_missing_a_model_input_is_an_error(world: World) -> None:
    with pytest.raises(ValueError, match="usage_hours"):
        evaluate_gates(world.good, world.holdout.drop(columns="usage_hours"), policy(), DATASET)


def test_latency_rows_must_be_positive(world: World) -> None:
    with pytest.raises(ValueError, match="latency_rows"):
        evaluate_gates(world.good, world.holdout, policy(), DATASET, latency_rows=0)


def test_report_json_round_trips(world: World) -> None:
    report = gates(world.shuffled, world.holdout, policy(), champion=world.good)
    rows = json.loads(json.dumps(report.as_json(), allow_nan=False))
    assert GateReport.from_json(rows) == report
    assert {"name", "value", "threshold", "passed", "detail", "skipped"} == set(rows[0])


def test_non_finite_values_become_null_in_json() -> None:
    report = GateReport((Check("latency_p95_ms", math.nan, math.inf, False, "no timing"),))
    assert report.as_json()[0]["value"] is None and report.as_json()[0]["threshold"] is None
    json.dumps(report.as_json(), allow_nan=False)


def test_describe_lists_failures_first_then_passes_then_skips() -> None:
    report = GateReport(
        (
            Check("vs_champion:roc_auc", None, None, True, NO_CHAMPION, skipped=True),
            Check("latency_p95_ms", 3.0, 50.0, True, "3.000 ms <= 50 ms"),
            Check("floor:roc_auc", 0.612, 0.65, False, "0.612 < 0.650"),
        )
    )
    assert report.describe().splitlines() == [
        "gates FAILED: 1 of 2 checks failed",
        "FAIL floor:roc_auc: 0.612 < 0.650",
        "PASS latency_p95_ms: 3.000 ms <= 50 ms",
        "SKIP vs_champion:roc_auc: no champion yet",
    ]
    assert [c.name for c in report.failures] == ["floor:roc_auc"]
