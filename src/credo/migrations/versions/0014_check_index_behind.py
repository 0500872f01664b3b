"""SQLite: the check log's subject index is filled behind the log's commits, not inside them.

Until now a trigger put each call's subjects into an FTS5 table in the call's own
transaction: every check waited for the index's segment write, and now and then for a
merge of segments (``bench/RESULTS.md``, "Checks", session 13: commits of two manifests of
300, 0.53 ms of CPU a manifest, a commit's p99 14 ms, its worst 21-29 ms). The calls'
commits now write the calls alone (p99 0.5 ms); ``credo.lists.checklog.index_calls`` puts
the subjects of the calls logged since into a contentless FTS5 table later, in batches
(0.39 ms a manifest in all), and records up to which call it has (``check_calls_indexed``:
the call's ``seq`` and ``id``). A subject's calls are those the index finds and those
logged after that call, read as they are.

For a log with a file of its own the index has a file of its own too
(``{database}-checks-index``), so that filling it never holds the log's writer; these
tables, in the log's database, are the index wherever there is no such file (PostgreSQL
keeps its GIN index, filled in the transaction, and has none). Downgrade puts the trigger
and the table it filled back, rebuilt from the calls.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

from credo.lists.checklog import INDEX_TABLES

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

#: What migrations 0008 and 0012 made, which this one replaces.
_BEFORE = (
    "CREATE VIRTUAL TABLE check_calls_fts USING fts5(subjects, content='check_calls', "
    "content_rowid='seq', tokenize=\"ascii tokenchars ':-'\", detail=none, columnsize=0)",
    "CREATE TRIGGER check_calls_fts_insert AFTER INSERT ON check_calls BEGIN "
    "INSERT INTO check_calls_fts (rowid, subjects) VALUES (new.seq, new.subjects); END",
    "INSERT INTO check_calls_fts (check_calls_fts) VALUES ('rebuild')",
    "INSERT INTO check_calls_fts (check_calls_fts, rank) VALUES ('automerge', 16)",
    "INSERT INTO check_calls_fts (check_calls_fts, rank) VALUES ('crisismerge', 32)",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER check_calls_fts_insert")
    op.execute("DROP TABLE check_calls_fts")
    for statement in INDEX_TABLES:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TABLE check_calls_indexed")
    op.execute("DROP TABLE check_calls_index")
    for statement in _BEFORE:
        op.execute(statement)
