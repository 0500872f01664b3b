"""Token revocations: one append-only row per revoked token (who, when, why).

Tokens revoked before this revision get their row here too, by ``before 0007``.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from credo.store.append_only import protect, unprotect

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_revocations",
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"], ["tokens.id"], name=op.f("fk_token_revocations_token_id_tokens")
        ),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_token_revocations")),
    )
    op.execute(
        "INSERT INTO token_revocations (token_id, revoked_at, revoked_by, reason) "
        "SELECT id, revoked_at, 'before 0007', '' FROM tokens WHERE revoked_at IS NOT NULL"
    )
    protect(op.get_bind(), "token_revocations")


def downgrade() -> None:
    unprotect(op.get_bind(), "token_revocations")
    op.drop_table("token_revocations")
