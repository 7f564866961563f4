"""Monitoring windows record their reference, whether they were healthy, and prior checks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: windows recorded before this revision have none of them, and a window
    # whose health is unknown is never taken into a recent reference.
    with op.batch_alter_table("monitoring_windows") as table:
        table.add_column(sa.Column("healthy", sa.Boolean(), nullable=True))
        table.add_column(sa.Column("reference", sa.String(255), nullable=True))
        table.add_column(sa.Column("prior_checks", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitoring_windows") as table:
        table.drop_column("prior_checks")
        table.drop_column("reference")
        table.drop_column("healthy")
