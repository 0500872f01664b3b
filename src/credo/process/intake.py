"""Ingest with due process: the records, their notices and the listings they move, in one transaction.

The API and the CLI call this rather than :func:`credo.ledger.services.ingest`
alone, so an adverse record never lands without its notice, and a court
judgment (or its retraction or restoration) moves the listings it causes
before the transaction commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection

from credo.catalog.registry import Registry
from credo.ledger.log import LedgerLog
from credo.ledger.services import BatchResult, Prepared, append, prepare, resend_quarantined, retry_quarantine
from credo.lists.refresh import refresh, trigger_rules
from credo.process import notices


def ingest_and_notify(
    conn: Connection,
    catalogs: Registry,
    log: LedgerLog,
    agency: str,
    items: Sequence[Any],
    *,
    source: str,
    lines: Sequence[int | None] | None = None,
    now: datetime | None = None,
) -> BatchResult:
    now = now or datetime.now(UTC)
    batch = prepare(catalogs, agency, items, now=now)
    return append_and_notify(conn, catalogs, log, batch, source=source, lines=lines, recorded_at=now)


def append_and_notify(
    conn: Connection,
    catalogs: Registry,
    log: LedgerLog,
    batch: Prepared,
    *,
    source: str,
    lines: Sequence[int | None] | None = None,
    recorded_at: datetime | None = None,
) -> BatchResult:
    """:func:`ingest_and_notify` of a batch already checked by :func:`credo.ledger.services.prepare`.

    The API checks a batch before it opens the write transaction, so the
    checks of one batch run while another's statements and commit hold the
    database (and the sqlite3 module has let go of the GIL). Without
    ``recorded_at`` the clock is read under the log lock; the notices are
    issued at that same instant.
    """
    result = append(conn, catalogs, log, batch, source=source, lines=lines, recorded_at=recorded_at)
    rows = result.accepted
    if not rows:
        return result
    now = result.recorded_at
    notices.for_records(conn, catalogs, rows, now)
    placing = trigger_rules(catalogs)
    moved = sorted({int(r["subject_id"]) for r in rows if r["rule"] in placing})
    if moved:
        refresh(conn, catalogs, now, moved)
    return result


#: :func:`credo.ledger.services.retry_quarantine` through the intake: released records get notices.
retry_with_notice = partial(retry_quarantine, step=ingest_and_notify)
#: :func:`credo.ledger.services.resend_quarantined` through the intake.
resend_with_notice = partial(resend_quarantined, step=ingest_and_notify)
