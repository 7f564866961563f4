import time

import numpy as np
import pandas as pd
import pytest

from loopline.training.candidates import Candidate, expand
from loopline.training.selection import (
    LATENCY_TIE,
    bootstrap_se,
    choose,
    latency_p95_ms,
    single_row_p95_ms,
)
from loopline.training.train import CandidateResult, select_best


def result(name: str, latency: float = 1.0, **metrics: float) -> CandidateResult:
    return CandidateResult(Candidate(name, {}), metrics, 0.0, latency_p95_ms=latency)


def picked(results: list[CandidateResult], metric: str, tolerance: float = 0.0) -> str:
    return select_best(results, metric, tolerance).selected.candidate.estimator


def test_grid_expands_to_every_combination() -> None:
    grid = {"hist_gradient_boosting": {"learning_rate": [0.05, 0.1], "max_depth": [3, 6, None]}}
    candidates = expand(grid)
    assert len(candidates) == 6
    assert {c.params["max_depth"] for c in candidates} == {3, 6, None}


def test_higher_wins_for_auc() -> None:
    assert picked([result("a", roc_auc=0.7), result("b", roc_auc=0.8)], "roc_auc") == "b"


def test_lower_wins_for_log_loss() -> None:
    assert picked([result("a", log_loss=0.3), result("b", log_loss=0.4)], "log_loss") == "a"


def test_tie_keeps_the_first() -> None:
    assert picked([result("a", roc_auc=0.8), result("b", roc_auc=0.8)], "roc_auc") == "a"


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="no candidates"):
        select_best([], "roc_auc")


FOREST = result("forest", latency=20.0, roc_auc=0.7433)
BOOSTED = result("boosted", latency=1.0, roc_auc=0.7429)
LINEAR = result("linear", latency=0.1, roc_auc=0.7300)


def test_within_tolerance_the_fastest_wins() -> None:
    selection = select_best([FOREST, BOOSTED, LINEAR], "roc_auc", 0.005)
    assert selection.selected.candidate.estimator == "boosted"
    assert selection.within == ["forest()", "boosted()"]
    assert selection.best_metric == pytest.approx(0.7433)
    assert "top-scoring forest()" in selection.reason


def test_a_wider_tolerance_lets_a_slower_metric_lose_more() -> None:
    assert picked([FOREST, BOOSTED, LINEAR], "roc_auc", 0.02) == "linear"


def test_tolerance_zero_is_the_metric_alone() -> None:
    # Whatever the latencies, and with a tie on the metric the earlier candidate stays.
    results = [FOREST, BOOSTED, LINEAR, result("same", latency=0.01, roc_auc=0.7433)]
    selection = select_best(results, "roc_auc", 0.0)
    assert selection.selected is FOREST
    assert "metric alone" in selection.reason


def test_lower_is_better_tolerance_counts_upwards() -> None:
    results = [
        result("slow", latency=10.0, log_loss=0.230),
        result("fast", latency=1.0, log_loss=0.234),
        result("fastest_but_worse", latency=0.5, log_loss=0.240),
    ]
    assert picked(results, "log_loss", 0.005) == "fast"
    assert picked(results, "log_loss", 0.0) == "slow"


def test_latencies_within_the_tie_go_to_the_better_metric() -> None:
    results = [
        result("first", latency=1.0, roc_auc=0.740),
        result("close", latency=1.0 * (1 + LATENCY_TIE) - 1e-9, roc_auc=0.745),
        result("far", latency=1.0 * (1 + LATENCY_TIE) + 0.1, roc_auc=0.746),
    ]
    assert picked(results, "roc_auc", 0.01) == "close"


def test_exact_ties_keep_the_earlier_candidate() -> None:
    results = [result("a", latency=1.0, roc_auc=0.74), result("b", latency=1.0, roc_auc=0.74)]
    assert picked(results, "roc_auc", 0.01) == "a"


def test_only_the_best_within_tolerance_says_so() -> None:
    selection = select_best([FOREST, LINEAR], "roc_auc", 0.001)
    assert selection.selected is FOREST
    assert selection.within == ["forest()"]


def test_pinned_candidate_is_kept_whatever_the_rule_says() -> None:
    selection = select_best([FOREST, BOOSTED, LINEAR], "roc_auc", 0.02, pinned="forest()")
    assert selection.selected is FOREST
    assert "pinned" in selection.reason
    with pytest.raises(ValueError, match="pinned candidate 'gone\\(\\)'"):
        select_best([FOREST], "roc_auc", 0.02, pinned="gone()")


def test_unmeasured_latency_is_an_error_when_it_matters() -> None:
    unmeasured = [result("a", latency=float("nan"), roc_auc=0.74), BOOSTED]
    with pytest.raises(ValueError, match="measured latency"):
        select_best(unmeasured, "roc_auc", 0.01)
    assert picked(unmeasured, "roc_auc", 0.0) == "boosted"


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        choose(["a"], [0.7], [1.0], "roc_auc", -0.1)


def known_holdout(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose ROC AUC is about 0.76 (binormal, d' = 1), 10 % positives."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    return y, rng.normal(loc=y * 1.0)


def test_bootstrap_se_is_deterministic_for_a_seed() -> None:
    y, score = known_holdout()
    first = bootstrap_se("roc_auc", y, score, 0.5, seed=7)
    assert bootstrap_se("roc_auc", y, score, 0.5, seed=7) == first
    assert bootstrap_se("roc_auc", y, score, 0.5, seed=8) != first


def test_resampled_auc_is_sklearns_on_every_resample() -> None:
    # Ties (scores rounded to 2 places) and repeated draws are where a rank shortcut goes wrong.
    from sklearn.metrics import roc_auc_score

    from loopline.experiments.intervals import ResampledMetrics

    y, score = known_holdout(n=3000, seed=3)
    score = np.round(score, 2)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    resampled = ResampledMetrics(y, score, 0.5)
    rng = np.random.default_rng(1)
    for _ in range(20):
        drawn_pos = pos[rng.integers(0, len(pos), len(pos))]
        drawn_neg = neg[rng.integers(0, len(neg), len(neg))]
        rows = np.concatenate([drawn_pos, drawn_neg])
        expected = roc_auc_score(y[rows], score[rows])
        assert resampled.of(drawn_pos, drawn_neg)["roc_auc"] == pytest.approx(expected, abs=1e-12)


def test_bootstrap_se_of_auc_matches_the_generic_path() -> None:
    # The same draws through average precision's generic path and AUC's shortcut: the
    # shortcut changes the speed, not the resamples (same seed, same standard error).
    y, score = known_holdout(n=2000, seed=5)
    fast = bootstrap_se("roc_auc", y, score, 0.5, seed=7, resamples=40)
    generic = []
    rng = np.random.default_rng(7)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    from sklearn.metrics import roc_auc_score

    for _ in range(40):
        rows = np.concatenate(
            [pos[rng.integers(0, len(pos), len(pos))], neg[rng.integers(0, len(neg), len(neg))]]
        )
        generic.append(roc_auc_score(y[rows], score[rows]))
    assert fast == pytest.approx(float(np.std(generic, ddof=1)), rel=1e-9)


def test_bootstrap_se_has_the_textbook_magnitude() -> None:
    # Hanley-McNeil for AUC 0.76 on 400 positives and 3,600 negatives: about 0.013.
    y, score = known_holdout()
    se = bootstrap_se("roc_auc", y, score, 0.5, seed=7)
    assert 0.010 < se < 0.016
    # A quarter of the rows: about twice the standard error.
    small = bootstrap_se("roc_auc", y[:1000], score[:1000], 0.5, seed=7)
    assert 1.5 < small / se < 2.6


def test_bootstrap_se_works_for_every_metric() -> None:
    y, score = known_holdout()
    proba = 1 / (1 + np.exp(-(score - 2.5)))
    for metric in ("roc_auc", "average_precision", "log_loss", "f1", "accuracy"):
        assert 0 < bootstrap_se(metric, y, proba, 0.25, seed=7, resamples=50) < 0.1


def test_bootstrap_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both label classes"):
        bootstrap_se("roc_auc", np.zeros(10), np.linspace(0, 1, 10), 0.5, seed=7)


ROWS = pd.DataFrame({"x": np.arange(50.0), "kind": ["a", "b"] * 25})


def sleeper(seconds: float) -> object:
    def predict(_: object) -> None:
        time.sleep(seconds)

    return predict


def test_latency_ranks_a_slow_predict_behind_a_fast_one() -> None:
    fast, slow = latency_p95_ms([sleeper(0), sleeper(0.002)], ROWS, calls=30, rounds=1)
    assert fast < slow and slow >= 2.0


def test_each_call_gets_one_row_as_a_frame_or_as_columns() -> None:
    seen: list[object] = []
    single_row_p95_ms(seen.append, ROWS, calls=5, rounds=1)
    assert all(isinstance(row, pd.DataFrame) and len(row) == 1 for row in seen)
    seen.clear()
    single_row_p95_ms(seen.append, ROWS, calls=5, rounds=1, as_columns=True)
    assert seen[-1] == {"x": [4.0], "kind": ["a"]}


def test_latency_needs_rows() -> None:
    with pytest.raises(ValueError, match="no rows"):
        single_row_p95_ms(sleeper(0), ROWS.iloc[:0])
