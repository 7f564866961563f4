"""The data-quality gate: an Evidently test suite run on the holdout a candidate is judged on.

The suite uses explicit per-column tests rather than ``DataSummaryPreset``'s defaults: the
preset fails on a single missing value and reports constant columns only as a count, while
a promotion gate should tolerate a few gaps (the pipelines impute) and name what broke.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

from loopline.config import DatasetParams

# A feature may be missing in up to this share of holdout rows before the gate fails.
MAX_MISSING_SHARE = 0.2


@dataclass(frozen=True)
class QualityResult:
    """How many Evidently tests ran and the names of those that failed."""

    tests: int
    failed: tuple[str, ...]


def _present(holdout: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if c in holdout.columns]


def _prepared(holdout: pd.DataFrame, dataset: DatasetParams) -> pd.DataFrame:
    frame = holdout.copy()
    # Non-numbers in a numeric feature become missing, so the missing-share test reports them
    # instead of Evidently failing on the column's type.
    for column in _present(holdout, dataset.numeric):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _suite(frame: pd.DataFrame, dataset: DatasetParams, max_missing_share: float) -> list[Any]:
    from evidently.metrics import (
        CategoryCount,
        DuplicatedRowCount,
        MissingValueCount,
        RowCount,
        StdValue,
    )
    from evidently.tests import eq, gt, lt, lte

    suite: list[Any] = [RowCount(tests=[gt(0)]), DuplicatedRowCount(tests=[eq(0)])]
    for column in _present(frame, list(dataset.features)):
        suite.append(MissingValueCount(column=column, share_tests=[lte(max_missing_share)]))
    # A constant feature carries no signal: a numeric one has zero spread, a categorical one
    # has its most common value in every row.
    for column in _present(frame, dataset.numeric):
        suite.append(StdValue(column=column, tests=[gt(0)]))
    for column in _present(frame, dataset.categorical):
        mode = frame[column].mode(dropna=True).tolist()
        if mode:
            suite.append(CategoryCount(column=column, category=mode[0], share_tests=[lt(1.0)]))
    if dataset.label in frame.columns:
        suite.append(MissingValueCount(column=dataset.label, tests=[eq(0)]))
        suite += [CategoryCount(column=dataset.label, category=v, tests=[gt(0)]) for v in (0, 1)]
    return suite


def run_quality_suite(
    holdout: pd.DataFrame, dataset: DatasetParams, *, max_missing_share: float = MAX_MISSING_SHARE
) -> QualityResult:
    """Run the data-quality tests on ``holdout``; absent feature columns count as failures."""
    from evidently import DataDefinition, Dataset, Report

    frame = _prepared(holdout, dataset)
    expected = [*dataset.features, dataset.label]
    absent = [f"column '{c}' is absent" for c in expected if c not in frame]
    definition = DataDefinition(
        id_column=dataset.entity if dataset.entity in frame else None,
        timestamp=dataset.timestamp if dataset.timestamp in frame else None,
        numerical_columns=_present(frame, dataset.numeric),
        categorical_columns=_present(frame, [*dataset.categorical, dataset.label]),
    )
    report = Report(_suite(frame, dataset, max_missing_share))
    with warnings.catch_warnings():
        # Evidently divides by zero on all-missing columns; the tests already report those.
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(current_data=Dataset.from_pandas(frame, data_definition=definition))
    results = snapshot.tests_results
    failed = [r.name for r in results if r.status in ("FAIL", "ERROR")]
    return QualityResult(tests=len(results) + len(absent), failed=(*absent, *failed))
