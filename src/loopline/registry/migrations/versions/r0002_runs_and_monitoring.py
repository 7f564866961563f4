"""Training runs and monitoring windows: what the dashboard reads beside the registry.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "tracking_runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        _when("started_at"),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("data_hash", sa.String(64), nullable=False),
        sa.Column("feature_service", sa.String(255), nullable=False),
        sa.Column("selected", sa.String(255), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_tracking_runs")),
    )
    for column in ("started_at", "model_name", "data_hash"):
        op.create_index(op.f(f"ix_tracking_runs_{column}"), "tracking_runs", [column])
    op.create_table(
        "monitoring_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _when("computed_at"),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(255), nullable=False),
        _when("window_start"),
        _when("window_end"),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("drift_share", sa.Float(), nullable=False),
        sa.Column("drifted_features", sa.Integer(), nullable=False),
        sa.Column("feature_scores", sa.JSON(), nullable=False),
        sa.Column("prediction_drift", sa.Float(), nullable=True),
        sa.Column("n_labels", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("roc_auc", sa.Float(), nullable=True),
        sa.Column("report_html", sa.Text(), nullable=True),
        sa.Column("report_json", sa.Text(), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_windows")),
    )
    for column in ("computed_at", "model_name", "model_version", "window_start"):
        op.create_index(op.f(f"ix_monitoring_windows_{column}"), "monitoring_windows", [column])


def downgrade() -> None:
    op.drop_table("monitoring_windows")
    op.drop_table("tracking_runs")
