"""SQLite: the check log's subject index (FTS5, migration 0008) merges its segments 16 at a
time, not 4 (``automerge``), and at most 32 wait on a level (``crisismerge``, 16 before).

Each commit of the check log adds one segment to the index, and by default the commit that
brings a level to 4 segments merges them, inside a check's commit: every subject is rewritten
about once for every factor of 4 the index grows. Merging 16 at a time rewrites it about half
as often. Timed apart (bench/RESULTS.md, "Checks", session 11): commits of four manifests of
300 drawn from a million subjects, 1,500 commits, twice each: 0.78-0.82 -> 0.56-0.58 ms a
manifest, an insert's p99 22-23 -> 13 ms. A subject's look-up reads more segments:
0.10-0.13 -> 0.31-0.34 ms, for a read a subject makes now and then.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: FTS5's own options, kept in the index's ``check_calls_fts_config`` table.
OPTIONS = {"automerge": 16, "crisismerge": 32}
DEFAULTS = {"automerge": 4, "crisismerge": 16}


def _set(options: dict[str, int]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, value in options.items():
        op.execute(
            sa.text("INSERT INTO check_calls_fts (check_calls_fts, rank) VALUES (:name, :value)").bindparams(
                name=name, value=value
            )
        )


def upgrade() -> None:
    _set(OPTIONS)


def downgrade() -> None:
    _set(DEFAULTS)
