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

from sqlalchemy import Connection, select

from credo.catalog.registry import Registry
from credo.ledger.log import LedgerLog
from credo.ledger.services import BatchResult, ingest, resend_quarantined, retry_quarantine
from credo.lists.refresh import refresh, trigger_rules
from credo.process import notices
from credo.store.tables import records

_ROW = (
    records.c.seq,
    records.c.kind,
    records.c.subject_id,
    records.c.rule,
    records.c.rule_version,
    records.c.jurisdiction,
    records.c.occurred_on,
    records.c.target_seq,
)


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
    result = ingest(conn, catalogs, log, agency, items, source=source, lines=lines, now=now)
    accepted = [o.seq for o in result.outcomes if o.status == "accepted" and o.seq is not None]
    if not accepted:
        return result
    # Accepted records of one batch have consecutive sequence numbers.
    rows = [
        dict(r._mapping)
        for r in conn.execute(
            select(*_ROW).where(records.c.seq.between(accepted[0], accepted[-1])).order_by(records.c.seq)
        )
    ]
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
