"""Listings on file: applying a plan, reading them as of a date, relying parties.

A listing is enforceable from the later of the day its notice was issued
and its grace date (``started_on`` + the policy's enforcement grace), and
until the earlier of its end and its planned end (both exclusive). No
notice, no enforcement: that is what "no secret listing" means in data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, insert, or_, select, update

from credo.catalog.registry import Registry
from credo.lists.derive import OpenListing, OpenWarning, Plan
from credo.lists.index import CheckIndex
from credo.store.db import one_of
from credo.store.tables import (
    list_changes,
    list_warnings,
    listing_ends,
    listings,
    notices,
    relying_parties,
    relying_party_measures,
    subjects,
)


class PartyError(ValueError):
    """A relying-party registration that does not fit; names the field."""


def register_party(
    conn: Connection,
    catalogs: Registry,
    code: str,
    *,
    name: str,
    sector: str,
    purpose: str,
    measures: Sequence[str],
    now: datetime | None = None,
) -> None:
    if not code.strip():
        raise PartyError("code: required")
    if not purpose.strip():
        raise PartyError("purpose: required (what the party asks for and why)")
    if not measures:
        raise PartyError("measures: at least one measure the party may ask about")
    unknown = [m for m in measures if catalogs.measure(m) is None]
    if unknown:
        known = ", ".join(m.code for m in catalogs.measures())
        raise PartyError(f"measures: unknown measure {unknown[0]!r} (known: {known})")
    if conn.execute(select(relying_parties.c.code).where(relying_parties.c.code == code)).first():
        raise PartyError(f"code: relying party {code!r} is already registered")
    conn.execute(
        insert(relying_parties).values(
            code=code, name=name, sector=sector, purpose=purpose, created_at=now or datetime.now(UTC)
        )
    )
    conn.execute(
        insert(relying_party_measures), [{"party": code, "measure": m} for m in sorted(set(measures))]
    )


def party(conn: Connection, code: str) -> dict[str, Any] | None:
    row = conn.execute(select(relying_parties).where(relying_parties.c.code == code)).first()
    if row is None:
        return None
    measures = (
        conn.execute(select(relying_party_measures.c.measure).where(relying_party_measures.c.party == code))
        .scalars()
        .all()
    )
    return {**dict(row._mapping), "measures": sorted(measures)}


def open_listings(conn: Connection, subject_ids: Iterable[int] | None = None) -> list[OpenListing]:
    q = (
        select(listings)
        .join(listing_ends, listing_ends.c.listing_id == listings.c.id, isouter=True)
        .where(listing_ends.c.listing_id.is_(None))
    )
    if subject_ids is not None:
        q = q.where(listings.c.subject_id.in_(list(subject_ids)))
    return [
        OpenListing(
            r.id, r.subject_id, r.list_code, r.scheme, r.cause, r.cause_seq, r.started_on, r.planned_end_on
        )
        for r in conn.execute(q)
    ]


def open_warnings(conn: Connection, subject_ids: Iterable[int] | None = None) -> list[OpenWarning]:
    q = select(list_warnings).where(list_warnings.c.lapsed_on.is_(None))
    if subject_ids is not None:
        q = q.where(list_warnings.c.subject_id.in_(list(subject_ids)))
    return [OpenWarning(r.id, r.subject_id, r.list_code, r.scheme, r.warned_on) for r in conn.execute(q)]


def _notice(
    conn: Connection, subject_id: int, kind: str, now: datetime, body: dict[str, Any], **links: int | None
) -> None:
    conn.execute(
        insert(notices).values(
            subject_id=subject_id,
            kind=kind,
            issued_at=now,
            body=json.dumps(body, ensure_ascii=False, default=str),
            **links,
        )
    )


def apply_plan(conn: Connection, catalogs: Registry, plan: Plan, now: datetime) -> None:
    """Write a plan: each listing, end and warning with its notice, in this transaction."""
    touched: set[int] = set()
    for new in plan.open:
        listing_id = conn.execute(
            insert(listings)
            .values(
                subject_id=new.subject_id,
                list_code=new.list_code,
                scheme=new.scheme,
                cause=new.cause,
                cause_seq=new.cause_seq,
                started_on=new.started_on,
                planned_end_on=new.planned_end_on,
                grace_until=new.grace_until,
                created_at=now,
            )
            .returning(listings.c.id)
        ).scalar_one()
        definition = catalogs.list(new.list_code)
        assert definition is not None
        _notice(
            conn,
            new.subject_id,
            "listing",
            now,
            {
                "list": new.list_code,
                "list_name_en": definition.name_en,
                "list_name_zh": definition.name_zh,
                "scheme": new.scheme,
                "cause": new.cause,
                "record": new.cause_seq,
                "started_on": new.started_on,
                "planned_end_on": new.planned_end_on,
                "enforceable_from": max(new.grace_until, now.date()),
                "measures": [
                    {"measure": m.measure, "legal_basis": m.legal_basis} for m in definition.measures
                ],
            },
            listing_id=int(listing_id),
            record_seq=new.cause_seq,
        )
        touched.add(new.subject_id)
    for listing_id, ended_on, reason in plan.end:
        conn.execute(
            insert(listing_ends).values(
                listing_id=listing_id, ended_on=ended_on, reason=reason, recorded_at=now
            )
        )
        subject_id = conn.execute(
            select(listings.c.subject_id).where(listings.c.id == listing_id)
        ).scalar_one()
        _notice(
            conn,
            subject_id,
            "delisting",
            now,
            {"listing": listing_id, "ended_on": ended_on, "reason": reason},
            listing_id=listing_id,
        )
        touched.add(subject_id)
    for w in plan.warn:
        warning_id = conn.execute(
            insert(list_warnings)
            .values(
                subject_id=w.subject_id,
                list_code=w.list_code,
                scheme=w.scheme,
                warned_on=w.warned_on,
                created_at=now,
            )
            .returning(list_warnings.c.id)
        ).scalar_one()
        period = catalogs.policy(w.scheme).warning_period_days
        _notice(
            conn,
            w.subject_id,
            "warning",
            now,
            {
                "list": w.list_code,
                "scheme": w.scheme,
                "warned_on": w.warned_on,
                "warning_period_days": period,
            },
            warning_id=int(warning_id),
        )
        touched.add(w.subject_id)
    for warning_id, on in plan.lapse:
        conn.execute(update(list_warnings).where(list_warnings.c.id == warning_id).values(lapsed_on=on))
    if touched:
        conn.execute(insert(list_changes), [{"subject_id": s, "changed_at": now} for s in sorted(touched)])


@dataclass(frozen=True)
class ListingView:
    id: int
    subject_id: int
    list_code: str
    scheme: str
    cause: str
    cause_seq: int | None
    started_on: date
    enforceable_from: date | None  # None: no notice yet, so never enforceable
    planned_end_on: date
    ended_on: date | None
    end_reason: str | None

    def in_force(self, day: date) -> bool:
        end = min(self.planned_end_on, self.ended_on or self.planned_end_on)
        return self.started_on <= day < end

    def enforceable(self, day: date) -> bool:
        return self.enforceable_from is not None and self.enforceable_from <= day and self.in_force(day)

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in self.__dict__.items()}


def listing_views(
    conn: Connection,
    catalogs: Registry,
    *,
    subject_ids: Iterable[int] | None = None,
    known_at: datetime | None = None,
) -> list[ListingView]:
    """Every listing (as known at ``known_at``) with its enforceable-from and end."""
    first_notice = (
        select(notices.c.listing_id, func.min(notices.c.issued_at).label("noticed_at"))
        .where(notices.c.kind == "listing")
        .group_by(notices.c.listing_id)
        .subquery()
    )
    q = (
        select(
            listings,
            first_notice.c.noticed_at,
            listing_ends.c.ended_on,
            listing_ends.c.reason,
            listing_ends.c.recorded_at,
        )
        .join(first_notice, first_notice.c.listing_id == listings.c.id, isouter=True)
        .join(listing_ends, listing_ends.c.listing_id == listings.c.id, isouter=True)
        .order_by(listings.c.id)
    )
    if subject_ids is not None:
        q = q.where(listings.c.subject_id.in_(list(subject_ids)))
    if known_at is not None:
        q = q.where(listings.c.created_at <= known_at)
    out = []
    for r in conn.execute(q):
        tz = ZoneInfo(catalogs.policy(r.scheme).timezone)
        noticed = r.noticed_at
        if noticed is not None and known_at is not None and _aware(noticed) > known_at:
            noticed = None
        ended = (
            r.ended_on
            if r.recorded_at is not None and (known_at is None or _aware(r.recorded_at) <= known_at)
            else None
        )
        out.append(
            ListingView(
                id=r.id,
                subject_id=r.subject_id,
                list_code=r.list_code,
                scheme=r.scheme,
                cause=r.cause,
                cause_seq=r.cause_seq,
                started_on=r.started_on,
                enforceable_from=None
                if noticed is None
                else max(r.grace_until, _aware(noticed).astimezone(tz).date()),
                planned_end_on=r.planned_end_on,
                ended_on=ended,
                end_reason=r.reason if ended else None,
            )
        )
    return out


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def last_change(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(list_changes.c.id), 0))).scalar_one())


def _measures_by_subject(
    conn: Connection, catalogs: Registry, today: date, subject_ids: Iterable[int] | None = None
) -> dict[int, set[str]]:
    """Subject number -> the measures of its listings enforceable ``today``."""
    out: dict[int, set[str]] = {}
    for view in listing_views(conn, catalogs, subject_ids=subject_ids):
        definition = catalogs.list(view.list_code)
        if definition is None or not view.enforceable(today):
            continue
        out.setdefault(view.subject_id, set()).update(link.measure for link in definition.measures)
    return out


def _subject_texts(conn: Connection, numbers: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(numbers))
    texts: dict[int, str] = {}
    for i in range(0, len(ids), 10_000):
        for row in conn.execute(
            select(subjects.c.id, subjects.c.kind, subjects.c.identifier).where(
                one_of(conn, subjects.c.id, ids[i : i + 10_000])
            )
        ):
            texts[row.id] = f"{row.kind}:{row.identifier}"
    return texts


def enforceable_members(conn: Connection, catalogs: Registry, today: date) -> dict[str, set[str]]:
    """Measure -> the subjects (``kind:identifier``) an enforceable listing places under it today."""
    by_subject = _measures_by_subject(conn, catalogs, today)
    texts = _subject_texts(conn, by_subject)
    members: dict[str, set[str]] = {m.code: set() for m in catalogs.measures()}
    for number, measures in by_subject.items():
        for measure in measures:
            members.setdefault(measure, set()).add(texts[number])
    return members


def subject_measures(
    conn: Connection, catalogs: Registry, today: date, subject_ids: Iterable[int]
) -> dict[str, frozenset[str]]:
    """Subject (``kind:identifier``) -> the measures that apply to it today, for each given
    subject number (an empty set for one no longer listed): the check index's overlay."""
    ids = sorted(set(subject_ids))
    by_subject = _measures_by_subject(conn, catalogs, today, ids)
    return {text: frozenset(by_subject.get(number, ())) for number, text in _subject_texts(conn, ids).items()}


def change_window(conn: Connection, after: int, also: Iterable[int] = ()) -> list[tuple[int, int]]:
    """(change id, subject number) of list changes after ``after`` and of the ids in ``also``."""
    wanted = list(also)
    where = list_changes.c.id > after
    if wanted:
        where = or_(where, one_of(conn, list_changes.c.id, wanted))
    q = select(list_changes.c.id, list_changes.c.subject_id).where(where).order_by(list_changes.c.id)
    return [(int(r.id), int(r.subject_id)) for r in conn.execute(q)]


def change_subject(conn: Connection, change_id: int) -> int | None:
    return conn.execute(select(list_changes.c.subject_id).where(list_changes.c.id == change_id)).scalar()


def build_index(conn: Connection, catalogs: Registry, today: date, version: int = 0) -> CheckIndex:
    """The check index for ``today``: every measure of every listing enforceable that day."""
    effects = {m.code: m.effect for m in catalogs.measures()}
    members = enforceable_members(conn, catalogs, today)
    return CheckIndex.from_members(effects, members, built_on=today, version=version)
