"""Registry tables. The migrations in ``migrations/`` create them; keep both in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
STAGES_SQL = "'candidate', 'staging', 'production', 'archived'"
POLICY_KINDS_SQL = "'single', 'canary', 'ab', 'shadow', 'blue-green'"
ONE_PRODUCTION_WHERE = "stage = 'production'"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC timestamps on every backend; SQLite would otherwise hand back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("registry timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class VersionRow(Base):
    __tablename__ = "registry_versions"

    version: Mapped[str] = mapped_column(String(255), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    metrics: Mapped[dict[str, Any]]
    lineage: Mapped[dict[str, Any]]

    __table_args__ = (
        CheckConstraint(f"stage IN ({STAGES_SQL})", name="stage"),
        # The database itself refuses a second production version of a model.
        Index(
            "ux_registry_versions_one_production",
            "model_name",
            unique=True,
            sqlite_where=text(ONE_PRODUCTION_WHERE),
            postgresql_where=text(ONE_PRODUCTION_WHERE),
        ),
    )


class AliasRow(Base):
    __tablename__ = "registry_aliases"

    model_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("registry_versions.version"), index=True)
    updated_at: Mapped[datetime]


class PolicyRow(Base):
    __tablename__ = "registry_policies"

    model_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    challenger_share: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        CheckConstraint(f"kind IN ({POLICY_KINDS_SQL})", name="kind"),
        CheckConstraint("challenger_share >= 0 AND challenger_share <= 1", name="share"),
    )


class ApprovalRow(Base):
    __tablename__ = "registry_approvals"

    version: Mapped[str] = mapped_column(ForeignKey("registry_versions.version"), primary_key=True)
    approver: Mapped[str] = mapped_column(String(255))
    requested_by: Mapped[str] = mapped_column(String(255))
    requested_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    gate_results: Mapped[list[Any]]


class HistoryRow(Base):
    __tablename__ = "registry_history"

    # The primary key on seq is what serializes writers: two changes prepared against
    # the same last entry both try to write seq + 1, and only one insert can succeed.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[str | None] = mapped_column(String(255), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(16))
    to_stage: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class RunRow(Base):
    """One training run: what it was given and what every candidate scored."""

    __tablename__ = "tracking_runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(index=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    data_hash: Mapped[str] = mapped_column(String(64), index=True)
    feature_service: Mapped[str] = mapped_column(String(255))
    selected: Mapped[str] = mapped_column(String(255))
    metric: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    candidates: Mapped[list[Any]]
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    code_commit: Mapped[str | None] = mapped_column(String(40))
    code_dirty: Mapped[bool | None] = mapped_column(Boolean)


class CandidateRow(Base):
    """One candidate of one training run: its experiment record (loopline.experiments).

    The run's data version, feature service, code and flow run are repeated on each row, so
    a record reads whole on its own, as the dashboard and exports show it.
    """

    __tablename__ = "tracking_candidates"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    candidate: Mapped[str] = mapped_column(String(255), primary_key=True)
    estimator: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    selected: Mapped[bool] = mapped_column(Boolean)
    metrics: Mapped[dict[str, Any]]
    fit_seconds: Mapped[float | None] = mapped_column(Float)
    latency_p95_ms: Mapped[float | None] = mapped_column(Float)
    model_bytes: Mapped[int | None] = mapped_column(BigInteger)
    data_hash: Mapped[str] = mapped_column(String(64), index=True)
    feature_service: Mapped[str] = mapped_column(String(255))
    code_commit: Mapped[str | None] = mapped_column(String(40))
    code_dirty: Mapped[bool | None] = mapped_column(Boolean)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(index=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    diagnostics: Mapped[dict[str, Any]]

    __table_args__ = (CheckConstraint("status IN ('ok', 'failed')", name="status"),)


class DriftWindowRow(Base):
    """One monitored window of the prediction log, compared with the serving model's reference."""

    __tablename__ = "monitoring_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    computed_at: Mapped[datetime] = mapped_column(index=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    model_version: Mapped[str] = mapped_column(String(255), index=True)
    window_start: Mapped[datetime] = mapped_column(index=True)
    window_end: Mapped[datetime]
    rows: Mapped[int] = mapped_column(Integer)
    drift_share: Mapped[float] = mapped_column(Float)
    drifted_features: Mapped[int] = mapped_column(Integer)
    feature_scores: Mapped[dict[str, Any]]
    prediction_drift: Mapped[float | None] = mapped_column(Float)
    n_labels: Mapped[int] = mapped_column(Integer)
    accuracy: Mapped[float | None] = mapped_column(Float)
    roc_auc: Mapped[float | None] = mapped_column(Float)
    report_html: Mapped[str | None] = mapped_column(Text)
    report_json: Mapped[str | None] = mapped_column(Text)
    events: Mapped[list[Any]]
    # Judged and nothing found (cooldown or not): its rows may serve as a recent reference.
    healthy: Mapped[bool | None] = mapped_column(Boolean)
    reference: Mapped[str | None] = mapped_column(String(255))
    prior_checks: Mapped[list[Any] | None]


class SubjectKeyRow(Base):
    """One data subject's data key, wrapped by the master key; gone once the subject is erased.

    The wrapping (AES-GCM, the pseudonym as associated data) is each row's checksum too: a
    changed byte, or a key moved to another subject, fails to unwrap (loopline.privacy).
    """

    __tablename__ = "privacy_subject_keys"

    pseudonym: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    destroyed_at: Mapped[datetime | None]


class TombstoneRow(Base):
    """An erased subject: every later training set, batch score and monitor window skips it."""

    __tablename__ = "privacy_tombstones"

    pseudonym: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    erased_at: Mapped[datetime]


class PrivacyAuditRow(Base):
    """One entry of the privacy audit log, chained by hash like the registry history."""

    __tablename__ = "privacy_audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[int | None] = mapped_column(BigInteger, index=True)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
