"""The experiment records' curves, checked against scikit-learn on seeded scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from loopline.experiments.curves import calibration, confusion, diagnostics


def scored(rows: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.12).astype(int)
    score = np.clip(rng.normal(0.25 + 0.3 * y, 0.15), 0, 1).round(3)  # ties, as real scores
    return y, score


def test_roc_runs_from_origin_to_corner_monotone_and_close_to_sklearn() -> None:
    y, score = scored()
    found = diagnostics(y, score, 0.5)
    roc = found["roc"]
    assert found["unavailable"] is None
    assert len(roc) <= 101 + 2
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0.0, 0.0)
    assert (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    fpr = np.array([p["fpr"] for p in roc])
    tpr = np.array([p["tpr"] for p in roc])
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    full_fpr, full_tpr, _ = roc_curve(y, score)
    # The thinned curve keeps sklearn's own vertices, and its area within a hair of theirs.
    vertices = set(zip(full_fpr.round(6), full_tpr.round(6), strict=True))
    assert all((p["fpr"], p["tpr"]) in vertices for p in roc)
    assert auc(fpr, tpr) == pytest.approx(auc(full_fpr, full_tpr), abs=0.003)


def test_precision_recall_keeps_sklearn_vertices_by_rising_recall() -> None:
    y, score = scored()
    pr = diagnostics(y, score, 0.5)["precision_recall"]
    precision, recall, _ = precision_recall_curve(y, score)
    vertices = set(zip(recall.round(6), precision.round(6), strict=True))
    assert all((p["recall"], p["precision"]) in vertices for p in pr)
    recalls = [p["recall"] for p in pr]
    assert recalls == sorted(recalls) and recalls[0] == 0.0 and recalls[-1] == 1.0
    assert len(pr) <= 103


def test_a_short_curve_is_kept_whole() -> None:
    y = np.array([0, 0, 1, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8])
    fpr, tpr, _ = roc_curve(y, score)
    roc = diagnostics(y, score, 0.5)["roc"]
    assert [(p["fpr"], p["tpr"]) for p in roc] == list(zip(fpr, tpr, strict=True))


def test_calibration_bins_are_quantiles_that_cover_every_row() -> None:
    y, score = scored()
    bins = calibration(y, score)
    assert 8 <= len(bins) <= 10  # ties can merge neighbouring quantile bins
    assert sum(b["count"] for b in bins) == len(y)
    predicted = [b["predicted"] for b in bins]
    assert predicted == sorted(predicted)
    weighted = sum(b["observed"] * b["count"] for b in bins) / len(y)
    assert weighted == pytest.approx(y.mean(), abs=1e-5)
    assert max(b["count"] for b in bins) < 0.2 * len(y)


def test_calibration_of_one_score_is_one_bin() -> None:
    bins = calibration(np.array([0, 1, 0, 0]), np.full(4, 0.3))
    assert bins == [{"predicted": 0.3, "observed": 0.25, "count": 4}]


def test_confusion_counts_at_the_threshold_match_sklearn() -> None:
    from sklearn.metrics import confusion_matrix

    y, score = scored()
    found = confusion(y, score, 0.4)
    tn, fp, fn, tp = confusion_matrix(y, (score >= 0.4).astype(int)).ravel()
    assert found == {"threshold": 0.4, "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    assert sum(found[k] for k in ("tp", "fp", "tn", "fn")) == len(y)


def test_one_class_has_no_curves_and_says_why() -> None:
    y = np.zeros(40, dtype=int)
    score = np.linspace(0, 0.9, 40)
    found = diagnostics(y, score, 0.5)
    assert found["roc"] == [] and found["precision_recall"] == []
    assert found["unavailable"] == (
        "the holdout has only one label class (40 rows, all 0): "
        "ROC and precision-recall curves need both"
    )
    assert sum(b["count"] for b in found["calibration"]) == 40
    assert found["confusion"]["fp"] == int((score >= 0.5).sum())
    json.dumps(found)  # JSON-ready as it is


def test_no_rows_says_so() -> None:
    found = diagnostics(np.array([], dtype=int), np.array([]), 0.5)
    assert found["calibration"] == [] and "no rows" in found["unavailable"]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="3 labels but 2 scores"):
        diagnostics(np.array([0, 1, 0]), np.array([0.1, 0.2]), 0.5)
