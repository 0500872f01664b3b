"""PostgreSQL: the check log's subject index keys each subject by a 64-bit hash of its
text, not by the text.

The GIN index of migration 0008 held ``string_to_array(subjects, E'\\n')``: every key an
18-character text compared under the database's collation (``C.UTF-8`` here, which
PostgreSQL 15 compares with ``strcoll``, not ``memcmp``). Timed apart (bench/RESULTS.md,
"Checks", session 11), 3,000 manifests of 300 drawn from 3,010 subjects (the
``bench/checks.py`` registry) into a fresh table with the 64 MB pending list of 0010, then
merged, twice each:

============================  ==============  ============  ===================
keys                          insert          merge         a subject, together
============================  ==============  ============  ===================
text (0008)                   0.79-1.07 s     0.63-0.94 s   1.6-2.2 µs
text ``COLLATE "C"``          0.82-1.01 s     0.40-0.43 s   1.4-1.6 µs
``hashtextextended`` (this)   0.52-0.55 s     0.21-0.22 s   0.8 µs
============================  ==============  ============  ===================

A hash may be shared by two subjects: :func:`credo.lists.checklog.checks_about` already
confirms every call the index finds against the call's own subjects. ``hashtextextended``
is the hash PostgreSQL's hash partitioning stores, so it does not change between versions.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEX = "ix_check_calls_subjects"

#: The keys of a ``check_calls.subjects`` text (one canonical subject a line); the query
#: in ``credo.lists.checklog`` calls it as written here so the planner matches the index.
KEYS_FUNCTION = (
    "CREATE FUNCTION credo_subject_keys(subjects text) RETURNS bigint[] "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS "
    "$$ SELECT array_agg(hashtextextended(s, 0)) FROM unnest(string_to_array(subjects, E'\\n')) s $$"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(KEYS_FUNCTION)
    op.execute(f"DROP INDEX {INDEX}")
    op.execute(
        f"CREATE INDEX {INDEX} ON check_calls USING gin (credo_subject_keys(subjects)) "
        "WITH (gin_pending_list_limit = 65536)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX {INDEX}")
    op.execute(
        f"CREATE INDEX {INDEX} ON check_calls USING gin (string_to_array(subjects, E'\\n')) "
        "WITH (gin_pending_list_limit = 65536)"
    )
    op.execute("DROP FUNCTION credo_subject_keys(text)")
