"""Appeals, with deadlines on both sides.

- **Filing window.** A subject may appeal a record (or a listing, which is
  an appeal of the record that caused it) until the end of the local day
  ``notice day + appeal_window_days`` (Yiwu: 15 days; default 30). Late or
  duplicate appeals are refused with the reason.
- **Decision deadline.** A reviewer of the record's jurisdiction decides by
  the end of the local day ``filing day + decision_deadline_days``. After
  that instant an undecided appeal *suspends* the record (scoring reads
  ``deadline_at``): it stops counting and the listings it caused stop being
  enforced until a decision; the subject is told.
- **Decisions.** ``upheld``, ``overturned`` (the record is void from the
  decision on), ``amended`` (void, and a corrected record replaces it).
  Written reasons and the reviewer are kept. A reviewer never decides on a
  record of their own agency.

Worked example (Yiwu): notice issued 2026-03-01 → appeals accepted through
2026-03-16 (day 15), refused from 2026-03-17.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, select, update

from credo.catalog.registry import Registry
from credo.ledger.log import LedgerLog
from credo.ledger.services import ingest
from credo.process import notices as notice_service
from credo.store.tables import appeals, listings, notices, records, subjects

OUTCOMES = ("upheld", "overturned", "amended")


class AppealError(ValueError):
    """Refused, with an HTTP-like status: 404 unknown, 409 duplicate, 422 late or invalid, 403 forbidden."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Reviewer:
    label: str
    jurisdiction: str
    agency: str | None = None


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def end_of_local_day(day: date, zone: str) -> datetime:
    """The first instant after ``day`` in ``zone`` (an exclusive deadline), in UTC."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _record(conn: Connection, seq: int) -> Mapping[str, Any] | None:
    row = conn.execute(select(records).where(records.c.seq == seq)).first()
    return None if row is None else dict(row._mapping)


def file_appeal(
    conn: Connection,
    catalogs: Registry,
    subject_id: int,
    *,
    grounds: str,
    now: datetime,
    record_seq: int | None = None,
    listing_id: int | None = None,
    attachments: Sequence[str] = (),
    filed_by: str = "",
) -> int:
    """File an appeal; returns its id. Writes the 'appeal received' notice."""
    if not grounds.strip():
        raise AppealError(422, "grounds: required (say what is wrong with the record)")
    notice_kind = "record"
    if listing_id is not None:
        listing = conn.execute(select(listings).where(listings.c.id == listing_id)).first()
        if listing is None or listing.subject_id != subject_id:
            raise AppealError(404, f"listing_id: no listing {listing_id} of yours")
        if listing.cause_seq is None:
            raise AppealError(
                422, "listing_id: a grade listing follows your score: appeal the records behind it"
            )
        record_seq, notice_kind = int(listing.cause_seq), "listing"
    if record_seq is None:
        raise AppealError(422, "record_seq: name the record (or listing_id) you appeal")
    record = _record(conn, record_seq)
    if record is None or record["subject_id"] != subject_id:
        raise AppealError(404, f"record_seq: no record {record_seq} in your file")
    if record["kind"] != "incident":
        raise AppealError(422, f"record_seq: record {record_seq} is a {record['kind']}, not an incident")
    prior = conn.execute(
        select(appeals.c.id, appeals.c.outcome).where(appeals.c.record_seq == record_seq)
    ).first()
    if prior is not None:
        state = prior.outcome or "open"
        raise AppealError(
            409, f"record_seq: record {record_seq} was already appealed (appeal {prior.id}, {state})"
        )
    link = (
        notices.c.listing_id == listing_id if notice_kind == "listing" else notices.c.record_seq == record_seq
    )
    noticed = conn.execute(
        select(notices.c.issued_at).where(notices.c.kind == notice_kind, link).order_by(notices.c.id).limit(1)
    ).scalar()
    start = _aware(noticed) if noticed is not None else _aware(record["recorded_at"])
    jurisdiction = record["jurisdiction"]
    policy = catalogs.policy(jurisdiction)
    last_day = notice_service.appeal_deadline(catalogs, jurisdiction, start)
    today = now.astimezone(ZoneInfo(policy.timezone)).date()
    if today > last_day:
        raise AppealError(
            422,
            (
                f"filed_at: the appeal window of {policy.appeal_window_days} days from the notice of "
                f"{start.astimezone(ZoneInfo(policy.timezone)).date()} closed at the end of {last_day}"
            ),
        )
    deadline = end_of_local_day(today + timedelta(days=policy.decision_deadline_days), policy.timezone)
    appeal_id = int(
        conn.execute(
            insert(appeals)
            .values(
                record_seq=record_seq,
                subject_id=subject_id,
                filed_at=now,
                deadline_at=deadline,
                grounds=grounds.strip(),
                listing_id=listing_id,
                filed_by=filed_by,
                attachments=json.dumps(list(attachments), ensure_ascii=False),
            )
            .returning(appeals.c.id)
        ).scalar_one()
    )
    notice_service.create(
        conn,
        subject_id,
        "appeal-received",
        {
            "appeal": appeal_id,
            "record_seq": record_seq,
            "decide_by": (deadline - timedelta(seconds=1)).astimezone(ZoneInfo(policy.timezone)).date(),
        },
        now,
        record_seq=record_seq,
    )
    return appeal_id


def decide(
    conn: Connection,
    catalogs: Registry,
    log: LedgerLog,
    reviewer: Reviewer,
    appeal_id: int,
    *,
    outcome: str,
    reasons: str,
    now: datetime,
    correction: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Decide an appeal; returns the decision with the subject whose file changed."""
    row = conn.execute(select(appeals).where(appeals.c.id == appeal_id)).first()
    if row is None:
        raise AppealError(404, f"appeal_id: no appeal {appeal_id}")
    record = _record(conn, int(row.record_seq))
    assert record is not None
    if not catalogs.is_within(record["jurisdiction"], reviewer.jurisdiction):
        raise AppealError(
            404, f"appeal_id: no appeal {appeal_id} in your jurisdiction {reviewer.jurisdiction}"
        )
    if reviewer.agency is not None and reviewer.agency == record["agency"]:
        raise AppealError(403, f"reviewer: you belong to {record['agency']}, which reported this record")
    if row.decided_at is not None:
        raise AppealError(409, f"appeal_id: appeal {appeal_id} was already decided ({row.outcome})")
    if outcome not in OUTCOMES:
        raise AppealError(422, f"outcome: must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    if not reasons.strip():
        raise AppealError(422, "reasons: a decision needs written reasons")
    amended_seq = None
    if outcome == "amended":
        amended_seq = _amend(conn, catalogs, log, record, appeal_id, correction or {}, now)
    conn.execute(
        update(appeals)
        .where(appeals.c.id == appeal_id, appeals.c.decided_at.is_(None))
        .values(
            decided_at=now,
            outcome=outcome,
            reviewer=reviewer.label,
            reasons=reasons.strip(),
            amended_seq=amended_seq,
        )
    )
    notice_service.create(
        conn,
        int(row.subject_id),
        "appeal-decision",
        {
            "appeal": appeal_id,
            "record_seq": row.record_seq,
            "outcome": outcome,
            "reasons": reasons.strip(),
            "reviewer": reviewer.label,
            "amended_seq": amended_seq,
        },
        now,
        record_seq=int(row.record_seq),
    )
    return {
        "appeal": appeal_id,
        "outcome": outcome,
        "subject_id": int(row.subject_id),
        "amended_seq": amended_seq,
        "agency": record["agency"],
    }


def _amend(
    conn: Connection,
    catalogs: Registry,
    log: LedgerLog,
    record: Mapping[str, Any],
    appeal_id: int,
    correction: Mapping[str, Any],
    now: datetime,
) -> int:
    """The corrected record, filed on behalf of the original agency."""
    subject = conn.execute(
        select(subjects.c.kind, subjects.c.identifier).where(subjects.c.id == record["subject_id"])
    ).one()
    item = {
        "agency_ref": f"{record['agency_ref']}~appeal-{appeal_id}",
        "subject_kind": subject.kind,
        "subject": subject.identifier,
        "rule": correction.get("rule", record["rule"]),
        "jurisdiction": record["jurisdiction"],
        "occurred_on": str(correction.get("occurred_on", record["occurred_on"])),
        "evidence": correction.get("evidence", f"amended on appeal {appeal_id}: {record['evidence']}"),
    }
    result = ingest(conn, catalogs, log, record["agency"], [item], source=f"appeal:{appeal_id}", now=now)
    outcome = result.outcomes[0]
    if outcome.status == "rejected" or outcome.seq is None:
        raise AppealError(422, "correction: " + "; ".join(outcome.reasons))
    return outcome.seq


def overdue(conn: Connection, now: datetime) -> list[int]:
    """Tell subjects whose appeals passed their deadline undecided; returns their subject ids."""
    rows = conn.execute(
        select(appeals).where(
            appeals.c.decided_at.is_(None),
            appeals.c.deadline_at <= now,
            appeals.c.suspension_noticed.is_(False),
        )
    ).all()
    for row in rows:
        conn.execute(update(appeals).where(appeals.c.id == row.id).values(suspension_noticed=True))
        notice_service.create(
            conn,
            int(row.subject_id),
            "appeal-overdue",
            {"appeal": row.id, "record_seq": row.record_seq},
            now,
            record_seq=int(row.record_seq),
        )
    return sorted({int(r.subject_id) for r in rows})


def queue(conn: Connection, catalogs: Registry, reviewer: Reviewer, now: datetime) -> list[dict[str, Any]]:
    """Open appeals in the reviewer's jurisdiction, soonest deadline first, with days left."""
    q = (
        select(
            appeals,
            records.c.agency,
            records.c.rule,
            records.c.jurisdiction,
            records.c.occurred_on,
            records.c.evidence,
        )
        .join(records, records.c.seq == appeals.c.record_seq)
        .where(appeals.c.decided_at.is_(None))
        .order_by(appeals.c.deadline_at, appeals.c.id)
    )
    out = []
    for r in conn.execute(q):
        if not catalogs.is_within(r.jurisdiction, reviewer.jurisdiction):
            continue
        left = (_aware(r.deadline_at) - now).total_seconds() / 86400
        out.append(
            {
                "appeal": r.id,
                "record_seq": r.record_seq,
                "subject_id": r.subject_id,
                "agency": r.agency,
                "rule": r.rule,
                "jurisdiction": r.jurisdiction,
                "occurred_on": r.occurred_on.isoformat(),
                "evidence": r.evidence,
                "grounds": r.grounds,
                "filed_at": _aware(r.filed_at).isoformat(),
                "deadline_at": _aware(r.deadline_at).isoformat(),
                "days_left": round(left, 1),
                "overdue": left < 0,
                "own_agency": reviewer.agency == r.agency,
            }
        )
    return out


def appeals_of(conn: Connection, subject_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(appeals).where(appeals.c.subject_id == subject_id).order_by(appeals.c.id)
    ).all()
    return [
        {k: (_aware(v).isoformat() if isinstance(v, datetime) else v) for k, v in r._mapping.items()}
        | {"attachments": json.loads(r.attachments)}
        for r in rows
    ]
