"""Rollout verdicts in the history: recorded with their evidence, changing nothing else."""

from __future__ import annotations

import pytest

from loopline.registry import Action, IllegalTransition, InvalidInput, Registry, UnknownVersion
from tests.registry.registry_testing import promote, register_staged

EVIDENCE = {
    "decision": "extend",
    "test": "paired DeLong",
    "estimate": 0.004,
    "interval": [-0.02, 0.028],
    "champion": {"n": 400, "positives": 40, "negatives": 360},
}


def test_review_is_chained_and_changes_no_state(registry: Registry) -> None:
    a, b = register_staged(registry, "churn", "a", "b")
    promote(registry, a)
    registry.set_challenger("churn", b, actor="flow", reason="canary")
    before = registry.get(b)
    registry.record_review(b, actor="monitor", reason="extended", details=EVIDENCE)
    entry = registry.history(version=b)[-1]
    assert entry.action is Action.REVIEW and entry.details == EVIDENCE
    assert entry.reason == "extended" and entry.actor == "monitor"
    assert registry.get(b) == before and registry.challenger("churn") == before
    assert registry.verify() is None


def test_review_refuses_versions_not_under_rollout(registry: Registry) -> None:
    (a,) = register_staged(registry, "churn", "a")
    promote(registry, a)
    last = registry.history()[-1].seq
    with pytest.raises(IllegalTransition, match="only a staging version"):
        registry.record_review(a, actor="monitor", reason="x", details=EVIDENCE)
    with pytest.raises(UnknownVersion):
        registry.record_review("nope", actor="monitor", reason="x", details=EVIDENCE)
    assert registry.history()[-1].seq == last


def test_review_details_must_be_finite_json(registry: Registry) -> None:
    (b,) = register_staged(registry, "churn", "b")
    with pytest.raises(InvalidInput):
        registry.record_review(b, actor="monitor", reason="x", details={"estimate": float("nan")})
