"""The clock: an overdue appeal suspends its record and the listing it caused, and the subject is told."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

from factories import RecordFactory, person_id
from sqlalchemy import select

from credo.ids import parse_subject_ref
from credo.ledger.subjects import subject_number
from credo.lists.services import build_index
from credo.process import appeals
from credo.process.intake import ingest_and_notify
from credo.process.scheduler import Scheduler
from credo.runtime import Runtime
from credo.store.tables import notices

DAY0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def test_tick_suspends_an_overdue_appeals_listing_and_tells_the_subject(runtime: Runtime) -> None:
    who = person_id()
    with runtime.db.begin() as conn:
        result = ingest_and_notify(
            conn,
            runtime.catalogs,
            runtime.log,
            "CN-SPC",
            [RecordFactory(court_defaulter=True, subject=who, occurred_on="2026-02-10")],
            source="test",
            now=DAY0,
        )
        seq = result.outcomes[0].seq
        sid = subject_number(conn, parse_subject_ref(who))
        assert sid is not None and seq is not None
        appeals.file_appeal(
            conn, runtime.catalogs, sid, record_seq=seq, grounds="not me", now=DAY0 + timedelta(days=1)
        )
    clock = Scheduler(runtime.db, runtime.catalogs, "Asia/Shanghai")
    assert clock.tick(DAY0 + timedelta(days=5))["overdue"] == 0
    late = DAY0 + timedelta(days=33)
    counts = clock.tick(late)
    assert counts["overdue"] == 1 and counts["listings_changed"] >= 1
    with runtime.db.read() as conn:
        kinds = (
            conn.execute(select(notices.c.kind).where(notices.c.subject_id == sid).order_by(notices.c.id))
            .scalars()
            .all()
        )
        index = build_index(conn, runtime.catalogs, late.date())
    assert kinds[-2:] == ["appeal-overdue", "delisting"]
    assert index.decide("air-travel", f"person:{who}") == "allowed"


def test_the_clock_thread_runs_at_a_lower_cpu_priority_than_requests(runtime: Runtime) -> None:
    clock = Scheduler(runtime.db, runtime.catalogs, "Asia/Shanghai", nice=5)
    thread = clock.start(interval=3600)
    try:
        tid = thread.native_id
        assert tid is not None
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        deadline = time.monotonic() + 5
        while os.getpriority(os.PRIO_PROCESS, tid) == mine and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, tid) == min(mine + 5, 19)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine, "only the clock's thread"
    finally:
        clock.stop()
        thread.join(5)
