"""Privacy: per-subject data keys, erased subjects, and the audit log of erasures and exports.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_subject_keys",
        sa.Column("pseudonym", sa.BigInteger(), autoincrement=False, nullable=False),
        # Null once the subject is erased: the row stays, so the erasure can be shown.
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("pseudonym", name=op.f("pk_privacy_subject_keys")),
    )
    op.create_table(
        "privacy_tombstones",
        sa.Column("pseudonym", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pseudonym", name=op.f("pk_privacy_tombstones")),
    )
    op.create_table(
        "privacy_audit",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_privacy_audit")),
        sa.UniqueConstraint("hash", name=op.f("uq_privacy_audit_hash")),
    )
    op.create_index(op.f("ix_privacy_audit_at"), "privacy_audit", ["at"])
    op.create_index(op.f("ix_privacy_audit_subject"), "privacy_audit", ["subject"])


def downgrade() -> None:
    op.drop_table("privacy_audit")
    op.drop_table("privacy_tombstones")
    op.drop_table("privacy_subject_keys")
