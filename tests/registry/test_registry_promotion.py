"""Promotion requests, approvals, rollback and deployment policy."""

from __future__ import annotations

import pytest

from loopline.registry import (
    ApprovalError,
    IllegalTransition,
    InvalidInput,
    NoPreviousVersion,
    PolicyKind,
    Registry,
    Stage,
    UnknownModel,
)
from tests.registry.registry_testing import promote, register_staged

GATES = [{"gate": "auc_at_least", "threshold": 0.75, "value": 0.82, "passed": True}]


def test_promotion_from_candidate_goes_through_staging(registry: Registry) -> None:
    registry.register("churn", "churn:a", metrics={"auc": 0.82}, lineage={}, actor="trainer")
    record = registry.request_promotion(
        "churn:a", actor="flow", reason="gates passed", gate_results=GATES
    )
    assert record.stage is Stage.PRODUCTION
    staged, promoted = registry.history()[-2:]
    assert (staged.from_stage, staged.to_stage) == (Stage.CANDIDATE, Stage.STAGING)
    assert (promoted.from_stage, promoted.to_stage) == (Stage.STAGING, Stage.PRODUCTION)
    assert promoted.details == {"gate_results": GATES}
    assert promoted.actor == "flow"


@pytest.mark.parametrize("stage", [Stage.PRODUCTION, Stage.ARCHIVED])
def test_only_candidates_and_staging_versions_can_be_promoted(
    registry: Registry, stage: Stage
) -> None:
    a, b = register_staged(registry, "churn", "a", "b")
    promote(registry, a)
    if stage is Stage.ARCHIVED:
        promote(registry, b)
    counter = registry.change_counter()
    with pytest.raises(IllegalTransition, match=f"churn:a.*{stage.value}"):
        registry.request_promotion("churn:a", actor="flow", reason="again", gate_results=[])
    assert registry.change_counter() == counter


def test_approval_flow_waits_in_staging_then_moves(registry: Registry) -> None:
    a, b = register_staged(registry, "churn", "a", "b")
    promote(registry, a)
    waiting = registry.request_promotion(
        b, actor="flow", reason="better auc", gate_results=GATES, approver="lead"
    )
    assert waiting.stage is Stage.STAGING
    assert waiting.approval_required and waiting.pending_approver == "lead"
    [approval] = registry.pending_approvals("churn")
    assert (approval.version, approval.approver, approval.requested_by) == (b, "lead", "flow")
    assert approval.gate_results == GATES
    requested = registry.history()[-1]
    assert requested.action == "approval_requested"
    assert requested.details["approver"] == "lead"
    assert registry.production("churn") == registry.get(a)

    with pytest.raises(ApprovalError, match="lead"):
        registry.transition(b, "production", actor="flow", reason="skip the approval")
    with pytest.raises(ApprovalError, match="mallory"):
        registry.approve(b, actor="mallory", reason="looks fine")
    with pytest.raises(ApprovalError, match="already awaits"):
        registry.request_promotion(b, actor="flow", reason="again", gate_results=[], approver="x")
    assert registry.get(b).stage is Stage.STAGING

    approved = registry.approve(b, actor="lead", reason="reviewed the model card")
    assert approved.stage is Stage.PRODUCTION and not approved.approval_required
    assert registry.get(a).stage is Stage.ARCHIVED
    assert registry.pending_approvals() == []
    last = registry.history()[-1]
    assert (last.action, last.actor, last.to_stage) == ("approved", "lead", Stage.PRODUCTION)
    assert last.details["gate_results"] == GATES and last.details["requested_by"] == "flow"
    with pytest.raises(ApprovalError, match="no pending approval"):
        registry.approve(b, actor="lead", reason="twice")
    assert registry.verify() is None


def test_leaving_staging_cancels_a_pending_approval(registry: Registry) -> None:
    [b] = register_staged(registry, "churn", "b")
    registry.request_promotion(b, actor="flow", reason="try", gate_results=[], approver="lead")
    registry.transition(b, "archived", actor="lead", reason="superseded")
    assert registry.pending_approvals() == []
    assert registry.history()[-1].details == {"approval_cancelled": "lead"}
    with pytest.raises(ApprovalError):
        registry.approve(b, actor="lead", reason="too late")


def test_rollback_restores_the_previous_production_version(registry: Registry) -> None:
    a, b, c = register_staged(registry, "churn", "a", "b", "c")
    for version in (a, b, c):
        promote(registry, version)
    restored = registry.rollback("churn", actor="oncall", reason="error rate doubled")
    assert restored.version == b and restored.stage is Stage.PRODUCTION
    assert registry.get(c).stage is Stage.ARCHIVED
    archived, rolled = registry.history()[-2:]
    assert (archived.version, archived.to_stage) == (c, Stage.ARCHIVED)
    assert (rolled.action, rolled.version, rolled.from_stage) == ("rollback", b, Stage.ARCHIVED)
    assert rolled.details == {"rolled_back_from": c}
    assert rolled.reason == "error rate doubled" and rolled.actor == "oncall"
    # A rollback undoes the latest production change, so a second one redoes it.
    assert registry.rollback("churn", actor="oncall", reason="false alarm").version == c
    assert registry.verify() is None


def test_rollback_without_a_previous_version_is_refused(registry: Registry) -> None:
    [a] = register_staged(registry, "churn", "a")
    with pytest.raises(NoPreviousVersion, match="churn"):
        registry.rollback("churn", actor="oncall", reason="nothing served yet")
    promote(registry, a)
    counter = registry.change_counter()
    with pytest.raises(NoPreviousVersion, match="churn:a"):
        registry.rollback("churn", actor="oncall", reason="only one ever")
    with pytest.raises(UnknownModel, match="nomodel"):
        registry.rollback("nomodel", actor="oncall", reason="typo")
    assert registry.change_counter() == counter
    assert registry.get(a).stage is Stage.PRODUCTION


def test_rollback_after_retiring_production_brings_it_back(registry: Registry) -> None:
    [a] = register_staged(registry, "churn", "a")
    promote(registry, a)
    registry.transition(a, "archived", actor="oncall", reason="retire the model")
    assert registry.production("churn") is None
    assert registry.rollback("churn", actor="oncall", reason="retired too soon").version == a
    with pytest.raises(NoPreviousVersion):
        registry.rollback("churn", actor="oncall", reason="nothing before it")


def test_policy_defaults_to_single_and_changes_are_recorded(registry: Registry) -> None:
    register_staged(registry, "churn", "a")
    default = registry.policy("churn")
    assert (default.kind, default.challenger_share, default.updated_at) == (
        PolicyKind.SINGLE,
        0.0,
        None,
    )
    policy = registry.set_policy("churn", "canary", 0.1, actor="lead", reason="try b on 10%")
    assert (policy.kind, policy.challenger_share, policy.updated_by) == ("canary", 0.1, "lead")
    assert registry.policy("churn") == policy
    registry.set_policy("churn", "blue-green", 1, actor="lead", reason="switch")
    last = registry.history()[-1]
    assert (last.action, last.version) == ("policy_set", None)
    assert last.details == {
        "kind": "blue-green",
        "challenger_share": 1.0,
        "previous": {"kind": "canary", "challenger_share": 0.1},
    }
    counter = registry.change_counter()
    registry.set_policy("churn", "blue-green", 1.0, actor="lead", reason="same again")
    assert registry.change_counter() == counter


@pytest.mark.parametrize(
    ("kind", "share", "message"),
    [
        ("random", 0.1, "unknown policy kind 'random'"),
        ("canary", 1.5, "between 0 and 1"),
        ("canary", -0.1, "between 0 and 1"),
        ("ab", float("nan"), "between 0 and 1"),
        ("ab", "half", "must be a number"),
        ("single", 0.2, "must be 0"),
    ],
)
def test_bad_policy_is_refused(registry: Registry, kind: str, share: float, message: str) -> None:
    register_staged(registry, "churn", "a")
    counter = registry.change_counter()
    with pytest.raises(InvalidInput, match=message):
        registry.set_policy("churn", kind, share, actor="lead", reason="bad")
    with pytest.raises(UnknownModel):
        registry.set_policy("nomodel", "canary", 0.5, actor="lead", reason="typo")
    assert registry.change_counter() == counter
    assert registry.policy("churn").kind is PolicyKind.SINGLE
