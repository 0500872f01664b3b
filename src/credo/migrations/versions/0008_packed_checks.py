"""The check log packed: one ``check_calls`` row per relying-party call, found by subject
through the database's own inverted index.

A manifest of 300 was 300 rows of ``checks``, each inserted into two B-trees at random
places (on SQLite ~300 pages written per call). It is now one row holding the manifest,
and the subjects are indexed by an inverted index that appends a segment per transaction
and merges later: on SQLite an FTS5 table (``check_calls_fts``, external content, rowid =
``seq``) that a trigger fills in the same transaction; on PostgreSQL a GIN index (pending
list, merged in bulk) of ``string_to_array(subjects, E'\\n')``. The checks logged before this
revision move over as the calls they were part of (item ``i`` of call ``C`` had the ref
``C-i``, and keeps it); ``checks`` is then dropped. Downgrade moves them back.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

from credo.store.append_only import protect, unprotect

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: The index of a subject's calls (the queries in ``credo.lists.checklog`` use them as written).
SQLITE_INDEX = (
    "CREATE VIRTUAL TABLE check_calls_fts USING fts5(subjects, content='check_calls', "
    "content_rowid='seq', tokenize=\"ascii tokenchars ':-'\", detail=none, columnsize=0)",
    "CREATE TRIGGER check_calls_fts_insert AFTER INSERT ON check_calls BEGIN "
    "INSERT INTO check_calls_fts (rowid, subjects) VALUES (new.seq, new.subjects); END",
)
POSTGRESQL_INDEX = (
    "CREATE INDEX ix_check_calls_subjects ON check_calls USING gin (string_to_array(subjects, E'\\n'))",
)
_OLD = sa.table(
    "checks",
    *(
        sa.column(name)
        for name in ("ref", "party", "subject", "measure", "purpose", "decision", "listing_id")
    ),
    sa.column("checked_at", sa.DateTime(timezone=True)),
)
_CALLS = sa.table(
    "check_calls",
    *(sa.column(name) for name in ("id", "party", "purpose", "measures", "subjects", "decisions")),
    sa.column("checked_at", sa.DateTime(timezone=True)),
)


def _calls_of(rows: list[Any]) -> list[dict[str, Any]]:
    """The calls of old rows logged at one moment: grouped by ref prefix."""
    groups: dict[str, dict[int, Any]] = defaultdict(dict)
    for row in rows:
        call, _, position = row.ref.rpartition("-")
        if not call or not position.isdigit():
            raise RuntimeError(f"check {row.ref!r}: not a ref of the form CALL-ITEM; move it by hand")
        groups[call][int(position)] = row
    calls = []
    for call, items in groups.items():
        n = max(items) + 1
        first = next(iter(items.values()))
        subjects = [items[i].subject if i in items else "" for i in range(n)]  # ("": never logged)
        measures = [items[i].measure if i in items else "" for i in range(n)]
        calls.append(
            {
                "id": call,
                "party": first.party,
                "purpose": first.purpose,
                "checked_at": first.checked_at,
                "measures": measures[0] if len(set(measures)) == 1 else "\n".join(measures),
                "subjects": "\n".join(subjects),
                "decisions": "".join(items[i].decision[0] if i in items else "a" for i in range(n)),
            }
        )
    return calls


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "check_calls",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("subjects", sa.Text(), nullable=False),
        sa.Column("decisions", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_check_calls")),
        sa.UniqueConstraint("id", name=op.f("uq_check_calls_id")),
    )
    for statement in SQLITE_INDEX if bind.dialect.name == "sqlite" else POSTGRESQL_INDEX:
        op.execute(statement)
    # The items of one call share its moment: read moment by moment, group by ref prefix.
    moment: Any = None
    pending: list[Any] = []
    for row in bind.execute(sa.select(_OLD).order_by(_OLD.c.checked_at)):
        if pending and row.checked_at != moment:
            _move(bind, pending)
            pending = []
        moment = row.checked_at
        pending.append(row)
    _move(bind, pending)
    unprotect(bind, "checks")
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_index("ix_checks_subject")
    op.drop_table("checks")
    protect(bind, "check_calls")


def _move(bind: sa.Connection, rows: list[Any]) -> None:
    calls = _calls_of(rows)
    if calls:
        bind.execute(_CALLS.insert(), calls)


def downgrade() -> None:
    bind = op.get_bind()
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
    decisions = {"a": "allowed", "d": "denied", "g": "granted"}
    for call in bind.execute(sa.select(_CALLS).order_by(sa.column("seq"))):
        subjects = call.subjects.split("\n")
        measures = call.measures.split("\n")
        if len(measures) == 1:
            measures *= len(subjects)
        rows = [
            {
                "ref": f"{call.id}-{i}",
                "party": call.party,
                "subject": subject,
                "measure": measures[i],
                "purpose": call.purpose,
                "decision": decisions[call.decisions[i]],
                "listing_id": None,
                "checked_at": call.checked_at,
            }
            for i, subject in enumerate(subjects)
            if subject
        ]
        if rows:
            bind.execute(_OLD.insert(), rows)
    protect(bind, "checks")
    unprotect(bind, "check_calls")
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER check_calls_fts_insert")
        op.execute("DROP TABLE check_calls_fts")
    else:
        op.execute("DROP INDEX ix_check_calls_subjects")
    op.drop_table("check_calls")
