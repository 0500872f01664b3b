"""PostgreSQL: a logged call's subjects are compressed with LZ4 and kept in the table's own
pages (``STORAGE MAIN``), not with PostgreSQL's pglz in its TOAST table.

A manifest of 300 is ~7.8 KB of subjects, past the 2 KB at which PostgreSQL compresses a
row. pglz compressed it at ~0.25 ms of the backend's CPU, a third of what PostgreSQL spent
on a manifest under ``bench/checks.py``. Timed apart (bench/RESULTS.md, "Checks", session
11), 3,000 such rows inserted, twice each:

=====================  ===========  =================
subjects               insert       table with TOAST
=====================  ===========  =================
pglz, TOAST (before)   768-836 ms   24 MB
LZ4, TOAST             207-225 ms   30 MB
LZ4, ``MAIN`` (this)   136-155 ms   23 MB
uncompressed           164-169 ms   48 MB
=====================  ===========  =================

LZ4 compressed, a manifest's subjects (~3.3 KB) fit in the table's pages, so neither a TOAST
row nor its index is written. Rows already logged keep their pglz values, which PostgreSQL
still reads. A server built without LZ4 refuses it: the column is then left as it was.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.exc import DBAPIError

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():  # a savepoint: without LZ4 only this statement is undone
            op.execute("ALTER TABLE check_calls ALTER COLUMN subjects SET COMPRESSION lz4")
    except DBAPIError:
        return
    op.execute("ALTER TABLE check_calls ALTER COLUMN subjects SET STORAGE MAIN")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE check_calls ALTER COLUMN subjects SET STORAGE EXTENDED")
    op.execute("ALTER TABLE check_calls ALTER COLUMN subjects SET COMPRESSION pglz")
