"""Planning stage changes: validate against a snapshot and return the steps that make them.

Each function raises a RegistryError subclass, having written nothing, when the change
is not allowed; otherwise it returns conditional steps for ``ledger.append``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from loopline.registry import queries
from loopline.registry.chain import Entry, timestamp
from loopline.registry.errors import (
    ApprovalError,
    DuplicateVersion,
    IllegalTransition,
    NoPreviousVersion,
    UnknownModel,
)
from loopline.registry.ledger import Step
from loopline.registry.records import Action, Stage
from loopline.registry.routing import clear_challenger
from loopline.registry.rules import check_move
from loopline.registry.schema import ApprovalRow, VersionRow


def move(
    version: str,
    model_name: str,
    from_stage: Stage,
    to_stage: Stage,
    *,
    action: Action,
    reason: str,
    details: dict[str, Any] | None = None,
) -> Step:
    """Move one version between stages, only if it is still where the plan saw it."""
    statement = (
        update(VersionRow)
        .where(VersionRow.version == version, VersionRow.stage == from_stage.value)
        .values(stage=to_stage.value)
    )
    entry = Entry(action, model_name, version, reason, from_stage, to_stage, details or {})
    return Step(statement, entry)


def follow(
    session: Session,
    row: VersionRow,
    from_stage: Stage,
    to_stage: Stage,
    *,
    action: Action,
    reason: str,
    details: dict[str, Any],
) -> list[Step]:
    """Steps that move ``row`` and everything that must move with it, in a safe order."""
    steps: list[Step] = []
    if to_stage is Stage.PRODUCTION:
        current = queries.production_row(session, row.model_name)
        if current is not None:
            # Archive first: the one-production index would reject the reverse order.
            steps.append(
                move(
                    current.version,
                    row.model_name,
                    Stage.PRODUCTION,
                    Stage.ARCHIVED,
                    action=Action.TRANSITION,
                    reason=f"replaced in production by {row.version}",
                    details={"replaced_by": row.version},
                )
            )
    if from_stage is Stage.STAGING:
        if queries.challenger_of(session, row.model_name) == row.version:
            note = f"{row.version} left staging for {to_stage.value}"
            steps.append(clear_challenger(row.model_name, row.version, note))
        approval = session.get(ApprovalRow, row.version)
        if approval is not None:
            steps.append(Step(delete(ApprovalRow).where(ApprovalRow.version == row.version)))
            if action is not Action.APPROVED:
                details = {**details, "approval_cancelled": approval.approver}
    steps.append(
        move(
            row.version,
            row.model_name,
            from_stage,
            to_stage,
            action=action,
            reason=reason,
            details=details,
        )
    )
    return steps


def register(
    session: Session,
    model_name: str,
    version: str,
    *,
    metrics: dict[str, float],
    lineage: dict[str, Any],
    reason: str,
) -> list[Step]:
    """Add a new candidate version."""
    if session.get(VersionRow, version) is not None:
        raise DuplicateVersion(version)
    statement = insert(VersionRow).values(
        version=version,
        model_name=model_name,
        stage=Stage.CANDIDATE.value,
        metrics=metrics,
        lineage=lineage,
    )
    details = {"metrics": metrics, "lineage": lineage}
    entry = Entry(Action.REGISTER, model_name, version, reason, None, Stage.CANDIDATE, details)
    return [Step(statement, entry, stamp="created_at")]


def transition(
    session: Session, version: str, target: Stage, *, reason: str, gates: list[Any] | None
) -> list[Step]:
    """Move a version along one legal edge of the stage graph."""
    row = queries.version_row(session, version)
    current = Stage(row.stage)
    check_move(version, current, target)
    approval = session.get(ApprovalRow, version)
    if target is Stage.PRODUCTION and approval is not None:
        raise ApprovalError(
            f"model version {version!r} awaits approval by {approval.approver!r} before it "
            "can go to production; use approve()"
        )
    details = {} if gates is None else {"gate_results": gates}
    return follow(
        session, row, current, target, action=Action.TRANSITION, reason=reason, details=details
    )


def review(session: Session, version: str, *, reason: str, details: dict[str, Any]) -> list[Step]:
    """A rollout verdict about a staging version: a history entry, no state change."""
    row = queries.version_row(session, version)
    if row.stage != Stage.STAGING:
        raise IllegalTransition(
            f"model version {version!r} is in {row.stage}; only a staging version (one under "
            "rollout) can be reviewed"
        )
    entry = Entry(Action.REVIEW, row.model_name, version, reason, details=details)
    return [Step(None, entry)]


def request_promotion(
    session: Session,
    version: str,
    *,
    actor: str,
    reason: str,
    gates: list[Any],
    approver: str | None,
) -> list[Step]:
    """Promote to production now, or park the version in staging awaiting ``approver``."""
    row = queries.version_row(session, version)
    current = Stage(row.stage)
    if current not in (Stage.CANDIDATE, Stage.STAGING):
        raise IllegalTransition(
            f"model version {version!r} is in {current.value}; only a candidate or staging "
            "version can be promoted to production"
        )
    pending = session.get(ApprovalRow, version)
    if pending is not None:
        raise ApprovalError(
            f"model version {version!r} already awaits approval by {pending.approver!r}"
        )
    details: dict[str, Any] = {"gate_results": gates}

    def along(start: Stage, end: Stage) -> list[Step]:
        return follow(
            session, row, start, end, action=Action.TRANSITION, reason=reason, details=details
        )

    steps = along(Stage.CANDIDATE, Stage.STAGING) if current is Stage.CANDIDATE else []
    if approver is None:
        return steps + along(Stage.STAGING, Stage.PRODUCTION)
    statement = insert(ApprovalRow).values(
        version=version, approver=approver, requested_by=actor, reason=reason, gate_results=gates
    )
    request = {"approver": approver, "target_stage": Stage.PRODUCTION.value, "gate_results": gates}
    entry = Entry(Action.APPROVAL_REQUESTED, row.model_name, version, reason, details=request)
    return [*steps, Step(statement, entry, stamp="requested_at")]


def approve(session: Session, version: str, *, actor: str, reason: str) -> list[Step]:
    """Promote a version waiting for ``actor``'s approval."""
    row = queries.version_row(session, version)
    approval = session.get(ApprovalRow, version)
    if approval is None:
        raise ApprovalError(f"model version {version!r} has no pending approval")
    if actor != approval.approver:
        raise ApprovalError(
            f"model version {version!r} awaits approval by {approval.approver!r}, not {actor!r}"
        )
    if row.stage != Stage.STAGING:
        raise IllegalTransition(f"model version {version!r} is in {row.stage}, not staging")
    details = {
        "requested_by": approval.requested_by,
        "requested_at": timestamp(approval.requested_at),
        "request_reason": approval.reason,
        "gate_results": approval.gate_results,
    }
    return follow(
        session,
        row,
        Stage.STAGING,
        Stage.PRODUCTION,
        action=Action.APPROVED,
        reason=reason,
        details=details,
    )


def rollback(session: Session, model_name: str, *, reason: str) -> tuple[list[Step], str]:
    """Undo the latest production change of a model; returns the steps and the restored version."""
    if not queries.model_exists(session, model_name):
        raise UnknownModel(model_name)
    current = queries.production_row(session, model_name)
    holders = queries.production_holders(session, model_name)
    current_version = current.version if current is not None else None
    target = next((v for v in reversed(holders) if v != current_version), None)
    if target is None:
        after = f" before {current_version!r}" if current_version else ""
        raise NoPreviousVersion(
            f"model {model_name!r} has no production version{after} to roll back to"
        )
    target_row = queries.version_row(session, target)
    if target_row.stage != Stage.ARCHIVED:
        raise IllegalTransition(
            f"cannot roll back {model_name!r} to {target!r}: it is in {target_row.stage}, "
            "not archived"
        )
    steps: list[Step] = []
    if current_version is not None:
        steps.append(
            move(
                current_version,
                model_name,
                Stage.PRODUCTION,
                Stage.ARCHIVED,
                action=Action.TRANSITION,
                reason=reason,
                details={"rolled_back_to": target},
            )
        )
    restored = {"rolled_back_from": current_version}
    steps.append(
        move(
            target,
            model_name,
            Stage.ARCHIVED,
            Stage.PRODUCTION,
            action=Action.ROLLBACK,
            reason=reason,
            details=restored,
        )
    )
    return steps, target
