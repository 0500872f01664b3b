"""web: one-time sign-in links, organisation names for the public lookup

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_links",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["token_id"], ["tokens.id"], name=op.f("fk_login_links_token_id_tokens")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_links")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_login_links_secret_hash")),
    )
    op.create_table(
        "organisation_names",
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("agency", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency"], ["agencies.code"], name=op.f("fk_organisation_names_agency_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_organisation_names_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("subject_id", "agency", name=op.f("pk_organisation_names")),
    )


def downgrade() -> None:
    op.drop_table("organisation_names")
    op.drop_table("login_links")
