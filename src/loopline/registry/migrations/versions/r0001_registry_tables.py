"""Registry tables: versions, aliases, policies, approvals and the hash-chained history.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAGES = "'candidate', 'staging', 'production', 'archived'"
POLICY_KINDS = "'single', 'canary', 'ab', 'shadow', 'blue-green'"
ONE_PRODUCTION = "stage = 'production'"


def _when(name: str, *, index: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, index=index)


def upgrade() -> None:
    op.create_table(
        "registry_versions",
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        _when("created_at"),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_registry_versions")),
        sa.CheckConstraint(f"stage IN ({STAGES})", name=op.f("ck_registry_versions_stage")),
    )
    op.create_index(op.f("ix_registry_versions_model_name"), "registry_versions", ["model_name"])
    op.create_index(
        op.f("ux_registry_versions_one_production"),
        "registry_versions",
        ["model_name"],
        unique=True,
        sqlite_where=sa.text(ONE_PRODUCTION),
        postgresql_where=sa.text(ONE_PRODUCTION),
    )

    op.create_table(
        "registry_aliases",
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("model_name", "alias", name=op.f("pk_registry_aliases")),
        sa.ForeignKeyConstraint(
            ["version"],
            ["registry_versions.version"],
            name=op.f("fk_registry_aliases_version_registry_versions"),
        ),
    )
    op.create_index(op.f("ix_registry_aliases_version"), "registry_aliases", ["version"])

    op.create_table(
        "registry_policies",
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("challenger_share", sa.Float(), nullable=False),
        _when("updated_at"),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_registry_policies")),
        sa.CheckConstraint(f"kind IN ({POLICY_KINDS})", name=op.f("ck_registry_policies_kind")),
        sa.CheckConstraint(
            "challenger_share >= 0 AND challenger_share <= 1",
            name=op.f("ck_registry_policies_share"),
        ),
    )

    op.create_table(
        "registry_approvals",
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("approver", sa.String(255), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        _when("requested_at"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gate_results", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_registry_approvals")),
        sa.ForeignKeyConstraint(
            ["version"],
            ["registry_versions.version"],
            name=op.f("fk_registry_approvals_version_registry_versions"),
        ),
    )

    op.create_table(
        "registry_history",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        _when("at"),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=True),
        sa.Column("from_stage", sa.String(16), nullable=True),
        sa.Column("to_stage", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_registry_history")),
        sa.UniqueConstraint("hash", name=op.f("uq_registry_history_hash")),
    )
    op.create_index(op.f("ix_registry_history_at"), "registry_history", ["at"])
    op.create_index(op.f("ix_registry_history_model_name"), "registry_history", ["model_name"])
    op.create_index(op.f("ix_registry_history_version"), "registry_history", ["version"])


def downgrade() -> None:
    op.drop_table("registry_history")
    op.drop_table("registry_approvals")
    op.drop_table("registry_policies")
    op.drop_table("registry_aliases")
    op.drop_table("registry_versions")
