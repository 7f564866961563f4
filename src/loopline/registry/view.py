"""Reading the model registry: what is where now, what served when, and the audit trail."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Self

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from loopline.registry import database, queries, rules, timeline
from loopline.registry.chain import find_break
from loopline.registry.records import (
    Approval,
    ChainBreak,
    HistoryEntry,
    Policy,
    ServedAt,
    Stage,
    VersionRecord,
)
from loopline.registry.schema import AliasRow, ApprovalRow, HistoryRow, PolicyRow, VersionRow


class RegistryView:
    """Read-only access to the registry (what serving and the dashboard need)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, created on first use (it connects lazily too)."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = database.create_registry_engine(self.url)
            return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        with self._engine_lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, version: str) -> VersionRecord:
        """The record of ``version``; UnknownVersion if it was never registered."""
        with self._read() as session:
            return queries.record_of(session, rules.require_text("version", version))

    def list_versions(
        self, model_name: str | None = None, stage: Stage | str | None = None
    ) -> list[VersionRecord]:
        """Registered versions, oldest first, optionally of one model and/or in one stage."""
        query = select(VersionRow)
        if model_name is not None:
            query = query.where(VersionRow.model_name == model_name)
        if stage is not None:
            query = query.where(VersionRow.stage == rules.parse_stage(stage).value)
        with self._read() as session:
            return queries.version_records(session, query)

    def production(self, model_name: str) -> VersionRecord | None:
        """The version of ``model_name`` in production (the champion), if any."""
        found = self.list_versions(model_name, Stage.PRODUCTION)
        return found[0] if found else None

    def challenger(self, model_name: str) -> VersionRecord | None:
        """The version the challenger alias of ``model_name`` points at, if any."""
        with self._read() as session:
            version = queries.challenger_of(session, model_name)
            return queries.record_of(session, version) if version is not None else None

    def policy(self, model_name: str) -> Policy:
        """The deployment policy of ``model_name`` (``single`` until one is set)."""
        with self._read() as session:
            return queries.policy_of(session, model_name)

    def pending_approvals(self, model_name: str | None = None) -> list[Approval]:
        """Promotions waiting for an approver, oldest first."""
        query = select(ApprovalRow, VersionRow.model_name).join(VersionRow)
        if model_name is not None:
            query = query.where(VersionRow.model_name == model_name)
        with self._read() as session:
            rows = session.execute(query.order_by(ApprovalRow.requested_at))
            return [queries.to_approval(row, model) for row, model in rows]

    def history(
        self, model_name: str | None = None, version: str | None = None
    ) -> list[HistoryEntry]:
        """History entries in seq order, optionally of one model and/or one version."""
        with self._read() as session:
            rows = queries.history_rows(session, model_name=model_name, version=version)
            return [queries.to_entry(row) for row in rows]

    def verify(self) -> ChainBreak | None:
        """The first broken link in the history, or state the history does not explain."""
        with self._read() as session:
            rows = queries.history_rows(session)
            broken = find_break(rows)
            if broken is not None:
                return broken
            versions = session.scalars(select(VersionRow).order_by(VersionRow.version))
            aliases = session.scalars(select(AliasRow))
            policies = session.scalars(select(PolicyRow))
            return timeline.state_mismatch(timeline.replay(rows), versions, aliases, policies)

    def served_at(self, model_name: str, when: datetime) -> ServedAt:
        """Which versions held production and challenger for ``model_name`` at ``when``."""
        instant = rules.require_aware("when", when)
        query = (
            select(HistoryRow)
            .where(HistoryRow.model_name == model_name, HistoryRow.at <= instant)
            .order_by(HistoryRow.seq)
        )
        with self._read() as session:
            return timeline.served(model_name, session.scalars(query))

    def change_counter(self, model_name: str | None = None) -> int:
        """A number that grows with every change (of ``model_name``); cheap to poll."""
        with self._read() as session:
            return queries.last_seq(session, model_name)

    def versions_trained_on(self, data_hash: str) -> list[VersionRecord]:
        """Versions whose lineage records ``data_hash`` as their training data."""
        query = select(VersionRow).where(VersionRow.lineage["data_hash"].as_string() == data_hash)
        with self._read() as session:
            return queries.version_records(session, query)

    def _read(self) -> AbstractContextManager[Session]:
        return database.read_session(database.reading(self.engine))
