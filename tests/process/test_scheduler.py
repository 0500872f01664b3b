"""The clock: an overdue appeal suspends its record and the listing it caused, and the subject is told."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from factories import RecordFactory, person_id
from sqlalchemy import select

from credo.catalog.registry import Registry
from credo.ids import parse_subject_ref
from credo.ledger.subjects import subject_number
from credo.lists.derive import Plan
from credo.lists.services import build_index
from credo.process import appeals, scheduler
from credo.process.intake import ingest_and_notify
from credo.process.scheduler import Scheduler
from credo.runtime import Runtime
from credo.store.db import Database
from credo.store.tables import clock_runs, notices

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


def test_the_clock_thread_runs_at_the_priority_of_requests(runtime: Runtime) -> None:
    """It shares the worker's GIL: niced, it held the GIL off the CPUs and paused every request."""
    clock = Scheduler(runtime.db, runtime.catalogs, "Asia/Shanghai")
    thread = clock.start(interval=3600)
    try:
        tid = thread.native_id
        assert tid is not None
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        deadline = time.monotonic() + 0.5  # past the thread's start, where it would renice itself
        while time.monotonic() < deadline:
            assert os.getpriority(os.PRIO_PROCESS, tid) == mine
            time.sleep(0.01)
    finally:
        clock.stop()
        thread.join(5)


def test_a_clock_given_a_nice_value_runs_its_thread_at_it_and_only_that_thread(runtime: Runtime) -> None:
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


def test_a_restart_on_the_same_day_under_the_same_catalogs_skips_the_full_refresh(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    full: list[datetime] = []
    real = scheduler.refresh_all

    def counted(db: Database, catalogs: Registry, now: datetime) -> Plan:
        full.append(now)
        return real(db, catalogs, now)

    monkeypatch.setattr(scheduler, "refresh_all", counted)
    morning = DAY0 + timedelta(days=40)
    Scheduler(runtime.db, runtime.catalogs, "Asia/Shanghai").tick(morning)
    assert len(full) == 1
    restarted = Scheduler(runtime.db, runtime.catalogs, "Asia/Shanghai")
    restarted.tick(morning + timedelta(hours=3))
    assert len(full) == 1, "the day's refresh already ran: a restart does not run it again"
    restarted.tick(morning + timedelta(days=1))
    assert len(full) == 2, "a new day in the scheme's timezone"
    with runtime.db.read() as conn:
        runs = conn.execute(select(clock_runs.c.kind, clock_runs.c.day)).all()
    assert [(k, d.isoformat()) for k, d in runs] == [
        ("full_refresh", "2026-04-10"),
        ("full_refresh", "2026-04-11"),
    ]


def test_new_catalogs_call_for_a_full_refresh_on_the_same_day(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    morning = DAY0 + timedelta(days=40)
    Scheduler(runtime.db, runtime.catalogs, "Asia/Shanghai").tick(morning)
    monkeypatch.setattr(type(runtime.catalogs), "digest", property(lambda self: "0" * 64))
    assert Scheduler(runtime.db, runtime.catalogs, "Asia/Shanghai").refreshed_on() is None


def test_a_clock_stopped_and_started_again_ticks_again(runtime: Runtime) -> None:
    """A worker's second lifespan starts the same clock: it must not find its stop still set."""
    clock = Scheduler(runtime.db, runtime.catalogs, "Asia/Shanghai")
    clock.start(interval=0.01).join(0)
    clock.stop()
    thread = clock.start(interval=0.01)
    try:
        done = clock.health.completed
        deadline = time.monotonic() + 10
        while clock.health.completed < done + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert clock.health.completed >= done + 2 and thread.is_alive()
    finally:
        clock.stop()
        thread.join(5)
