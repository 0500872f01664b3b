"""SQLite's single writer behind a bounded queue: beyond it, ``Overloaded`` and a 503 with Retry-After."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fuzz.registry import Seeded, seeded_registry
from sqlalchemy import text

from credo.api.app import create_app
from credo.catalog.registry import Registry
from credo.lists.checklog import CheckLog
from credo.runtime import Runtime
from credo.settings import SettingsError, load_settings
from credo.store.db import Database, Overloaded, WriterLock


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database.from_url(f"sqlite:///{tmp_path / 'w.db'}")
    db.max_waiting_writers, db.max_writer_wait = 1, 0.3
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield db
    db.dispose()


def hold_writer(db: Database, release: threading.Event, holding: threading.Event) -> threading.Thread:
    def run() -> None:
        with db.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=run)
    thread.start()
    assert holding.wait(5)
    return thread


def write_or_note(db: Database, outcomes: list[str]) -> None:
    """Write, or note why the database refused."""
    try:
        with db.begin():
            outcomes.append("wrote")
    except Overloaded as exc:
        outcomes.append(str(exc))


def test_writers_beyond_the_queue_are_refused_at_once_and_a_long_wait_is_refused_too(
    sqlite_db: Database,
) -> None:
    release, holding = threading.Event(), threading.Event()
    holder = hold_writer(sqlite_db, release, holding)
    outcomes: list[str] = []
    waiter = threading.Thread(target=write_or_note, args=(sqlite_db, outcomes))
    waiter.start()
    time.sleep(0.05)  # the waiter is queued: the queue (of one) is full
    started = time.monotonic()
    with pytest.raises(Overloaded, match="1 writers already wait"), sqlite_db.begin():
        pass
    assert time.monotonic() - started < 0.1, "refused at once, not after a wait"
    waiter.join()
    assert outcomes and outcomes[0].startswith("waited 0.3 s")
    release.set()
    holder.join()
    with sqlite_db.begin() as conn:  # free again
        conn.execute(text("INSERT INTO t VALUES (2)"))


def test_background_writers_that_must_not_be_shed_wait_their_turn(sqlite_db: Database) -> None:
    sqlite_db.max_waiting_writers = 0
    release, holding = threading.Event(), threading.Event()
    holder = hold_writer(sqlite_db, release, holding)
    threading.Timer(0.5, release.set).start()
    with sqlite_db.begin(shed=False) as conn:  # waits longer than max_writer_wait, then writes
        conn.execute(text("INSERT INTO t VALUES (4)"))
    holder.join()


def test_the_api_answers_503_with_retry_after_when_the_writer_queue_is_full(
    tmp_path: Path, catalogs: Registry
) -> None:
    seeded: Seeded = seeded_registry(tmp_path, catalogs, max_waiting_writers=0)  # CREDO_MAX_WAITING_WRITERS
    db = seeded.runtime.db
    release, holding = threading.Event(), threading.Event()
    try:
        with TestClient(create_app(seeded.runtime)) as client:

            def hold() -> None:
                with db.begin():
                    holding.set()
                    release.wait(5)

            holder = threading.Thread(target=hold)
            holder.start()
            assert holding.wait(5)
            res = client.post(
                "/api/v1/me/appeals",
                json={"record_seq": seeded.record_seqs[0], "grounds": "not me"},
                headers=seeded.headers("subject"),
            )
            release.set()
            holder.join()
            assert res.status_code == 503 and res.headers["retry-after"] == "1"
            assert res.headers["content-type"] == "application/problem+json"
            assert "writers already wait" in res.json()["detail"]
            # Retried as Retry-After asks: with no writer queue, the app's own writers (the access
            # log's row of the refused call) can still hold the writer for a moment (CI saw it).
            for _ in range(50):
                again = client.post(
                    "/api/v1/me/appeals",
                    json={"record_seq": seeded.record_seqs[0], "grounds": "not me"},
                    headers=seeded.headers("subject"),
                )
                if again.status_code != 503:
                    break
                time.sleep(0.05)
            assert again.status_code == 201, again.text  # nothing was half-done by the refusal
    finally:
        release.set()
        db.dispose()


@pytest.mark.parametrize(("waiting", "wait"), [(0, 5.0), (1, 0.4), (3, 0.6)])
def test_the_writer_queue_is_as_long_and_waits_as_long_as_the_settings_say(
    tmp_path: Path, waiting: int, wait: float
) -> None:
    settings = load_settings(
        {
            "CREDO_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
            "CREDO_MAX_WAITING_WRITERS": str(waiting),
            "CREDO_MAX_WRITER_WAIT": str(wait),
        }
    )
    db = Runtime.open(settings).db
    release, holding = threading.Event(), threading.Event()
    try:
        with db.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        holder = hold_writer(db, release, holding)
        waiters: list[threading.Thread] = []
        outcomes: list[str] = []
        for _ in range(waiting):  # fill the queue
            waiters.append(threading.Thread(target=write_or_note, args=(db, outcomes)))
            waiters[-1].start()
        time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(Overloaded, match=f"{waiting} writers already wait"), db.begin():
            pass
        assert time.monotonic() - started < 0.1, "the one beyond the queue is refused at once"
        for waiter in waiters:
            waiter.join()
        assert outcomes == [f"waited {wait:g} s for the database writer; retry shortly"] * waiting
    finally:
        release.set()
        db.dispose()
    holder.join()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CREDO_MAX_WAITING_WRITERS", "-1", "at least 0"),
        ("CREDO_MAX_WRITER_WAIT", "-0.5", "at least 0"),  # a negative wait would wait for ever
        ("CREDO_MAX_WRITER_WAIT", "inf", "expected a finite number"),
        ("CREDO_MAX_WRITER_WAIT", "nan", "expected a finite number"),
        ("CREDO_MAX_WRITER_WAIT", "soon", "expected float"),
        ("CREDO_RATE_PER_MINUTE", "0", "at least 1"),
        ("CREDO_ACCESS_LOG_QUEUE", "0", "at least 1"),  # 0 would be an unbounded queue
        ("CREDO_MAX_BATCH", "0", "at least 1"),
    ],
)
def test_a_limit_out_of_its_range_is_refused_naming_the_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=f"{variable}: {message}"):
        load_settings({variable: value})


def wait_until_queued(lock: WriterLock, n: int) -> None:
    deadline = time.monotonic() + 5
    while lock.waiting < n:
        assert time.monotonic() < deadline, f"{lock.waiting} of {n} writers queued"
        time.sleep(0.005)


def test_an_urgent_writer_takes_the_writer_before_those_already_waiting() -> None:
    lock = WriterLock()
    order: list[str] = []

    def take(name: str, urgent: bool) -> None:
        assert lock.acquire(urgent=urgent, timeout=5)
        order.append(name)
        lock.release()

    assert lock.acquire()
    first = threading.Thread(target=take, args=("ingest", False))
    first.start()
    wait_until_queued(lock, 1)
    urgent = threading.Thread(target=take, args=("check log", True))
    urgent.start()
    wait_until_queued(lock, 2)
    lock.release()
    first.join()
    urgent.join()
    assert order == ["check log", "ingest"]
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()


def test_the_check_log_commits_before_ingest_batches_already_waiting(sqlite_db: Database) -> None:
    # A relying party's answer waits for its check-log commit; it must not queue behind ingest.
    sqlite_db.max_waiting_writers, sqlite_db.max_writer_wait = 4, 5.0
    release, holding = threading.Event(), threading.Event()
    holder = hold_writer(sqlite_db, release, holding)
    order: list[str] = []
    batches = [threading.Thread(target=lambda: write_or_note(sqlite_db, order)) for _ in range(2)]
    for t in batches:
        t.start()
    assert isinstance(sqlite_db._writer, WriterLock)
    wait_until_queued(sqlite_db._writer, 2)
    log = CheckLog(sqlite_db)
    logged = threading.Thread(target=lambda: (log.commit([]), order.append("check log")))
    logged.start()
    wait_until_queued(sqlite_db._writer, 3)
    release.set()
    for t in (holder, *batches, logged):
        t.join()
    assert order == ["check log", "wrote", "wrote"]
