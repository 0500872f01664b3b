"""The bulk helpers store exactly what SQLAlchemy stores, at any size; writers queue without polling."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.exc import IntegrityError

from credo.store.db import Database, insert_many, make_engine, one_of
from credo.store.tables import records, subjects

MOMENT = datetime(2026, 11, 26, 4, 5, 6, 789012, tzinfo=UTC)


def _subject_rows(n: int, prefix: str = "S") -> list[tuple[Any, ...]]:
    return [("person", f"{prefix}{i:06d}", MOMENT) for i in range(n)]


def test_one_of_takes_more_values_than_a_statement_may_have_parameters(db: Database) -> None:
    # SQLite allows 32766 bound parameters; the list is bound as one.
    with db.begin() as conn:
        insert_many(conn, subjects, ("kind", "identifier", "created_at"), _subject_rows(40_000))
        wanted = [f"S{i:06d}" for i in range(0, 40_000, 2)] + ["nobody"]
        found = conn.execute(
            select(func.count()).select_from(subjects).where(one_of(conn, subjects.c.identifier, wanted))
        ).scalar_one()
        assert found == 20_000
        numbers = conn.execute(select(subjects.c.id).order_by(subjects.c.id).limit(3)).scalars().all()
        assert conn.execute(
            select(func.count()).select_from(subjects).where(one_of(conn, subjects.c.id, numbers))
        ).scalar_one() == 3


def test_insert_many_stores_what_sqlalchemy_stores(db: Database) -> None:
    with db.begin() as conn:
        conn.execute(insert(subjects).values(kind="person", identifier="A", created_at=MOMENT))
        insert_many(conn, subjects, ("kind", "identifier", "created_at"), [("person", "B", MOMENT)])
        raw = "SELECT identifier, created_at FROM subjects WHERE identifier IN ('A', 'B') ORDER BY identifier"
        (_, by_sqlalchemy), (_, by_bulk) = conn.exec_driver_sql(raw).all()
        assert by_bulk == by_sqlalchemy  # SQLite: the very same text
        sid = conn.execute(select(subjects.c.id).where(subjects.c.identifier == "A")).scalar_one()
        row = {
            "agency": "CN-SPC",
            "kind": "incident",
            "subject_id": sid,
            "rule": "X",
            "rule_version": 1,
            "jurisdiction": "CN",
            "occurred_on": date(2024, 2, 29),
            "recorded_at": MOMENT,
            "evidence": "é ' \\",
            "target_seq": None,
            "content_hash": bytes(range(32)),
            "leaf_hash": bytes(32),
        }
        conn.execute(insert(records).values(seq=1, agency_ref="r1", **row))
        columns = ("seq", "agency_ref", *row)
        insert_many(conn, records, columns, [(2, "r2", *row.values())])
        stored = conn.exec_driver_sql(
            "SELECT occurred_on, recorded_at, evidence, target_seq, content_hash FROM records ORDER BY seq"
        ).all()
        assert stored[0] == stored[1]
        read_back = conn.execute(select(records.c.occurred_on).order_by(records.c.seq)).scalars().all()
        assert read_back == [date(2024, 2, 29)] * 2


def test_insert_many_skips_existing_rows_only_when_asked(db: Database) -> None:
    with db.begin() as conn:
        insert_many(conn, subjects, ("kind", "identifier", "created_at"), _subject_rows(3))
        insert_many(
            conn, subjects, ("kind", "identifier", "created_at"), _subject_rows(5), skip_existing=True
        )
        assert conn.execute(select(func.count()).select_from(subjects)).scalar_one() == 5
    with pytest.raises(IntegrityError), db.begin() as conn:
        insert_many(conn, subjects, ("kind", "identifier", "created_at"), _subject_rows(1))


def test_insert_many_splits_what_one_statement_cannot_bind(db: Database) -> None:
    with db.begin() as conn:  # 25,000 rows x 3 columns: more parameters than one SQLite statement takes
        insert_many(conn, subjects, ("kind", "identifier", "created_at"), _subject_rows(25_000))
        assert conn.execute(select(func.count()).select_from(subjects)).scalar_one() == 25_000


def test_a_queued_sqlite_writer_waits_on_a_lock_not_in_sqlites_polling(tmp_path: Path) -> None:
    """SQLite's busy handler sleeps up to 100 ms between tries, so a writer
    queued there starts up to 100 ms after the lock is free. Writers of one
    process wait on a lock of their own instead, and only then BEGIN: the
    second writer's BEGIN IMMEDIATE finds the database free."""
    db = Database.from_url(f"sqlite:///{tmp_path / 'x.db'}")
    begun: dict[str, float] = {}

    def before(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement == "BEGIN IMMEDIATE":
            conn.info["began"] = time.monotonic()

    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement == "BEGIN IMMEDIATE":
            begun[threading.current_thread().name] = time.monotonic() - conn.info["began"]

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    holding = threading.Event()

    def first() -> None:
        with db.begin():
            holding.set()
            time.sleep(0.6)

    def second() -> None:
        holding.wait(5)
        with db.begin():
            pass

    threads = [threading.Thread(target=first, name="first"), threading.Thread(target=second, name="second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    db.dispose()
    assert begun["second"] < 0.2, f"the second writer sat {begun['second']:.2f} s in BEGIN IMMEDIATE"


def test_postgres_statements_are_not_prepared_on_the_server(postgresql_engine: Engine) -> None:
    """After five runs psycopg would prepare a statement, and PostgreSQL may keep
    a generic plan made while a table was small: a sequential scan for
    ``= ANY(array)`` look-ups that grows with the ledger."""
    engine = make_engine(str(postgresql_engine.url.render_as_string(hide_password=False)))
    with engine.connect() as conn:
        assert conn.connection.driver_connection.prepare_threshold is None  # type: ignore[union-attr]
    engine.dispose()
