import pytest

from loopline.training.candidates import Candidate, expand
from loopline.training.train import CandidateResult, select_best


def result(name: str, **metrics: float) -> CandidateResult:
    return CandidateResult(Candidate(name, {}), metrics, 0.0)


def test_grid_expands_to_every_combination() -> None:
    grid = {"hist_gradient_boosting": {"learning_rate": [0.05, 0.1], "max_depth": [3, 6, None]}}
    candidates = expand(grid)
    assert len(candidates) == 6
    assert {c.params["max_depth"] for c in candidates} == {3, 6, None}


def test_higher_wins_for_auc() -> None:
    best = select_best([result("a", roc_auc=0.7), result("b", roc_auc=0.8)], "roc_auc")
    assert best.candidate.estimator == "b"


def test_lower_wins_for_log_loss() -> None:
    best = select_best([result("a", log_loss=0.3), result("b", log_loss=0.4)], "log_loss")
    assert best.candidate.estimator == "a"


def test_tie_keeps_the_first() -> None:
    best = select_best([result("a", roc_auc=0.8), result("b", roc_auc=0.8)], "roc_auc")
    assert best.candidate.estimator == "a"


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="no candidates"):
        select_best([], "roc_auc")
