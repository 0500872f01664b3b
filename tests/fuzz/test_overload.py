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
from credo.store.db import Database, Overloaded


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


def test_writers_beyond_the_queue_are_refused_at_once_and_a_long_wait_is_refused_too(
    sqlite_db: Database,
) -> None:
    release, holding = threading.Event(), threading.Event()
    holder = hold_writer(sqlite_db, release, holding)
    outcomes: list[str] = []

    def wait_in_queue() -> None:
        try:
            with sqlite_db.begin():
                outcomes.append("wrote")
        except Overloaded as exc:
            outcomes.append(str(exc))

    waiter = threading.Thread(target=wait_in_queue)
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
    seeded: Seeded = seeded_registry(tmp_path, catalogs)
    db = seeded.runtime.db
    db.max_waiting_writers = 0
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
            again = client.post(
                "/api/v1/me/appeals",
                json={"record_seq": seeded.record_seqs[0], "grounds": "not me"},
                headers=seeded.headers("subject"),
            )
            assert again.status_code == 201, again.text  # nothing was half-done by the refusal
    finally:
        release.set()
        db.dispose()
