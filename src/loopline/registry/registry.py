"""The model registry: stages, aliases, deployment policy and a tamper-evident history.

Every change is prepared against a snapshot that starts with the newest history seq,
then written in one transaction that re-checks that seq, makes its state changes
conditional on what the snapshot saw, and inserts its history entries at seq + 1...
The primary key on seq makes any two overlapping changes collide: exactly one commits,
the other raises RegistryConflict having written nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from loopline.registry import database, queries, routing, rules, stages
from loopline.registry.errors import RegistryError
from loopline.registry.ledger import Step, append
from loopline.registry.records import Policy, PolicyKind, Stage, VersionRecord
from loopline.registry.view import RegistryView

T = TypeVar("T")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current instant in UTC."""
    return datetime.now(UTC)


class Registry(RegistryView):
    """Loopline's model registry over SQLite (default) or PostgreSQL, chosen by URL."""

    def __init__(self, url: str, *, now: Clock = utc_now) -> None:
        # The clock is read once per change, after the change has been validated and
        # before it is written; tests use that to make two changes overlap on purpose.
        super().__init__(url)
        self._now = now

    def register(
        self,
        model_name: str,
        version: str,
        *,
        metrics: dict[str, float],
        lineage: dict[str, Any],
        actor: str,
        reason: str = "registered",
    ) -> VersionRecord:
        """Record a new model version as a candidate."""
        model_name = rules.require_text("model_name", model_name)
        version = rules.require_text("version", version)
        actor, reason = rules.require_change_note(actor, reason)
        clean_metrics = rules.parse_metrics(metrics)
        clean_lineage = rules.parse_json_object("lineage", lineage)
        return self._change(
            f"registering {version!r}",
            actor,
            lambda s: stages.register(
                s, model_name, version, metrics=clean_metrics, lineage=clean_lineage, reason=reason
            ),
            lambda s: queries.record_of(s, version),
        )

    def transition(
        self,
        version: str,
        to_stage: Stage | str,
        *,
        actor: str,
        reason: str,
        gate_results: list[Any] | None = None,
    ) -> VersionRecord:
        """Move ``version`` to ``to_stage`` along a legal edge (see ``rules.LEGAL_MOVES``)."""
        version = rules.require_text("version", version)
        target = rules.parse_stage(to_stage)
        actor, reason = rules.require_change_note(actor, reason)
        gates = (
            None if gate_results is None else rules.parse_json_list("gate_results", gate_results)
        )
        return self._change(
            f"moving {version!r} to {target.value}",
            actor,
            lambda s: stages.transition(s, version, target, reason=reason, gates=gates),
            lambda s: queries.record_of(s, version),
        )

    def request_promotion(
        self,
        version: str,
        *,
        actor: str,
        reason: str,
        gate_results: list[Any],
        approver: str | None = None,
    ) -> VersionRecord:
        """Promote ``version`` to production, or leave it in staging awaiting ``approver``."""
        version = rules.require_text("version", version)
        actor, reason = rules.require_change_note(actor, reason)
        gates = rules.parse_json_list("gate_results", gate_results)
        if approver is not None:
            approver = rules.require_text("approver", approver)
        return self._change(
            f"promoting {version!r} to production",
            actor,
            lambda s: stages.request_promotion(
                s, version, actor=actor, reason=reason, gates=gates, approver=approver
            ),
            lambda s: queries.record_of(s, version),
        )

    def approve(self, version: str, *, actor: str, reason: str) -> VersionRecord:
        """Approve the pending promotion of ``version`` (``actor`` must be its approver)."""
        version = rules.require_text("version", version)
        actor, reason = rules.require_change_note(actor, reason)
        return self._change(
            f"approving {version!r} for production",
            actor,
            lambda s: stages.approve(s, version, actor=actor, reason=reason),
            lambda s: queries.record_of(s, version),
        )

    def rollback(self, model_name: str, *, actor: str, reason: str) -> VersionRecord:
        """Give production back to the version that held it before the current one."""
        model_name = rules.require_text("model_name", model_name)
        actor, reason = rules.require_change_note(actor, reason)
        restored: list[str] = []

        def plan(session: Session) -> list[Step]:
            steps, target = stages.rollback(session, model_name, reason=reason)
            restored.append(target)
            return steps

        return self._change(
            f"rolling back {model_name!r}",
            actor,
            plan,
            lambda s: queries.record_of(s, restored[0]),
        )

    def set_challenger(
        self, model_name: str, version: str | None, *, actor: str, reason: str
    ) -> VersionRecord | None:
        """Point the challenger alias at a staging ``version``, or clear it with None."""
        model_name = rules.require_text("model_name", model_name)
        if version is not None:
            version = rules.require_text("version", version)
        actor, reason = rules.require_change_note(actor, reason)
        return self._change(
            f"setting the challenger of {model_name!r} to {version!r}",
            actor,
            lambda s: routing.set_challenger(s, model_name, version, reason=reason),
            lambda s: queries.record_of(s, version) if version is not None else None,
        )

    def set_policy(
        self,
        model_name: str,
        kind: PolicyKind | str,
        challenger_share: float,
        *,
        actor: str,
        reason: str,
    ) -> Policy:
        """Set how serving splits traffic between champion and challenger."""
        model_name = rules.require_text("model_name", model_name)
        policy_kind, share = rules.parse_policy(kind, challenger_share)
        actor, reason = rules.require_change_note(actor, reason)
        return self._change(
            f"setting the policy of {model_name!r} to {policy_kind.value}",
            actor,
            lambda s: routing.set_policy(
                s, model_name, policy_kind, share, actor=actor, reason=reason
            ),
            lambda s: queries.policy_of(s, model_name),
        )

    def record_review(
        self, version: str, *, actor: str, reason: str, details: dict[str, Any]
    ) -> VersionRecord:
        """Append a rollout verdict about ``version`` (with its evidence) to the history."""
        version = rules.require_text("version", version)
        actor, reason = rules.require_change_note(actor, reason)
        evidence = rules.parse_json_object("details", details)
        return self._change(
            f"recording a review of {version!r}",
            actor,
            lambda s: stages.review(s, version, reason=reason, details=evidence),
            lambda s: queries.record_of(s, version),
        )

    def upgrade(self) -> None:
        """Create or migrate the registry tables to the newest schema (idempotent)."""
        database.upgrade(self.engine)

    def _change(
        self,
        what: str,
        actor: str,
        plan: Callable[[Session], list[Step]],
        result: Callable[[Session], T],
    ) -> T:
        with self._read() as session:
            # The seq is read before anything the plan looks at, so the plan can only be
            # newer than base_seq, never older; a newer one just makes append() refuse.
            base_seq = queries.last_seq(session)
            steps = plan(session)
        if not steps:
            with self._read() as session:
                return result(session)
        at = self._now()
        if at.tzinfo is None:
            raise RegistryError("the registry clock returned a naive datetime; it must be aware")
        with database.write_session(database.writing(self.engine), what) as session:
            append(session, base_seq=base_seq, steps=steps, actor=actor, at=at, what=what)
            return result(session)
