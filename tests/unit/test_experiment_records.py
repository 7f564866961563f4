"""Intervals, importance, segments, plot files and failed candidates of experiment records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopline.experiments.importance import permutation_ranking
from loopline.experiments.intervals import ResampledMetrics, metric_intervals
from loopline.experiments.plots import CONFUSION_ROWS, confusion_rows, write_plots
from loopline.experiments.record import model_bytes, segments
from loopline.training.candidates import Candidate
from loopline.training.evaluate import classification_metrics
from loopline.training.train import CandidateResult, TrainingError, one_line, select


def scored(rows: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.15).astype(int)
    return y, np.clip(rng.normal(0.3 + 0.25 * y, 0.15), 0, 1).round(3)


@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_resampled_metrics_equal_sklearn_on_each_resample(threshold: float) -> None:
    y, score = scored()
    resampled = ResampledMetrics(y, score, threshold)
    for drawn_pos, drawn_neg in resampled.draws(seed=3, resamples=5):
        rows = np.concatenate([drawn_pos, drawn_neg])
        expected = classification_metrics(y[rows], score[rows], threshold)
        got = resampled.of(drawn_pos, drawn_neg)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_intervals_are_seeded_and_contain_the_holdout_value() -> None:
    y, score = scored()
    first = metric_intervals(y, score, 0.5, seed=7, resamples=200)
    assert first == metric_intervals(y, score, 0.5, seed=7, resamples=200)
    assert first != metric_intervals(y, score, 0.5, seed=8, resamples=200)
    assert set(first) == {"roc_auc", "average_precision", "log_loss", "f1", "accuracy"}
    for name, bounds in first.items():
        assert bounds["low"] <= bounds["value"] <= bounds["high"], name
    # 2,000 rows, 300 positives: ROC AUC to within a few hundredths, as the textbook says.
    assert 0.02 < first["roc_auc"]["high"] - first["roc_auc"]["low"] < 0.12


def test_one_class_intervals_keep_what_is_defined() -> None:
    found = metric_intervals(np.zeros(30, dtype=int), np.linspace(0, 0.6, 30), 0.5, 7, 200)
    assert found["roc_auc"] == {"value": None, "low": None, "high": None}
    assert found["accuracy"]["value"] == pytest.approx(25 / 30, abs=1e-6)
    assert found["accuracy"]["low"] is None


def frame(rows: int = 1500, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "signal": rng.normal(size=rows),
            "weak": rng.normal(size=rows),
            "noise": rng.normal(size=rows),
        }
    )
    logit = 2.5 * x["signal"] + 0.5 * x["weak"]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return x, y


def test_importance_ranks_the_signal_first_and_is_seeded() -> None:
    x, y = frame()
    model = LogisticRegression().fit(x, y)
    ranking, basis = permutation_ranking(model, x, y, "roc_auc", 0.5, seed=7)
    assert [r["feature"] for r in ranking] == ["signal", "weak", "noise"]
    assert ranking[0]["mean"] > 0.2 and abs(ranking[2]["mean"]) < 0.01
    assert basis == {"metric": "roc_auc", "repeats": 3, "holdout_rows": 1500, "rows": 1500}
    assert permutation_ranking(model, x, y, "roc_auc", 0.5, seed=7)[0] == ranking


def test_importance_agrees_with_sklearn_scoring() -> None:
    from sklearn.inspection import permutation_importance

    x, y = frame()
    model = LogisticRegression().fit(x, y)
    ranking, _ = permutation_ranking(model, x, y, "roc_auc", 0.5, seed=7)
    theirs = permutation_importance(model, x, y, scoring="roc_auc", n_repeats=3, random_state=7)
    ours = {r["feature"]: r["mean"] for r in ranking}
    assert [ours[c] for c in x.columns] == pytest.approx(list(theirs.importances_mean), abs=1e-6)


def test_importance_of_a_lower_is_better_metric_is_still_a_drop() -> None:
    x, y = frame()
    model = LogisticRegression().fit(x, y)
    ranking, _ = permutation_ranking(model, x, y, "log_loss", 0.5, seed=7)
    assert ranking[0]["feature"] == "signal" and ranking[0]["mean"] > 0


def test_importance_beyond_the_cap_permutes_a_seeded_sample() -> None:
    x, y = frame(rows=3000)
    model = LogisticRegression().fit(x, y)
    ranking, basis = permutation_ranking(model, x, y, "roc_auc", 0.5, seed=7, max_rows=1000)
    assert basis["rows"] == 1000 and basis["holdout_rows"] == 3000
    assert ranking[0]["feature"] == "signal"


def test_importance_without_both_classes_is_empty() -> None:
    x, _ = frame(rows=50)
    model = LogisticRegression().fit(x, np.arange(50) % 2)
    ranking, basis = permutation_ranking(model, x, np.zeros(50), "roc_auc", 0.5, seed=7)
    assert ranking == [] and basis["rows"] == 0


def test_segments_count_rows_and_positives_and_say_none_without_both_classes() -> None:
    values = pd.Series(["a", "a", "a", "b", "b"])
    y = np.array([0, 1, 1, 0, 0])
    score = np.array([0.2, 0.7, 0.4, 0.6, 0.1])
    found = segments(values, y, score, "plan", 0.5)
    assert found["column"] == "plan"
    a, b = found["rows"]
    assert (a["segment"], a["rows"], a["positives"], a["roc_auc"]) == ("a", 3, 2, 1.0)
    assert a["accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert (b["segment"], b["rows"], b["positives"], b["roc_auc"]) == ("b", 2, 0, None)
    assert b["accuracy"] == 0.5


def test_model_bytes_is_the_joblib_size() -> None:
    import io

    import joblib

    x, y = frame(rows=200)
    model = LogisticRegression().fit(x, y)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    assert model_bytes(model) == len(buffer.getvalue()) > 0


def test_confusion_rows_are_capped_by_a_seeded_sample() -> None:
    y, score = scored(rows=CONFUSION_ROWS + 500)
    rows = confusion_rows(y, score, 0.5, seed=7)
    assert len(rows) == CONFUSION_ROWS and rows == confusion_rows(y, score, 0.5, seed=7)
    small = confusion_rows(np.array([1, 0]), np.array([0.9, 0.6]), 0.5, seed=7)
    assert small == [
        {"actual": "churn", "predicted": "churn"},
        {"actual": "stay", "predicted": "churn"},
    ]


def test_plot_files_are_lists_of_records(tmp_path: Path) -> None:
    from loopline.experiments.curves import diagnostics

    y, score = scored()
    found = diagnostics(y, score, 0.5) | {"importance": [{"feature": "f", "mean": 0.1, "std": 0.0}]}
    written = write_plots(tmp_path, found, y, score, 0.5, seed=7)
    names = sorted(p.name for p in written)
    assert names == sorted(
        [
            "roc.json",
            "precision_recall.json",
            "calibration.json",
            "importance.json",
            "confusion.json",
        ]
    )
    for path in written:
        records = json.loads(path.read_text())
        assert isinstance(records, list) and records and isinstance(records[0], dict)
    assert len(json.loads((tmp_path / "confusion.json").read_text())) == len(y)


def result(name: str, error: str | None = None, auc: float = 0.7) -> CandidateResult:
    metrics = {} if error else {"roc_auc": auc}
    score = None if error else np.linspace(0, 1, 20)
    return CandidateResult(
        Candidate(name, {}), metrics, 0.1, latency_p95_ms=1.0, holdout_score=score, error=error
    )


def test_a_failed_candidate_is_left_out_and_the_others_compared() -> None:
    from loopline.config import TrainingParams

    training = TrainingParams(
        metric="roc_auc", holdout_days=7, seed=7, candidates={"logistic_regression": {"C": [1.0]}}
    )
    y = (np.arange(20) % 3 == 0).astype(int)
    results = [
        result("bad", error="ValueError: C must be > 0"),
        result("good"),
        result("best", auc=0.8),
    ]
    selection = select(results, y, training, 0.5)
    assert selection.selected.candidate.estimator == "best"
    assert results[0].experiment(selected=False) == {
        "candidate": "bad()",
        "estimator": "bad",
        "params": {},
        "status": "failed",
        "error": "ValueError: C must be > 0",
        "selected": False,
        "metrics": {},
        "fit_seconds": None,
        "latency_p95_ms": None,
        "model_bytes": None,
        "diagnostics": {},
    }
    with pytest.raises(TrainingError, match=r"every candidate failed to fit \(bad\(\): ValueError"):
        select([results[0]], y, training, 0.5)
    with pytest.raises(TrainingError, match="the pinned candidate bad\\(\\) failed"):
        select(results, y, training, 0.5, pinned="bad()")


def test_one_line_keeps_the_type_and_first_line() -> None:
    assert one_line(ValueError("first\nsecond")) == "ValueError: first"
    assert one_line(RuntimeError()) == "RuntimeError"
    assert len(one_line(ValueError("x" * 1000))) == 300
