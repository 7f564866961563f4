"""Reads: rows for planning a change, and records for callers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from loopline.registry.errors import UnknownVersion
from loopline.registry.records import (
    CHALLENGER,
    CHAMPION,
    Action,
    Approval,
    HistoryEntry,
    Policy,
    PolicyKind,
    Stage,
    VersionRecord,
)
from loopline.registry.schema import AliasRow, ApprovalRow, HistoryRow, PolicyRow, VersionRow


def last_seq(session: Session, model_name: str | None = None) -> int:
    """The seq of the newest history entry (of ``model_name``), 0 when there is none."""
    query = select(func.max(HistoryRow.seq))
    if model_name is not None:
        query = query.where(HistoryRow.model_name == model_name)
    return session.scalar(query) or 0


def version_row(session: Session, version: str) -> VersionRow:
    """The row of ``version``; UnknownVersion if there is none."""
    row = session.get(VersionRow, version)
    if row is None:
        raise UnknownVersion(version)
    return row


def production_row(session: Session, model_name: str) -> VersionRow | None:
    """The production version of ``model_name``, if any."""
    query = select(VersionRow).where(
        VersionRow.model_name == model_name, VersionRow.stage == Stage.PRODUCTION.value
    )
    return session.scalars(query).one_or_none()


def challenger_of(session: Session, model_name: str) -> str | None:
    """The version the challenger alias of ``model_name`` points at."""
    alias = session.get(AliasRow, (model_name, CHALLENGER))
    return alias.version if alias is not None else None


def model_exists(session: Session, model_name: str) -> bool:
    """Whether any version of ``model_name`` is registered."""
    query = select(VersionRow.version).where(VersionRow.model_name == model_name).limit(1)
    return session.scalar(query) is not None


def production_holders(session: Session, model_name: str) -> list[str]:
    """The versions of ``model_name`` that took production, in the order they took it."""
    query = (
        select(HistoryRow.version)
        .where(
            HistoryRow.model_name == model_name,
            HistoryRow.to_stage == Stage.PRODUCTION.value,
            HistoryRow.version.is_not(None),
        )
        .order_by(HistoryRow.seq)
    )
    return [version for version in session.scalars(query) if version is not None]


def history_rows(
    session: Session, *, model_name: str | None = None, version: str | None = None
) -> Sequence[HistoryRow]:
    """History rows in seq order, optionally of one model or one version."""
    query = select(HistoryRow).order_by(HistoryRow.seq)
    if model_name is not None:
        query = query.where(HistoryRow.model_name == model_name)
    if version is not None:
        query = query.where(HistoryRow.version == version)
    return session.scalars(query).all()


def version_records(session: Session, query: Select[VersionRow]) -> list[VersionRecord]:
    """Records for the versions a query selects, with their aliases and pending approver."""
    rows = session.scalars(query.order_by(VersionRow.created_at, VersionRow.version)).all()
    if not rows:
        return []
    names = [row.version for row in rows]
    aliases: dict[str, list[str]] = {}
    for alias in session.scalars(select(AliasRow).where(AliasRow.version.in_(names))):
        aliases.setdefault(alias.version, []).append(alias.alias)
    pending = select(ApprovalRow.version, ApprovalRow.approver)
    approvers = {v: a for v, a in session.execute(pending.where(ApprovalRow.version.in_(names)))}
    return [
        to_record(row, aliases.get(row.version, []), approvers.get(row.version)) for row in rows
    ]


def to_record(row: VersionRow, aliases: list[str], approver: str | None) -> VersionRecord:
    """The record of one version row."""
    names = ([CHAMPION] if row.stage == Stage.PRODUCTION else []) + sorted(aliases)
    return VersionRecord(
        version=row.version,
        model_name=row.model_name,
        stage=Stage(row.stage),
        created_at=row.created_at,
        metrics=dict(row.metrics),
        lineage=dict(row.lineage),
        aliases=tuple(names),
        pending_approver=approver,
    )


def record_of(session: Session, version: str) -> VersionRecord:
    """The record of ``version``; UnknownVersion if there is none."""
    records = version_records(session, select(VersionRow).where(VersionRow.version == version))
    if not records:
        raise UnknownVersion(version)
    return records[0]


def policy_of(session: Session, model_name: str) -> Policy:
    """The deployment policy of ``model_name`` (single, no challenger traffic, if never set)."""
    row = session.get(PolicyRow, model_name)
    if row is None:
        return Policy(model_name=model_name)
    return Policy(
        model_name=model_name,
        kind=PolicyKind(row.kind),
        challenger_share=row.challenger_share,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def to_approval(row: ApprovalRow, model_name: str) -> Approval:
    """The record of a pending approval."""
    return Approval(
        version=row.version,
        model_name=model_name,
        approver=row.approver,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        reason=row.reason,
        gate_results=list(row.gate_results),
    )


def to_entry(row: HistoryRow) -> HistoryEntry:
    """The record of one history row."""
    details: dict[str, Any] = dict(row.details)
    return HistoryEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=Action(row.action),
        model_name=row.model_name,
        version=row.version,
        from_stage=Stage(row.from_stage) if row.from_stage else None,
        to_stage=Stage(row.to_stage) if row.to_stage else None,
        reason=row.reason,
        details=details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
