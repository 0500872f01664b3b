"""Foundation and ledger: agencies, subjects, tokens, records, quarantine, Merkle log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from credo.store.append_only import protect, unprotect

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)
APPEND_ONLY = ("records", "quarantine", "quarantine_releases", "tree_heads")


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("jurisdiction", sa.String(32), nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("name_zh", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
    )
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("identifier", sa.String(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.UniqueConstraint("kind", "identifier", name="uq_subjects_kind_identifier"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("agency", sa.String(64), sa.ForeignKey("agencies.code"), nullable=True),
        sa.Column("relying_party", sa.String(64), nullable=True),
        sa.Column("subject_id", sa.Integer, sa.ForeignKey("subjects.id"), nullable=True),
        sa.Column("jurisdiction", sa.String(32), nullable=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
    )
    op.create_table(
        "records",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("agency", sa.String(64), sa.ForeignKey("agencies.code"), nullable=False),
        sa.Column("agency_ref", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.Integer, sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("rule", sa.String(96), nullable=False),
        sa.Column("rule_version", sa.Integer, nullable=False),
        sa.Column("jurisdiction", sa.String(32), nullable=False),
        sa.Column("occurred_on", sa.Date, nullable=False),
        sa.Column("recorded_at", UTC, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("target_seq", sa.BigInteger, sa.ForeignKey("records.seq"), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.UniqueConstraint("agency", "agency_ref", name="uq_records_agency_agency_ref"),
    )
    op.create_index("ix_records_subject_id", "records", ["subject_id"])
    op.create_index("ix_records_target_seq", "records", ["target_seq"])
    op.create_table(
        "quarantine",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("line", sa.Integer, nullable=True),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("received_at", UTC, nullable=False),
    )
    op.create_index("ix_quarantine_agency", "quarantine", ["agency"])
    op.create_table(
        "quarantine_releases",
        sa.Column("quarantine_id", sa.BigInteger, sa.ForeignKey("quarantine.id"), primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.ForeignKey("records.seq"), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("released_at", UTC, nullable=False),
    )
    op.create_table(
        "tree_heads",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("checkpoint", sa.Text, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
    )
    op.create_table(
        "log_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
    )
    op.create_table(
        "catalog_loads",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("loaded_at", UTC, nullable=False),
        sa.Column("files", sa.Text, nullable=False),
    )
    log_state = sa.table("log_state", sa.column("id"), sa.column("size"), sa.column("frontier"))
    # The one row writers lock (SELECT ... FOR UPDATE) to append in turn.
    op.bulk_insert(log_state, [{"id": 1, "size": 0, "frontier": "[]"}])
    for table in APPEND_ONLY:
        protect(op.get_bind(), table)


def downgrade() -> None:
    for table in APPEND_ONLY:
        unprotect(op.get_bind(), table)
    for table in (
        "catalog_loads",
        "log_state",
        "tree_heads",
        "quarantine_releases",
        "quarantine",
        "records",
        "tokens",
        "subjects",
        "agencies",
    ):
        op.drop_table(table)
