"""Clock runs: one append-only row per completed daily listing refresh (day, catalogs, when).

A server that starts again on a day whose refresh already ran under the same
catalogs does not run another full scoring pass.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from credo.store.append_only import protect, unprotect

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clock_runs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("catalog_digest", sa.String(length=64), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clock_runs")),
    )
    protect(op.get_bind(), "clock_runs")


def downgrade() -> None:
    unprotect(op.get_bind(), "clock_runs")
    op.drop_table("clock_runs")
