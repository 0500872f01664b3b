"""Ingest: records from agencies into the append-only ledger.

One call handles one batch in one transaction: every item is accepted (a
new ledger sequence number), a duplicate (same agency reference and same
content: the original number), or rejected (kept in quarantine with every
reason). Nothing already accepted is ever changed.

    >>> # result = ingest(conn, catalogs, log, "CN-ZJ-HZ-TP", [{...}, ...], source="api")
    >>> # [o.status for o in result.outcomes]  ->  ['accepted', 'rejected', ...]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from credo.catalog.registry import Registry
from credo.ids import SubjectId
from credo.ledger.log import LeafTemplate, LedgerLog, record_leaf_template, recorded_json
from credo.ledger.validate import Checker, Draft
from credo.store.db import insert_many, one_of
from credo.store.tables import quarantine, quarantine_releases, records, subjects

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass(slots=True)
class Outcome:
    index: int
    status: Status
    agency_ref: str | None
    seq: int | None = None
    reasons: tuple[str, ...] = ()
    quarantine_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": self.status, "agency_ref": self.agency_ref}
        if self.seq is not None:
            out["seq"] = self.seq
        if self.reasons:
            out["reasons"] = list(self.reasons)
        if self.quarantine_id is not None:
            out["quarantine_id"] = self.quarantine_id
        return out


@dataclass
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)
    tree_size: int = 0
    checkpoint: str | None = None
    #: the ledger rows this batch appended, in sequence order, as
    #: :data:`ACCEPTED_FIELDS` mappings: what the intake needs for notices and
    #: listings without reading them back
    accepted: list[dict[str, Any]] = field(default_factory=list)
    #: the ``recorded_at`` of the records this batch appended (read under the log lock
    #: unless the caller fixed it)
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def counts(self) -> dict[str, int]:
        out = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for o in self.outcomes:
            out[o.status] += 1
        return out


@dataclass(frozen=True)
class Prepared:
    """A batch checked against the catalogs, ready to append: no database touched yet.

    ``templates`` holds each incident's Merkle leaf but for its sequence
    number and ``recorded_at``, so the work under the log lock is small.
    """

    agency: str
    items: Sequence[Any]
    checked: list[Draft | list[str]]
    now: datetime
    templates: list[LeafTemplate | None]


def todays(catalogs: Registry, now: datetime) -> dict[str, date]:
    zones = {catalogs.policy(j.code).timezone for j in catalogs.jurisdictions()}
    return {tz: now.astimezone(ZoneInfo(tz)).date() for tz in zones}


#: Columns of a new ledger row, in the order ``append`` builds them.
RECORD_COLUMNS = (
    "seq",
    "agency",
    "agency_ref",
    "kind",
    "subject_id",
    "rule",
    "rule_version",
    "jurisdiction",
    "occurred_on",
    "recorded_at",
    "evidence",
    "target_seq",
    "content_hash",
    "leaf_hash",
)
#: What :attr:`BatchResult.accepted` holds of each appended row.
ACCEPTED_FIELDS = (
    "seq", "kind", "subject_id", "rule", "rule_version", "jurisdiction", "occurred_on", "target_seq",
)
_SEQ, _AGENCY, _REF, _KIND, _SUBJECT_ID, _RULE, _RULE_VERSION, _, _OCCURRED = range(9)


def _existing_refs(conn: Connection, agency: str, refs: Sequence[str]) -> dict[str, Any]:
    if not refs:
        return {}
    rows = conn.execute(
        select(records.c.agency_ref, records.c.seq, records.c.content_hash).where(
            records.c.agency == agency, one_of(conn, records.c.agency_ref, sorted(set(refs)))
        )
    ).all()
    return {row.agency_ref: row for row in rows}


_TARGET_COLS = (
    records.c.seq,
    records.c.agency,
    records.c.agency_ref,
    records.c.kind,
    records.c.subject_id,
    records.c.rule,
    records.c.rule_version,
    records.c.occurred_on,
)


def _targets(conn: Connection, agency: str, drafts: Iterable[Draft]) -> dict[Any, Any]:
    """Rows of the records that retractions and restorations name, by seq and by ref."""
    seqs = sorted({d.target_seq for d in drafts if d.target_seq is not None})
    refs = sorted({d.target_ref for d in drafts if d.target_ref is not None})
    out: dict[Any, Any] = {}
    if seqs:
        for row in conn.execute(select(*_TARGET_COLS).where(one_of(conn, records.c.seq, seqs))):
            out[row.seq] = row
    if refs:
        for row in conn.execute(
            select(*_TARGET_COLS).where(records.c.agency == agency, one_of(conn, records.c.agency_ref, refs))
        ):
            out[("ref", row.agency_ref)] = row
    return out


def _retracted(conn: Connection, seqs: Sequence[int]) -> dict[int, int]:
    if not seqs:
        return {}
    rows = conn.execute(
        select(records.c.target_seq, records.c.seq).where(
            records.c.kind == "retraction", one_of(conn, records.c.target_seq, sorted(set(seqs)))
        )
    )
    return {row.target_seq: row.seq for row in rows}


def _subject_rows(conn: Connection, kind: str, identifiers: Sequence[str]) -> dict[tuple[str, str], int]:
    rows = conn.execute(
        select(subjects.c.id, subjects.c.identifier).where(
            subjects.c.kind == kind, one_of(conn, subjects.c.identifier, identifiers)
        )
    ).all()
    return {(kind, identifier): int(number) for number, identifier in rows}


def subject_numbers(
    conn: Connection, wanted: Iterable[SubjectId], now: datetime
) -> dict[tuple[str, str], int]:
    """Numbers for every subject by (kind, identifier), creating the ones seen for the first time."""
    by_kind: dict[str, set[str]] = {}
    for s in wanted:
        by_kind.setdefault(s.kind, set()).add(s.identifier)
    out: dict[tuple[str, str], int] = {}
    for kind, identifiers in sorted(by_kind.items()):
        found = _subject_rows(conn, kind, sorted(identifiers))
        out.update(found)
        new = sorted(identifiers - {identifier for _, identifier in found})
        if new:
            made = insert_many(
                conn,
                subjects,
                ("kind", "identifier", "created_at"),
                [(kind, identifier, now) for identifier in new],
                skip_existing=True,
                returning=("id", "identifier"),
            )
            out.update({(kind, identifier): int(number) for number, identifier in made})
            if len(made) < len(new):
                # Another writer (a token for a new subject) added one meanwhile:
                # it was left be, and its number is read back.
                out.update(_subject_rows(conn, kind, [i for i in new if (kind, i) not in out]))
    return out


def prepare(
    catalogs: Registry, agency: str, items: Sequence[Any], *, now: datetime | None = None
) -> Prepared:
    """Check every item against the catalogs; needs no database, so it runs before the lock."""
    now = now or datetime.now(UTC)
    checker = Checker(catalogs, agency, todays(catalogs, now))
    checker.know_people(items)
    checked = [checker.check(raw) for raw in items]
    templates = [
        _template(agency, c, c.subject, c.rule, c.rule_version, None)
        if isinstance(c, Draft) and c.kind == "incident" and c.subject and c.rule and c.rule_version
        else None
        for c in checked
    ]
    return Prepared(agency, items, checked, now, templates)


def _template(
    agency: str, d: Draft, subject: SubjectId, rule: str, rule_version: int, target_seq: int | None
) -> LeafTemplate:
    return record_leaf_template(
        agency,
        d.agency_ref,
        d.kind,
        rule,
        rule_version,
        d.jurisdiction,
        d.occurred_on,
        d.evidence,
        target_seq,
        d.content_hash,
        subject,
    )


def ingest(
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
    """Check, deduplicate and append one batch; quarantine what is refused.

    ``now`` is the clock for both the checks and ``recorded_at``; without it,
    ``recorded_at`` is read once the log lock is held, so it never goes
    backwards along the sequence numbers.
    """
    batch = prepare(catalogs, agency, items, now=now)
    return append(conn, catalogs, log, batch, source=source, lines=lines, recorded_at=now)


def append(
    conn: Connection,
    catalogs: Registry,
    log: LedgerLog,
    batch: Prepared,
    *,
    source: str,
    lines: Sequence[int | None] | None = None,
    recorded_at: datetime | None = None,
) -> BatchResult:
    """Deduplicate and append a prepared batch in ``conn``'s transaction; quarantine what is refused."""
    agency, items, checked = batch.agency, batch.items, batch.checked
    drafts = [c for c in checked if isinstance(c, Draft)]

    # Subjects are numbered before the log lock: that needs no sequence number, so
    # on PostgreSQL it overlaps another batch's append. (A subject another
    # transaction is adding is waited for here, never while holding the lock;
    # whoever holds it has numbered its subjects already.)
    numbers = subject_numbers(
        conn,
        [d.subject for d in drafts if d.subject is not None],
        (recorded_at or datetime.now(UTC)).astimezone(UTC),
    )
    # Under the log lock from here on: sequence numbers are handed out in turn.
    head = log.lock(conn)
    recorded_at = (recorded_at or datetime.now(UTC)).astimezone(UTC)
    existing = _existing_refs(conn, agency, [d.agency_ref for d in drafts])
    touching = [d for d in drafts if d.kind != "incident"]
    targets = _targets(conn, agency, touching) if touching else {}
    retracted = _retracted(conn, [t.seq for t in targets.values()]) if targets else {}
    subject_by_number = (
        {v: SubjectId(*k) for k, v in numbers.items()} if touching else {}  # type: ignore[arg-type]
    )

    recorded = recorded_json(recorded_at)
    next_seq = head.size + 1
    new_rows: list[tuple[Any, ...]] = []
    leaves: list[bytes] = []
    accepted: list[dict[str, Any]] = []
    in_batch: dict[str, tuple[int, bytes]] = {}
    outcomes: list[Outcome | None] = [None] * len(checked)
    quarantined: list[tuple[int, list[str]]] = []

    for index, item in enumerate(checked):
        if not isinstance(item, Draft):
            quarantined.append((index, item))
            continue
        d = item
        prior = existing.get(d.agency_ref)
        prior_seq, prior_hash = (
            (prior.seq, prior.content_hash) if prior else in_batch.get(d.agency_ref, (None, None))
        )
        if prior_seq is not None:
            if bytes(prior_hash or b"") == d.content_hash:
                outcomes[index] = Outcome(index, "duplicate", d.agency_ref, prior_seq)
            else:
                quarantined.append(
                    (
                        index,
                        [
                            f"agency_ref: {d.agency_ref!r} was already used for different content "
                            f"(seq {prior_seq}); a correction is a retraction plus a new record"
                        ],
                    )
                )
            continue

        subject_id = numbers.get((d.subject.kind, d.subject.identifier)) if d.subject else None
        rule, rule_version, target_seq = d.rule, d.rule_version, None
        if d.kind != "incident":
            reasons, target = _check_target(d, agency, targets, retracted, catalogs, new_rows)
            if reasons:
                quarantined.append((index, reasons))
                continue
            assert target is not None
            target_seq = target["seq"]
            if subject_id is not None and subject_id != target["subject_id"]:
                quarantined.append((index, ["subject: does not match the subject of the target record"]))
                continue
            subject_id = target["subject_id"]
            rule, rule_version = target["rule"], target["rule_version"]
            if d.rule is not None and d.rule != rule:
                quarantined.append((index, [f"rule: the target record is of rule {rule}, not {d.rule}"]))
                continue
            if d.kind == "retraction":
                retracted[target_seq] = next_seq
        assert subject_id is not None and rule is not None and rule_version is not None
        template = batch.templates[index]
        if template is None:  # a retraction or restoration: fields of its target
            subject = d.subject or subject_by_number.get(subject_id) or _subject_of(conn, subject_id)
            subject_by_number[subject_id] = subject
            template = _template(agency, d, subject, rule, rule_version, target_seq)
        leaf = template.leaf(recorded, next_seq)
        new_rows.append(
            (
                next_seq,
                agency,
                d.agency_ref,
                d.kind,
                subject_id,
                rule,
                rule_version,
                d.jurisdiction,
                d.occurred_on,
                recorded_at,
                d.evidence,
                target_seq,
                d.content_hash,
                leaf,
            )
        )
        leaves.append(leaf)
        accepted.append(  # ACCEPTED_FIELDS of the row (a literal: cheaper than zipping the tuple)
            {
                "seq": next_seq,
                "kind": d.kind,
                "subject_id": subject_id,
                "rule": rule,
                "rule_version": rule_version,
                "jurisdiction": d.jurisdiction,
                "occurred_on": d.occurred_on,
                "target_seq": target_seq,
            }
        )
        in_batch[d.agency_ref] = (next_seq, d.content_hash)
        outcomes[index] = Outcome(index, "accepted", d.agency_ref, next_seq)
        next_seq += 1

    insert_many(conn, records, RECORD_COLUMNS, new_rows)
    if quarantined:
        received = batch.now
        ids = (
            conn.execute(
                quarantine.insert().returning(quarantine.c.id, sort_by_parameter_order=True),
                [
                    {
                        "agency": agency,
                        "source": source,
                        "line": lines[index] if lines is not None else index + 1,
                        "raw": _raw_text(items[index]),
                        "reasons": json.dumps(reasons, ensure_ascii=False),
                        "received_at": received,
                    }
                    for index, reasons in quarantined
                ],
            )
            .scalars()
            .all()
        )
        for (index, reasons), qid in zip(quarantined, ids, strict=True):
            raw = items[index]
            ref = raw.get("agency_ref") if isinstance(raw, Mapping) else None
            outcomes[index] = Outcome(
                index,
                "rejected",
                None if ref is None else str(ref),
                reasons=tuple(reasons),
                quarantine_id=int(qid),
            )
    result = BatchResult([o for o in outcomes if o is not None], recorded_at=recorded_at)
    result.accepted = accepted
    tree_head = log.append(conn, head, leaves, recorded_at) if leaves else head
    result.tree_size = tree_head.size
    result.checkpoint = tree_head.checkpoint
    return result


def _raw_text(raw: Any) -> str:
    """The item exactly as received, as JSON (a malformed line as its text)."""
    if isinstance(raw, Mapping):
        return json.dumps(raw, ensure_ascii=False, default=str, sort_keys=True)
    return json.dumps(getattr(raw, "text", raw), ensure_ascii=False, default=str)


def _subject_of(conn: Connection, subject_id: int) -> SubjectId:
    row = conn.execute(
        select(subjects.c.kind, subjects.c.identifier).where(subjects.c.id == subject_id)
    ).one()
    return SubjectId(row.kind, row.identifier)


def _check_target(
    d: Draft,
    agency: str,
    targets: Mapping[Any, Any],
    retracted: Mapping[int, int],
    catalogs: Registry,
    new_rows: Sequence[Sequence[Any]],
) -> tuple[list[str], Mapping[str, Any] | None]:
    """Whether a retraction or restoration may touch the record it names."""
    field_name = "target_seq" if d.target_seq is not None else "target_ref"
    key: Any = d.target_seq if d.target_seq is not None else ("ref", d.target_ref)
    found = targets.get(key)
    target: Mapping[str, Any] | None = dict(found._mapping) if found is not None else None
    if target is None:  # it may have been accepted earlier in this same batch
        for row in new_rows:
            if row[_SEQ] == d.target_seq or (d.target_ref is not None and row[_REF] == d.target_ref):
                target = {
                    "seq": row[_SEQ],
                    "agency": row[_AGENCY],
                    "agency_ref": row[_REF],
                    "kind": row[_KIND],
                    "subject_id": row[_SUBJECT_ID],
                    "rule": row[_RULE],
                    "rule_version": row[_RULE_VERSION],
                    "occurred_on": row[_OCCURRED],
                }
                break
    if target is None:
        return [f"{field_name}: no record {d.target_seq or d.target_ref!r} of agency {agency} to touch"], None
    if target["kind"] != "incident":
        return [f"{field_name}: record {target['seq']} is a {target['kind']}, not an incident"], None
    if target["seq"] in retracted:
        return [
            f"{field_name}: record {target['seq']} was already retracted by {retracted[target['seq']]}"
        ], None
    if d.kind == "retraction" and target["agency"] != agency:
        return [
            f"{field_name}: record {target['seq']} belongs to {target['agency']}; only it may retract it"
        ], None
    if d.kind == "restoration":
        rule = catalogs.rule(target["rule"], target["occurred_on"])
        if target["agency"] != agency and (rule is None or agency not in rule.agencies):
            return [f"{field_name}: agency {agency} may not restore a record of rule {target['rule']}"], None
        if d.occurred_on < target["occurred_on"]:
            return [
                f"occurred_on: a restoration ({d.occurred_on}) cannot precede the act it clears "
                f"({target['occurred_on']})"
            ], None
    return [], target


def quarantine_rows(
    conn: Connection,
    *,
    agency: str | None = None,
    open_only: bool = False,
    limit: int = 100,
    after_id: int = 0,
) -> list[dict[str, Any]]:
    """Quarantined items, oldest first, with whether a retry released them."""
    q = (
        select(
            quarantine,
            quarantine_releases.c.seq.label("released_seq"),
            quarantine_releases.c.outcome.label("released_as"),
        )
        .join(quarantine_releases, quarantine_releases.c.quarantine_id == quarantine.c.id, isouter=True)
        .where(quarantine.c.id > after_id)
        .order_by(quarantine.c.id)
        .limit(limit)
    )
    if agency is not None:
        q = q.where(quarantine.c.agency == agency)
    if open_only:
        q = q.where(quarantine_releases.c.quarantine_id.is_(None))
    return [
        {**dict(r._mapping), "raw": json.loads(r.raw), "reasons": json.loads(r.reasons)}
        for r in conn.execute(q)
    ]


class Step(Protocol):
    """What runs a batch into the ledger: :func:`ingest`, or the intake that also notifies."""

    def __call__(
        self,
        conn: Connection,
        catalogs: Registry,
        log: LedgerLog,
        agency: str,
        items: Sequence[Any],
        *,
        source: str,
        lines: Sequence[int | None] | None = None,
        now: datetime | None = None,
    ) -> BatchResult: ...


def release(conn: Connection, quarantine_id: int, outcome: Outcome, now: datetime) -> None:
    """Close a quarantined item: to the record it became, or to the new quarantine row.

    The quarantined row itself is never changed: a release row is added. An
    item refused again is released as ``requeued`` to the retry's own
    quarantine row, which carries today's reasons, so only one stays open.
    """
    refused = outcome.status == "rejected"
    conn.execute(
        quarantine_releases.insert().values(
            quarantine_id=quarantine_id,
            seq=None if refused else outcome.seq,
            outcome="requeued" if refused else outcome.status,
            released_at=now,
        )
    )


def retry_quarantine(
    conn: Connection,
    catalogs: Registry,
    log: LedgerLog,
    ids: Sequence[int] | None = None,
    *,
    agency: str | None = None,
    now: datetime | None = None,
    step: Step = ingest,
) -> dict[str, int]:
    """Run open quarantined items through ``step`` again (after a catalog fix).

    A success is written as a release row; the quarantined row itself stays
    as it was. What is still refused is quarantined again with today's reasons.
    Callers that serve agencies pass the intake that also issues notices
    (:func:`credo.process.intake.ingest_and_notify`), so a retried adverse
    record never lands without one.
    """
    now = now or datetime.now(UTC)
    rows = quarantine_rows(conn, agency=agency, open_only=True, limit=1_000_000)
    if ids is not None:
        wanted = set(ids)
        rows = [r for r in rows if r["id"] in wanted]
    counts = {"released": 0, "still_refused": 0}
    by_agency: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_agency.setdefault(r["agency"], []).append(r)
    for agency_code, group in by_agency.items():
        result = step(
            conn,
            catalogs,
            log,
            agency_code,
            [r["raw"] for r in group],
            source="quarantine-retry",
            lines=[r["line"] for r in group],
            now=now,
        )
        for row, outcome in zip(group, result.outcomes, strict=True):
            counts["still_refused" if outcome.status == "rejected" else "released"] += 1
            release(conn, row["id"], outcome, now)
    return counts


def resend_quarantined(
    conn: Connection,
    catalogs: Registry,
    log: LedgerLog,
    agency: str,
    quarantine_id: int,
    corrected: Mapping[str, Any],
    *,
    now: datetime | None = None,
    step: Step = ingest,
) -> Outcome | None:
    """Send a corrected copy of one of ``agency``'s open quarantined items and release the original.

    ``None`` when there is no such open item of that agency (nothing is written).
    """
    now = now or datetime.now(UTC)
    found = quarantine_rows(conn, agency=agency, open_only=True, after_id=quarantine_id - 1, limit=1)
    if not found or found[0]["id"] != quarantine_id:
        return None
    result = step(
        conn, catalogs, log, agency, [dict(corrected)],
        source=f"fix:{quarantine_id}", lines=[found[0]["line"]], now=now,
    )
    outcome = result.outcomes[0]
    release(conn, quarantine_id, outcome, now)
    return outcome
