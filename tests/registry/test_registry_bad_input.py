"""Bad input gets a clear error naming what is wrong, and leaves no trace at all."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from loopline.registry import (
    ApprovalError,
    DuplicateVersion,
    IllegalTransition,
    InvalidInput,
    NoPreviousVersion,
    Registry,
    RegistryError,
    Stage,
    UnknownModel,
    UnknownVersion,
)
from tests.registry.registry_testing import promote, register_staged


@pytest.fixture
def prepared(registry: Registry) -> Registry:
    """churn:a in production, churn:b in staging, churn:c a candidate, fraud:x in staging."""
    a, _ = register_staged(registry, "churn", "a", "b")
    registry.register("churn", "churn:c", metrics={}, lineage={}, actor="trainer")
    register_staged(registry, "fraud", "x")
    promote(registry, a)
    return registry


BAD_CALLS: dict[str, tuple[Callable[[Registry], object], type[RegistryError], str]] = {
    "unknown version": (
        lambda r: r.transition("churn:zzz", "staging", actor="me", reason="r"),
        UnknownVersion,
        "churn:zzz",
    ),
    "candidate to production": (
        lambda r: r.transition("churn:c", "production", actor="me", reason="r"),
        IllegalTransition,
        "'churn:c' cannot go from candidate to production",
    ),
    "production to staging": (
        lambda r: r.transition("churn:a", "staging", actor="me", reason="r"),
        IllegalTransition,
        "'churn:a' cannot go from production to staging",
    ),
    "unknown stage": (
        lambda r: r.transition("churn:b", "live", actor="me", reason="r"),
        InvalidInput,
        "unknown stage 'live'",
    ),
    "empty actor": (
        lambda r: r.transition("churn:b", "archived", actor="", reason="r"),
        InvalidInput,
        "actor",
    ),
    "blank reason": (
        lambda r: r.transition("churn:b", "archived", actor="me", reason="   "),
        InvalidInput,
        "reason",
    ),
    "duplicate version": (
        lambda r: r.register("churn", "churn:a", metrics={}, lineage={}, actor="me"),
        DuplicateVersion,
        "churn:a",
    ),
    "nan metric": (
        lambda r: r.register(
            "churn", "churn:n", metrics={"auc": float("nan")}, lineage={}, actor="me"
        ),
        InvalidInput,
        "auc",
    ),
    "text metric": (
        lambda r: r.register("churn", "churn:n", metrics={"auc": "high"}, lineage={}, actor="me"),
        InvalidInput,
        "auc",
    ),
    "lineage not json": (
        lambda r: r.register("churn", "churn:n", metrics={}, lineage={"f": object()}, actor="me"),
        InvalidInput,
        "lineage",
    ),
    "gate results not a list": (
        lambda r: r.request_promotion("churn:b", actor="me", reason="r", gate_results={"a": 1}),
        InvalidInput,
        "gate_results",
    ),
    "challenger is a candidate": (
        lambda r: r.set_challenger("churn", "churn:c", actor="me", reason="r"),
        IllegalTransition,
        "churn:c",
    ),
    "challenger of another model": (
        lambda r: r.set_challenger("churn", "fraud:x", actor="me", reason="r"),
        InvalidInput,
        "fraud:x",
    ),
    "policy share too big": (
        lambda r: r.set_policy("churn", "canary", 1.5, actor="me", reason="r"),
        InvalidInput,
        "challenger_share",
    ),
    "policy of unknown model": (
        lambda r: r.set_policy("nomodel", "canary", 0.5, actor="me", reason="r"),
        UnknownModel,
        "nomodel",
    ),
    "approve without request": (
        lambda r: r.approve("churn:b", actor="me", reason="r"),
        ApprovalError,
        "churn:b",
    ),
    "rollback with one production ever": (
        lambda r: r.rollback("churn", actor="me", reason="r"),
        NoPreviousVersion,
        "churn:a",
    ),
    "promote production again": (
        lambda r: r.request_promotion("churn:a", actor="me", reason="r", gate_results=[]),
        IllegalTransition,
        "churn:a",
    ),
}


def snapshot(registry: Registry) -> tuple[object, ...]:
    versions = [
        (v.version, v.stage, v.aliases, v.pending_approver) for v in registry.list_versions()
    ]
    return (
        registry.history(),
        registry.change_counter(),
        versions,
        registry.policy("churn"),
        registry.pending_approvals(),
    )


@pytest.mark.parametrize("case", list(BAD_CALLS), ids=list(BAD_CALLS))
def test_bad_input_changes_nothing(prepared: Registry, case: str) -> None:
    call, error, fragment = BAD_CALLS[case]
    before = snapshot(prepared)
    with pytest.raises(error) as raised:
        call(prepared)
    assert fragment in str(raised.value)
    assert snapshot(prepared) == before
    assert prepared.get("churn:a").stage is Stage.PRODUCTION


def test_a_naive_clock_is_refused_before_anything_is_written(registry_url: str) -> None:
    with Registry(registry_url, now=lambda: datetime(2025, 1, 1)) as registry:
        registry.upgrade()
        with pytest.raises(RegistryError, match="naive"):
            registry.register("churn", "churn:a", metrics={}, lineage={}, actor="me")
        assert registry.history() == [] and registry.list_versions() == []
