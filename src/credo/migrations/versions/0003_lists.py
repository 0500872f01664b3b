"""lists, relying parties, notices and the check log

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from credo.store.append_only import protect, unprotect

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Listings end by a new row, never by an edit; notices and checks are history.
APPEND_ONLY = ("listings", "listing_ends", "notices", "checks")


def upgrade() -> None:
    op.create_table(
        "checks",
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("measure", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ref", name=op.f("pk_checks")),
    )
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.create_index("ix_checks_subject", ["subject"], unique=False)

    op.create_table(
        "list_changes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_changes")),
    )
    op.create_table(
        "relying_parties",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("sector", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_relying_parties")),
    )
    op.create_table(
        "list_warnings",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("list_code", sa.String(length=96), nullable=False),
        sa.Column("scheme", sa.String(length=32), nullable=False),
        sa.Column("warned_on", sa.Date(), nullable=False),
        sa.Column("lapsed_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_list_warnings_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_warnings")),
    )
    with op.batch_alter_table("list_warnings", schema=None) as batch_op:
        batch_op.create_index("ix_list_warnings_subject_id", ["subject_id"], unique=False)

    op.create_table(
        "relying_party_measures",
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("measure", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["party"], ["relying_parties.code"], name=op.f("fk_relying_party_measures_party_relying_parties")
        ),
        sa.PrimaryKeyConstraint("party", "measure", name=op.f("pk_relying_party_measures")),
    )
    op.create_table(
        "listings",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("list_code", sa.String(length=96), nullable=False),
        sa.Column("scheme", sa.String(length=32), nullable=False),
        sa.Column("cause", sa.String(length=8), nullable=False),
        sa.Column("cause_seq", sa.BigInteger(), nullable=True),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("planned_end_on", sa.Date(), nullable=False),
        sa.Column("grace_until", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cause_seq"], ["records.seq"], name=op.f("fk_listings_cause_seq_records")),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_listings_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listings")),
    )
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.create_index("ix_listings_subject_id", ["subject_id"], unique=False)

    op.create_table(
        "listing_ends",
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name=op.f("fk_listing_ends_listing_id_listings")
        ),
        sa.PrimaryKeyConstraint("listing_id", name=op.f("pk_listing_ends")),
    )
    op.create_table(
        "notices",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=True),
        sa.Column("warning_id", sa.BigInteger(), nullable=True),
        sa.Column("record_seq", sa.BigInteger(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["listing_id"], ["listings.id"], name=op.f("fk_notices_listing_id_listings")),
        sa.ForeignKeyConstraint(["record_seq"], ["records.seq"], name=op.f("fk_notices_record_seq_records")),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], name=op.f("fk_notices_subject_id_subjects")),
        sa.ForeignKeyConstraint(
            ["warning_id"], ["list_warnings.id"], name=op.f("fk_notices_warning_id_list_warnings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index("ix_notices_subject_id", ["subject_id"], unique=False)

    for table in APPEND_ONLY:
        protect(op.get_bind(), table)


def downgrade() -> None:
    for table in APPEND_ONLY:
        unprotect(op.get_bind(), table)
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index("ix_notices_subject_id")

    op.drop_table("notices")
    op.drop_table("listing_ends")
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.drop_index("ix_listings_subject_id")

    op.drop_table("listings")
    op.drop_table("relying_party_measures")
    with op.batch_alter_table("list_warnings", schema=None) as batch_op:
        batch_op.drop_index("ix_list_warnings_subject_id")

    op.drop_table("list_warnings")
    op.drop_table("relying_parties")
    op.drop_table("list_changes")
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_index("ix_checks_subject")

    op.drop_table("checks")
