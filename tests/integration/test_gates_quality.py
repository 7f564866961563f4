"""The data-quality promotion gate with the real Evidently suite (slow: its import takes ~7 s)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from loopline.config import PromotionParams, load_params
from loopline.data.generate import Scenario, generate
from loopline.promotion.gates import GateReport, evaluate_gates
from loopline.promotion.quality import run_quality_suite
from loopline.training.candidates import Candidate, build_pipeline

PARAMS = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
DATASET = PARAMS.dataset
# Only the data-quality gate, so each test isolates what Evidently decides.
QUALITY_ONLY = PromotionParams(segment_column=None, data_quality=True)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    raw = generate(Scenario(customers=300, days=50, seed=3, start_date=date(2026, 1, 1)))
    labelled = raw[raw[DATASET.label].notna()].astype({DATASET.label: int})
    return labelled[[DATASET.entity, DATASET.timestamp, DATASET.label, *DATASET.features]]


@pytest.fixture(scope="module")
def model(holdout: pd.DataFrame) -> Pipeline:
    candidate = Candidate("logistic_regression", {"C": 1.0})
    pipeline = build_pipeline(candidate, DATASET.numeric, DATASET.categorical, 0)
    return pipeline.fit(holdout[list(DATASET.features)], holdout[DATASET.label])


def quality(model: Pipeline, holdout: pd.DataFrame) -> GateReport:
    return evaluate_gates(model, holdout, QUALITY_ONLY, DATASET)


def test_a_normal_holdout_passes(model: Pipeline, holdout: pd.DataFrame) -> None:
    report = quality(model, holdout)
    (check,) = report.checks
    assert check.name == "data_quality" and check.passed, check.detail
    assert check.value == 0.0 and check.threshold == 0.0
    assert "Evidently data-quality tests passed" in check.detail


def test_a_few_missing_values_are_tolerated(model: Pipeline, holdout: pd.DataFrame) -> None:
    gappy = holdout.copy()
    gappy.loc[gappy.index[::20], "usage_hours"] = np.nan
    assert quality(model, gappy).passed


def test_an_all_null_column_fails_and_is_named(model: Pipeline, holdout: pd.DataFrame) -> None:
    broken = holdout.assign(usage_hours=np.nan)
    report = quality(model, broken)
    (check,) = report.failures
    assert check.name == "data_quality"
    assert check.value is not None and check.value >= 1
    assert "Column 'usage_hours' missing values" in check.detail
    assert report.describe().splitlines()[1].startswith("FAIL data_quality: ")


def test_constant_columns_fail_and_are_named(model: Pipeline, holdout: pd.DataFrame) -> None:
    broken = holdout.assign(plan="basic", sessions_per_week=3)
    (check,) = quality(model, broken).failures
    assert "Column 'plan' categories 'basic'" in check.detail
    assert "Std value of 'sessions_per_week'" in check.detail
    assert check.value == 2.0


def test_a_single_label_class_fails(model: Pipeline, holdout: pd.DataFrame) -> None:
    negatives = holdout[holdout[DATASET.label] == 0]
    (check,) = quality(model, negatives).failures
    assert "Column 'churned' categories '1'" in check.detail


def test_text_in_a_numeric_column_counts_as_missing(holdout: pd.DataFrame) -> None:
    broken = holdout.assign(monthly_charges="n/a")
    result = run_quality_suite(broken, DATASET)
    assert "Column 'monthly_charges' missing values: Less or Equal 0.200" in result.failed


def test_an_absent_feature_is_reported(holdout: pd.DataFrame) -> None:
    result = run_quality_suite(holdout.drop(columns="country"), DATASET)
    assert result.failed == ("column 'country' is absent",)
