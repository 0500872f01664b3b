"""Early rectification on request: the 2023 national credit-restoration rules in data.

Besides the automatic clean-period rectification of scoring, a subject may
ask to clear a rectifiable adverse record on the strength of a restorative
act (fine paid, course completed, volunteer hours). The reporting agency
(or a reviewer of the jurisdiction) decides by the policy's decision
deadline; an approval is a *restoration* record in the ledger, filed on
behalf of the agency, so the record is rectified from the approval day and
everything downstream (score, listings) follows from the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, select, update

from credo.catalog.registry import Registry
from credo.ledger.log import LedgerLog
from credo.ledger.services import ingest
from credo.process import notices
from credo.process.appeals import AppealError, _aware, end_of_local_day
from credo.store.tables import records, rectification_requests

ACTS = ("fine-paid", "course-completed", "volunteer-hours", "judgment-performed", "other")


@dataclass(frozen=True)
class Decider:
    label: str
    agency: str | None = None  # the reporting agency itself
    jurisdiction: str | None = None  # or a reviewer of this jurisdiction


def request(
    conn: Connection,
    catalogs: Registry,
    subject_id: int,
    record_seq: int,
    *,
    act: str,
    evidence: str,
    now: datetime,
) -> int:
    record = conn.execute(select(records).where(records.c.seq == record_seq)).first()
    if record is None or record.subject_id != subject_id:
        raise AppealError(404, f"record_seq: no record {record_seq} in your file")
    if act not in ACTS:
        raise AppealError(422, f"act: must be one of {', '.join(ACTS)}, got {act!r}")
    if not evidence.strip():
        raise AppealError(422, "evidence: describe or link the proof of the restorative act")
    versions = {v.version: v for v in catalogs.rule_versions(record.rule)}
    rule = versions.get(record.rule_version)
    if record.kind != "incident" or rule is None or rule.points >= 0:
        raise AppealError(422, f"record_seq: record {record_seq} is not an adverse incident")
    if not rule.rectifiable:
        raise AppealError(422, f"record_seq: rule {rule.code} is not rectifiable ({rule.legal_basis})")
    cleared = conn.execute(
        select(records.c.seq).where(
            records.c.target_seq == record_seq, records.c.kind.in_(("retraction", "restoration"))
        )
    ).first()
    if cleared is not None:
        raise AppealError(409, f"record_seq: record {record_seq} was already cleared by record {cleared.seq}")
    pending = conn.execute(
        select(rectification_requests.c.id).where(
            rectification_requests.c.record_seq == record_seq, rectification_requests.c.decided_at.is_(None)
        )
    ).first()
    if pending is not None:
        raise AppealError(409, f"record_seq: request {pending.id} for record {record_seq} is still open")
    policy = catalogs.policy(record.jurisdiction)
    today = now.astimezone(ZoneInfo(policy.timezone)).date()
    deadline = end_of_local_day(today + timedelta(days=policy.decision_deadline_days), policy.timezone)
    request_id = int(
        conn.execute(
            insert(rectification_requests)
            .values(
                subject_id=subject_id,
                record_seq=record_seq,
                act=act,
                evidence=evidence.strip(),
                filed_at=now,
                deadline_at=deadline,
            )
            .returning(rectification_requests.c.id)
        ).scalar_one()
    )
    notices.create(
        conn,
        subject_id,
        "rectification-received",
        {
            "request": request_id,
            "record_seq": record_seq,
            "decide_by": today + timedelta(days=policy.decision_deadline_days),
        },
        now,
        record_seq=record_seq,
    )
    return request_id


def decide(
    conn: Connection,
    catalogs: Registry,
    log: LedgerLog,
    decider: Decider,
    request_id: int,
    *,
    approve: bool,
    reasons: str,
    now: datetime,
) -> dict[str, Any]:
    row = conn.execute(
        select(rectification_requests).where(rectification_requests.c.id == request_id)
    ).first()
    if row is None:
        raise AppealError(404, f"request_id: no rectification request {request_id}")
    record = conn.execute(select(records).where(records.c.seq == row.record_seq)).one()
    if not may_decide(catalogs, decider, record.agency, record.jurisdiction):
        raise AppealError(404, f"request_id: no rectification request {request_id} for you to decide")
    if row.decided_at is not None:
        raise AppealError(409, f"request_id: request {request_id} was already decided ({row.outcome})")
    if not reasons.strip():
        raise AppealError(422, "reasons: a decision needs written reasons")
    restoration_seq = None
    if approve:
        local_day = now.astimezone(ZoneInfo(catalogs.policy(record.jurisdiction).timezone)).date()
        result = ingest(
            conn,
            catalogs,
            log,
            record.agency,
            [
                {
                    "agency_ref": f"rectification-{request_id}",
                    "kind": "restoration",
                    "target_seq": record.seq,
                    "occurred_on": local_day.isoformat(),
                    "evidence": f"{row.act}: {row.evidence}",
                }
            ],
            source=f"rectification:{request_id}",
            now=now,
        )
        outcome = result.outcomes[0]
        if outcome.status == "rejected":
            raise AppealError(422, "restoration: " + "; ".join(outcome.reasons))
        restoration_seq = outcome.seq
    verdict = "approved" if approve else "refused"
    conn.execute(
        update(rectification_requests)
        .where(rectification_requests.c.id == request_id, rectification_requests.c.decided_at.is_(None))
        .values(
            decided_at=now,
            outcome=verdict,
            decided_by=decider.label,
            reasons=reasons.strip(),
            restoration_seq=restoration_seq,
        )
    )
    notices.create(
        conn,
        int(row.subject_id),
        "rectification-decision",
        {
            "request": request_id,
            "record_seq": row.record_seq,
            "outcome": verdict,
            "reasons": reasons.strip(),
            "restoration_seq": restoration_seq,
        },
        now,
        record_seq=int(row.record_seq),
    )
    return {
        "request": request_id,
        "outcome": verdict,
        "restoration_seq": restoration_seq,
        "subject_id": int(row.subject_id),
    }


def may_decide(catalogs: Registry, decider: Decider, agency: str, jurisdiction: str) -> bool:
    """The reporting agency itself, or a reviewer whose jurisdiction holds the record's."""
    return decider.agency == agency or (
        decider.jurisdiction is not None and catalogs.is_within(jurisdiction, decider.jurisdiction)
    )


def open_requests(
    conn: Connection, catalogs: Registry, decider: Decider, now: datetime, *, request_id: int | None = None
) -> list[dict[str, Any]]:
    """Undecided requests ``decider`` may decide, soonest deadline first, with days left
    (only ``request_id``, when given).

    >>> # open_requests(conn, catalogs, Decider("r", jurisdiction="CN-SD-RC"), now)[0]["days_left"]
    >>> # 9.5
    """
    q = (
        select(
            rectification_requests,
            records.c.agency,
            records.c.rule,
            records.c.jurisdiction,
            records.c.occurred_on,
        )
        .join(records, records.c.seq == rectification_requests.c.record_seq)
        .where(rectification_requests.c.decided_at.is_(None))
        .order_by(rectification_requests.c.deadline_at, rectification_requests.c.id)
    )
    if request_id is not None:
        q = q.where(rectification_requests.c.id == request_id)
    out = []
    for r in conn.execute(q):
        if not may_decide(catalogs, decider, r.agency, r.jurisdiction):
            continue
        deadline = _aware(r.deadline_at)
        left = (deadline - now).total_seconds() / 86400
        out.append(
            {
                "request": int(r.id),
                "record_seq": int(r.record_seq),
                "subject_id": int(r.subject_id),
                "agency": r.agency,
                "rule": r.rule,
                "jurisdiction": r.jurisdiction,
                "occurred_on": r.occurred_on.isoformat(),
                "act": r.act,
                "evidence": r.evidence,
                "filed_at": _aware(r.filed_at).isoformat(),
                "deadline_at": deadline.isoformat(),
                "days_left": round(left, 1),
                "overdue": left < 0,
            }
        )
    return out


def requests_of(conn: Connection, subject_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(rectification_requests)
        .where(rectification_requests.c.subject_id == subject_id)
        .order_by(rectification_requests.c.id)
    ).all()
    return [
        {
            k: (
                v.replace(tzinfo=UTC).isoformat()
                if isinstance(v, datetime) and v.tzinfo is None
                else v.isoformat()
                if isinstance(v, datetime)
                else v
            )
            for k, v in r._mapping.items()
        }
        for r in rows
    ]
