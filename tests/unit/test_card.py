"""The model card says how many labelled rows there were, how many trained, what was held out."""

from __future__ import annotations

from typing import Any

from loopline.training.card import model_card

EVALUATION = {
    "holdout": {"roc_auc": 0.81, "accuracy": 0.7},
    "baseline": {"roc_auc": 0.5, "accuracy": 0.75},
    "positive_rate": 0.24,
}


def candidates(**data: Any) -> dict[str, Any]:
    row = {"candidate": "lr", "roc_auc": 0.81, "latency_p95_ms": 0.1, "fit_seconds": 0.2}
    return {
        "metric": "roc_auc",
        "selected": "lr",
        "selection_reason": "the best roc_auc",
        "best_metric": 0.81,
        "best_metric_se": 0.01,
        "selection_tolerance": 0.0,
        "within_tolerance": ["lr"],
        "candidates": [row],
        **data,
    }


def test_counts_of_labelled_sampled_and_split_rows() -> None:
    card = model_card(
        candidates(
            labelled_rows=12_000,
            label_sampling="one labelled row every 7 days per entity",
            sampled_rows=1_715,
            train_rows=1_400,
            holdout_rows=315,
            cutoff="2026-04-01T00:00:00+00:00",
        ),
        EVALUATION,
    )
    assert (
        "12,000 labelled rows; one labelled row every 7 days per entity: 1,715 used: "
        "1,400 training rows up to 2026-04-01T00:00:00+00:00, 315 holdout rows after" in card
    )


def test_an_entity_split_names_its_rule() -> None:
    card = model_card(
        candidates(
            labelled_rows=600,
            label_sampling="every labelled row",
            sampled_rows=600,
            train_rows=480,
            holdout_rows=120,
            cutoff=None,
            holdout="20% of the entities, drawn with seed 7",
        ),
        EVALUATION,
    )
    assert "600 labelled rows; every labelled row: 600 used: 480 training rows" in card
    assert "120 holdout rows (20% of the entities, drawn with seed 7)" in card


def test_a_card_recorded_before_the_counts_still_renders() -> None:
    card = model_card(candidates(train_rows=10, holdout_rows=5, cutoff="2026-01-01"), EVALUATION)
    assert "10 training rows up to 2026-01-01, 5 holdout rows after" in card


def test_a_sampled_training_set_says_so_with_its_error() -> None:
    sample = {
        "max_rows": 50_000,
        "train_rows_before": 700_000,
        "holdout_rows_before": 160_000,
        "holdout_minimum": 40_660,
        "holdout_se_bound": 0.00443,
        "stratified_by": "label and week",
    }
    card = model_card(
        candidates(train_rows=50_000, holdout_rows=50_000, cutoff=None, sample=sample),
        EVALUATION,
    )
    assert "**Trained on a sample** (`training.max_rows` = 50,000" in card
    assert "50,000 of 700,000 training rows and 50,000 of 160,000 holdout rows" in card
    assert "never fewer than 40,660" in card
    assert "at most 0.0044 (bound); measured (bootstrap) 0.0100" in card


def test_an_unsampled_card_has_no_sample_line() -> None:
    card = model_card(
        candidates(train_rows=10, holdout_rows=5, cutoff=None, sample=None), EVALUATION
    )
    assert "Trained on a sample" not in card


def test_the_model_card_lists_candidates_that_failed_to_fit() -> None:
    failed = [{"candidate": "bad", "estimator": "x", "error": "ValueError: no"}]
    summary = candidates(train_rows=10, holdout_rows=5, failed=failed)
    evaluation = {"holdout": {"roc_auc": 0.81}, "baseline": {"roc_auc": 0.5}, "positive_rate": 0.2}
    card = model_card(summary, evaluation)
    assert "**Failed to fit** (not compared):\n\n- `bad`: ValueError: no" in card
    assert "Failed" not in model_card(summary | {"failed": []}, evaluation)
