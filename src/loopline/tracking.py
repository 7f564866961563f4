"""Training runs and monitoring windows: rows the dashboard reads, beside the registry.

They live in the registry's database (SQLite by default, PostgreSQL by URL), created by
the same Alembic migrations, so one URL moves everything to shared infrastructure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loopline.registry import Registry
from loopline.registry.schema import CandidateRow, DriftWindowRow, RunRow

# What every candidate of a run shares with the run; taken from the run's row when a
# candidate's record does not carry it.
RUN_FIELDS = (
    "data_hash",
    "feature_service",
    "code_commit",
    "code_dirty",
    "flow_run_id",
    "started_at",
    "model_name",
)


@dataclass
class Store:
    """Writes and reads runs and windows through the registry's engine (migrated on open)."""

    url: str

    def __post_init__(self) -> None:
        self._registry = Registry(self.url)

    def _session(self) -> Session:
        return Session(self._registry.engine, expire_on_commit=False)

    def migrate(self) -> Store:
        self._registry.upgrade()
        return self

    def record_run(self, **fields: Any) -> None:
        with self._session() as session, session.begin():
            session.merge(RunRow(**fields))

    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        query = select(RunRow).order_by(RunRow.started_at.desc()).limit(limit)
        with self._session() as session:
            return [_row(r) for r in session.scalars(query)]

    def record_candidates(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Keep each candidate's experiment record of run ``run_id`` (replacing any before).

        A row lacking one of the run's own fields (:data:`RUN_FIELDS`) takes it from the
        run's row, which must then be recorded already.
        """
        columns = {c.key for c in CandidateRow.__table__.columns}
        with self._session() as session, session.begin():
            run = session.get(RunRow, run_id)
            for row in rows:
                record = {k: v for k, v in row.items() if k in columns} | {"run_id": run_id}
                for key in RUN_FIELDS:
                    if key not in record:
                        if run is None:
                            raise ValueError(
                                f"candidate {row.get('candidate')!r} of run {run_id} has no "
                                f"{key} and the run is not recorded"
                            )
                        record[key] = getattr(run, key)
                session.merge(CandidateRow(**record))

    def candidates(self, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Experiment records of the runs ``run_ids`` (all runs: None), newest run first."""
        query = select(CandidateRow).order_by(
            CandidateRow.started_at.desc(), CandidateRow.run_id, CandidateRow.candidate
        )
        if run_ids is not None:
            query = query.where(CandidateRow.run_id.in_(run_ids))
        with self._session() as session:
            return [_row(r) for r in session.scalars(query)]

    def record_window(self, **fields: Any) -> int:
        with self._session() as session, session.begin():
            row = DriftWindowRow(**fields)
            session.add(row)
            session.flush()
            return int(row.id)

    def windows(
        self, model_name: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        query = select(DriftWindowRow).order_by(DriftWindowRow.window_start)
        if model_name:
            query = query.where(DriftWindowRow.model_name == model_name)
        if since:
            query = query.where(DriftWindowRow.window_start >= since)
        with self._session() as session:
            return [_row(r) for r in session.scalars(query)]

    def close(self) -> None:
        self._registry.close()


def _row(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}
