"""PostgreSQL: room for 64 MB in the pending list of the check log's subject index, which
the server merges in the background (``lists.checklog.IndexMerger``).

A GIN index appends new entries to a pending list, and the insert that takes the list past
``gin_pending_list_limit`` (4 MB by default) merges the whole list before its transaction
commits. For the check log that insert is a group commit of checks: under ``bench/load.py``
on PostgreSQL, 64 checks waited 265 ms for it once in ten minutes (three answered 503).
Timed apart (bench/RESULTS.md, "Checks", session 10), commits of three manifests
of 300 into a table with this index:

- the default (4 MB, merged by inserts): p99 205 ms, a merge of 150-290 ms every ~86 commits;
- no pending list (``fastupdate`` off): p99 7.2 ms, but every subject enters the index in its
  own commit, and ``bench/checks.py``'s manifests per second on PostgreSQL halved
  (1,114-1,173 -> 552-560);
- 64 MB, merged by another connection meanwhile: p99 4.7 ms, max 18 ms; inserts that find
  the list full while a merge runs leave it to that merge.

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
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER INDEX {INDEX} SET (gin_pending_list_limit = 65536)")  # kB


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER INDEX {INDEX} RESET (gin_pending_list_limit)")
