"""The line a training shows as each candidate's fit ends."""

from __future__ import annotations

from loopline.training.stages import progress


def test_a_fitted_candidate_shows_its_count_metric_and_time() -> None:
    fit = {"candidate": "random_forest(max_depth=6)", "status": "ok", "roc_auc": 0.81234}
    line = progress(2, 5, fit | {"fit_seconds": 3.14}, "roc_auc")
    assert line == (
        "candidate 2/5 random_forest(max_depth=6): roc_auc 0.8123 on the holdout, fitted in 3.1 s"
    )


def test_a_failed_candidate_shows_why() -> None:
    fit = {"candidate": "logistic_regression(C=1.0)", "status": "failed", "error": "no rows"}
    assert progress(1, 3, fit, "roc_auc") == (
        "candidate 1/3 logistic_regression(C=1.0): failed: no rows"
    )


def test_a_metric_the_fit_does_not_report_says_fitted() -> None:
    fit = {"candidate": "c", "status": "ok", "fit_seconds": 1.0}
    assert progress(3, 3, fit, "log_loss") == "candidate 3/3 c: fitted in 1.0 s"
