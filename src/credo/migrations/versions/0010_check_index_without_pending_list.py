"""PostgreSQL: the check log's subject index takes each call's subjects at once, not
through GIN's pending list.

With ``fastupdate`` on (the default), a GIN index appends new entries to a pending list
and, when the list passes ``gin_pending_list_limit`` (4 MB), the insert that passed it
merges the whole list into the index before its transaction can commit. For the check log
that insert is a relying party's check, and every check waiting behind its group commit
waited too: under ``bench/load.py`` on PostgreSQL, 64 checks for 265 ms once in ten
minutes, three answered 503. Timed apart (20,000 commits of three calls into a table with
this index; bench/RESULTS.md, "Load and overload", session 10): fastupdate on, p99 1.5 ms
but p99.9 332 ms and a merge of 160-270 ms every ~400 commits; off, mean 1.50 against
1.43 ms, p99 5.1 ms, p99.9 7.4 ms. For manifests of 300 the mean went 4.58 -> 4.78 ms and
the p99 205 -> 7.2 ms. SQLite's FTS5 index is not changed.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEX = "ix_check_calls_subjects"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER INDEX {INDEX} SET (fastupdate = off)")
    # what the list already holds is merged now, not by the first check after the upgrade
    op.execute(f"SELECT gin_clean_pending_list('{INDEX}'::regclass)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER INDEX {INDEX} RESET (fastupdate)")
