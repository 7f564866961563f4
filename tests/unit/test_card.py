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
