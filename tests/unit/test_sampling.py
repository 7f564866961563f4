"""Training on a sample: stratified quotas, the holdout's minimum, and its error bound."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.training.sampling import (
    SE_TARGET,
    SampleTooSmall,
    auc_standard_error,
    holdout_minimum,
    sample_parts,
    stratified_sample,
    worst_standard_error,
)


def _frame(rows: int, positive_share: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "ts": start + pd.to_timedelta(rng.integers(0, 70 * 86400, rows), unit="s"),
            "y": (rng.random(rows) < positive_share).astype(int),
        }
    )


def test_hanley_mcneil_matches_its_closed_form_at_one_half() -> None:
    # At AUC 0.5, Q1 = Q2 = 1/3: the variance is (1/4 + (n1 + n0 - 2) / 12) / (n1 n0).
    n1, n0 = 300.0, 2700.0
    expected = np.sqrt((0.25 + (n1 + n0 - 2) / 12) / (n1 * n0))
    assert auc_standard_error(0.5, n1, n0) == pytest.approx(expected, rel=1e-12)


def test_the_minimum_is_the_smallest_size_within_the_target() -> None:
    n = holdout_minimum("roc_auc", 0.09)
    assert worst_standard_error("roc_auc", n, 0.09) <= SE_TARGET
    assert worst_standard_error("roc_auc", n - 1, 0.09) > SE_TARGET
    # Rarer positives need more rows; accuracy's bound is a proportion's: 0.25 / 0.005^2.
    assert holdout_minimum("roc_auc", 0.03) > n
    assert holdout_minimum("accuracy", 0.09) == 10_000


def test_quotas_keep_every_label_and_week_in_proportion() -> None:
    frame = _frame(50_000, 0.1)
    sample = stratified_sample(frame, "y", "ts", 5_000, seed=3)
    assert len(sample) == 5_000
    assert sample.index.is_monotonic_increasing  # input order is kept
    week = lambda f: (f["ts"] - frame["ts"].min()).dt.days // 7  # noqa: E731
    full = frame.groupby([frame["y"], week(frame)]).size() / len(frame)
    kept = sample.groupby([sample["y"], week(sample)]).size() / len(sample)
    # Largest-remainder rounding: each stratum within one row of its exact share.
    assert ((kept - full).abs() * 5_000 <= 1 + 1e-9).all()
    # Seeded: the same rows again, other rows with another seed.
    assert stratified_sample(frame, "y", "ts", 5_000, seed=3).index.equals(sample.index)
    assert not stratified_sample(frame, "y", "ts", 5_000, seed=4).index.equals(sample.index)


def test_a_frame_within_the_cap_is_kept_whole() -> None:
    frame = _frame(1_000, 0.2)
    train, holdout, record = sample_parts(
        frame, frame, label="y", timestamp="ts", metric="roc_auc", max_rows=1_000, seed=1
    )
    assert len(train) == len(holdout) == 1_000
    assert not record.sampled


def test_the_holdout_is_sampled_but_never_below_its_minimum() -> None:
    train, holdout = _frame(200_000, 0.1, seed=1), _frame(120_000, 0.1, seed=2)
    minimum = holdout_minimum("roc_auc", float(holdout["y"].mean()))
    cap = minimum + 1_000
    kept_train, kept_holdout, record = sample_parts(
        train, holdout, label="y", timestamp="ts", metric="roc_auc", max_rows=cap, seed=1
    )
    assert len(kept_train) == len(kept_holdout) == cap
    assert record.sampled and record.holdout_minimum == minimum
    assert record.holdout_se_bound <= SE_TARGET


def test_a_cap_below_the_holdout_minimum_is_refused_with_the_numbers() -> None:
    train, holdout = _frame(200_000, 0.1, seed=1), _frame(120_000, 0.1, seed=2)
    minimum = holdout_minimum("roc_auc", float(holdout["y"].mean()))
    with pytest.raises(SampleTooSmall) as error:
        sample_parts(
            train, holdout, label="y", timestamp="ts", metric="roc_auc", max_rows=5_000, seed=1
        )
    message = str(error.value)
    assert "training.max_rows=5,000" in message and f"{minimum:,} rows" in message
