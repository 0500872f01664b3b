"""Due process: appeal details, notice delivery (outbox), subject channels, rectification requests.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_channels",
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), server_default="zh", nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_subject_channels_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("subject_id", "channel", name=op.f("pk_subject_channels")),
    )
    op.create_table(
        "rectification_requests",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("record_seq", sa.BigInteger(), nullable=False),
        sa.Column("act", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=True),
        sa.Column("restoration_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["record_seq"], ["records.seq"], name=op.f("fk_rectification_requests_record_seq_records")
        ),
        sa.ForeignKeyConstraint(
            ["restoration_seq"],
            ["records.seq"],
            name=op.f("fk_rectification_requests_restoration_seq_records"),
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_rectification_requests_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rectification_requests")),
    )
    with op.batch_alter_table("rectification_requests", schema=None) as batch_op:
        batch_op.create_index("ix_rectification_requests_subject_id", ["subject_id"], unique=False)

    op.create_table(
        "notice_deliveries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("notice_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["notices.id"], name=op.f("fk_notice_deliveries_notice_id_notices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_deliveries")),
    )
    with op.batch_alter_table("notice_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_notice_deliveries_state", ["state", "next_attempt_at"], unique=False)

    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("listing_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("notice_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("filed_by", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("attachments", sa.Text(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("amended_seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("suspension_noticed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index("ix_appeals_subject_id", ["subject_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_appeals_amended_seq_records"), "records", ["amended_seq"], ["seq"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_appeals_notice_id_notices"), "notices", ["notice_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_appeals_listing_id_listings"), "listings", ["listing_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_appeals_listing_id_listings"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_appeals_notice_id_notices"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_appeals_amended_seq_records"), type_="foreignkey")
        batch_op.drop_index("ix_appeals_subject_id")
        batch_op.drop_column("suspension_noticed")
        batch_op.drop_column("amended_seq")
        batch_op.drop_column("attachments")
        batch_op.drop_column("filed_by")
        batch_op.drop_column("notice_id")
        batch_op.drop_column("listing_id")

    with op.batch_alter_table("notice_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_notice_deliveries_state")

    op.drop_table("notice_deliveries")
    with op.batch_alter_table("rectification_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_rectification_requests_subject_id")

    op.drop_table("rectification_requests")
    op.drop_table("subject_channels")
