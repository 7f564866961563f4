"""Experiment records: every candidate of every training run, and each run's code version.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: runs recorded before this revision did not keep them apart.
    with op.batch_alter_table("tracking_runs") as table:
        table.add_column(sa.Column("code_commit", sa.String(40), nullable=True))
        table.add_column(sa.Column("code_dirty", sa.Boolean(), nullable=True))
    op.create_table(
        "tracking_candidates",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("candidate", sa.String(255), nullable=False),
        sa.Column("estimator", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("selected", sa.Boolean(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("fit_seconds", sa.Float(), nullable=True),
        sa.Column("latency_p95_ms", sa.Float(), nullable=True),
        sa.Column("model_bytes", sa.BigInteger(), nullable=True),
        sa.Column("data_hash", sa.String(64), nullable=False),
        sa.Column("feature_service", sa.String(255), nullable=False),
        sa.Column("code_commit", sa.String(40), nullable=True),
        sa.Column("code_dirty", sa.Boolean(), nullable=True),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("diagnostics", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'failed')", name=op.f("ck_tracking_candidates_status")
        ),
        sa.PrimaryKeyConstraint("run_id", "candidate", name=op.f("pk_tracking_candidates")),
    )
    for column in ("data_hash", "started_at", "model_name"):
        op.create_index(op.f(f"ix_tracking_candidates_{column}"), "tracking_candidates", [column])


def downgrade() -> None:
    op.drop_table("tracking_candidates")
    with op.batch_alter_table("tracking_runs") as table:
        table.drop_column("code_dirty")
        table.drop_column("code_commit")
