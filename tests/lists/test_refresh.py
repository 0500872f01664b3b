"""Listings follow the ledger: a judgment lists, its retraction or restoration delists."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from factories import RecordFactory, person_id
from sqlalchemy import Connection, select

from credo.catalog.registry import Registry
from credo.ledger.services import ingest
from credo.lists import refresh as refresh_module
from credo.lists.refresh import refresh
from credo.lists.services import build_index, listing_views
from credo.runtime import Runtime
from credo.store.db import Database
from credo.store.tables import notices, subjects

NOW = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)


def send(
    runtime: Runtime, items: list[dict[str, object]], agency: str = "CN-SPC", now: datetime = NOW
) -> None:
    with runtime.db.begin() as conn:
        result = ingest(conn, runtime.catalogs, runtime.log, agency, items, source="test", now=now)
    assert all(o.status == "accepted" for o in result.outcomes), result.outcomes


def number(runtime: Runtime, who: str) -> int:
    with runtime.db.read() as conn:
        return int(conn.execute(select(subjects.c.id).where(subjects.c.identifier == who)).scalar_one())


def test_a_court_judgment_lists_and_its_restoration_delists_the_same_day(runtime: Runtime) -> None:
    who = person_id()
    send(runtime, [RecordFactory(court_defaulter=True, subject=who, agency_ref="J-1")])
    sid = number(runtime, who)
    with runtime.db.begin() as conn:
        plan = refresh(conn, runtime.catalogs, NOW, [sid])
        assert [o.list_code for o in plan.open] == ["CN.DEFAULTER"]
        index = build_index(conn, runtime.catalogs, date(2024, 6, 1) + timedelta(days=30))
    assert index.decide("air-travel", f"person:{who}") == "denied"
    paid = NOW + timedelta(days=40)
    send(
        runtime,
        [
            {
                "agency_ref": "paid",
                "kind": "restoration",
                "target_ref": "J-1",
                "occurred_on": paid.date().isoformat(),
                "evidence": "judgment performed",
            }
        ],
        now=paid,
    )
    with runtime.db.begin() as conn:
        plan = refresh(conn, runtime.catalogs, paid, [sid])
        (view,) = listing_views(conn, runtime.catalogs, subject_ids=[sid])
        kinds = conn.execute(select(notices.c.kind).where(notices.c.subject_id == sid)).scalars().all()
        index = build_index(conn, runtime.catalogs, paid.date())
    assert view.ended_on == paid.date() and "rectified" in (view.end_reason or "")
    assert kinds == ["listing", "delisting"]
    assert index.decide("air-travel", f"person:{who}") == "allowed"


def test_a_retracted_judgment_delists(runtime: Runtime) -> None:
    who = person_id()
    send(runtime, [RecordFactory(court_defaulter=True, subject=who, agency_ref="J-2")])
    sid = number(runtime, who)
    with runtime.db.begin() as conn:
        refresh(conn, runtime.catalogs, NOW, [sid])
    later = NOW + timedelta(days=3)
    send(
        runtime,
        [
            {
                "agency_ref": "r",
                "kind": "retraction",
                "target_ref": "J-2",
                "occurred_on": later.date().isoformat(),
            }
        ],
        now=later,
    )
    with runtime.db.begin() as conn:
        plan = refresh(conn, runtime.catalogs, later, [sid])
    assert len(plan.end) == 1 and "retracted" in plan.end[0][2]


def test_refresh_is_idempotent_and_works_for_everyone_at_once(runtime: Runtime) -> None:
    for _ in range(3):
        send(runtime, [RecordFactory(court_defaulter=True)])
    with runtime.db.begin() as conn:
        assert len(refresh(conn, runtime.catalogs, NOW).open) == 3
        assert refresh(conn, runtime.catalogs, NOW).is_empty


class Watched(Database):
    """The test's database, noting whether a write transaction is open."""

    def __init__(self, inner: Database) -> None:
        super().__init__(inner.engine, inner._bound)
        self.writing = False
        self.writes = 0

    @contextmanager
    def begin(self, *, shed: bool = True) -> Iterator[Connection]:
        self.writes += 1
        self.writing = True
        try:
            with super().begin(shed=shed) as conn:
                yield conn
        finally:
            self.writing = False


def test_the_registry_wide_refresh_plans_outside_the_writer_and_applies_in_small_transactions(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [person_id() for _ in range(5)]
    send(runtime, [RecordFactory(court_defaulter=True, subject=who) for who in people])
    watched = Watched(runtime.db)
    planned: list[tuple[bool, int | None]] = []
    real_plan_for = refresh_module.plan_for

    def plan_for(conn: Connection, catalogs: Registry, now: datetime, subject_ids: Any = None) -> Any:
        planned.append((watched.writing, None if subject_ids is None else len(subject_ids)))
        return real_plan_for(conn, catalogs, now, subject_ids)

    monkeypatch.setattr(refresh_module, "plan_for", plan_for)
    naps: list[float] = []
    plan = refresh_module.refresh_all(watched, runtime.catalogs, NOW, chunk=2, sleep=naps.append)
    assert sorted(number(runtime, who) for who in people) == sorted(o.subject_id for o in plan.open)
    # the whole registry planned on a read; then its 5 subjects, 2 at a time, each under the writer
    assert planned == [(False, None), (True, 2), (True, 2), (True, 1)]
    assert watched.writes == 3
    # it gives way between its writes (as long as each took), not after the last one
    assert len(naps) == 2 and all(nap > 0 for nap in naps)
    assert refresh_module.refresh_all(watched, runtime.catalogs, NOW).is_empty  # nothing left to do
