"""What the registry returns: plain frozen values, never ORM objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypedDict

CHAMPION = "champion"
CHALLENGER = "challenger"


class Stage(StrEnum):
    """Where a model version is in its life."""

    CANDIDATE = "candidate"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class PolicyKind(StrEnum):
    """How serving splits traffic between champion and challenger."""

    SINGLE = "single"
    CANARY = "canary"
    AB = "ab"
    SHADOW = "shadow"
    BLUE_GREEN = "blue-green"


class Action(StrEnum):
    """What a history entry records."""

    REGISTER = "register"
    TRANSITION = "transition"
    ALIAS_SET = "alias_set"
    ALIAS_CLEARED = "alias_cleared"
    POLICY_SET = "policy_set"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVED = "approved"
    ROLLBACK = "rollback"
    REVIEW = "review"  # a rollout verdict and its evidence; changes no state


@dataclass(frozen=True)
class VersionRecord:
    """One registered model version and where it stands now."""

    version: str
    model_name: str
    stage: Stage
    created_at: datetime
    metrics: dict[str, float]
    lineage: dict[str, Any]
    aliases: tuple[str, ...] = ()
    pending_approver: str | None = None

    @property
    def approval_required(self) -> bool:
        """Whether the version waits in staging for an approval to go to production."""
        return self.pending_approver is not None


@dataclass(frozen=True)
class Policy:
    """The deployment policy serving applies to a model."""

    model_name: str
    kind: PolicyKind = PolicyKind.SINGLE
    challenger_share: float = 0.0
    updated_at: datetime | None = None
    updated_by: str | None = None


@dataclass(frozen=True)
class Approval:
    """A pending request to promote a staging version to production."""

    version: str
    model_name: str
    approver: str
    requested_by: str
    requested_at: datetime
    reason: str
    gate_results: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class HistoryEntry:
    """One append-only, hash-chained record of a change."""

    seq: int
    at: datetime
    actor: str
    action: Action
    model_name: str
    version: str | None
    from_stage: Stage | None
    to_stage: Stage | None
    reason: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainBreak:
    """The first place where the history or the state it explains was tampered with."""

    seq: int
    problem: str


class ServedAt(TypedDict):
    """What served a model at one instant, replayed from history."""

    production: str | None
    challenger: str | None
    policy: str
    challenger_share: float
