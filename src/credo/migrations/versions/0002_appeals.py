"""Appeals: what scoring needs to void (overturned) or suspend (overdue) a record.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "appeals",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("record_seq", sa.BigInteger, sa.ForeignKey("records.seq"), nullable=False),
        sa.Column("subject_id", sa.Integer, sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("filed_at", UTC, nullable=False),
        sa.Column("deadline_at", UTC, nullable=False),
        sa.Column("grounds", sa.Text, nullable=False),
        sa.Column("decided_at", UTC, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reviewer", sa.Text, nullable=True),
        sa.Column("reasons", sa.Text, nullable=True),
    )
    op.create_index("ix_appeals_record_seq", "appeals", ["record_seq"])


def downgrade() -> None:
    op.drop_table("appeals")
