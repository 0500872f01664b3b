"""Storage guarantees, asserted on real connections of both databases."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from prometheus_client import REGISTRY
from sqlalchemy import Engine, event, insert, text
from sqlalchemy.exc import DBAPIError

from credo.runtime import BACKGROUND_CONNECTIONS, open_database
from credo.settings import load_settings
from credo.store import migrate
from credo.store.db import Database, make_engine
from credo.store.tables import CHECK_CALLS_INDEX, metadata, records, subjects


def test_every_sqlite_connection_is_durable_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", pool_size=3)
    conns = [engine.connect() for _ in range(3)]  # three distinct pooled connections
    for conn in conns:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -256  # KiB, not SQLite's 2 MiB
        conn.close()
    engine.dispose()


def test_sqlite_write_transactions_begin_immediate(tmp_path: Path) -> None:
    """A writer takes the write lock at BEGIN: a second writer waits there, a reader does not."""
    db = Database.from_url(f"sqlite:///{tmp_path / 'x.db'}")
    with db.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    holding = threading.Event()
    release = threading.Event()
    second_began = threading.Event()

    def hold() -> None:
        with db.begin():
            holding.set()
            release.wait(10)

    def second_writer() -> None:
        # With a deferred BEGIN this would go straight through: nothing is written.
        with db.begin():
            second_began.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    other = threading.Thread(target=second_writer)
    other.start()
    try:
        assert not second_began.wait(0.5), "a second writer began while the first held the lock"
        with db.read() as conn:  # WAL + deferred BEGIN: readers are never blocked
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        release.set()
        holder.join()
        other.join()
    assert second_began.is_set()
    db.dispose()


def test_migrations_match_the_tables_the_code_queries(db: Database) -> None:
    def described(name: str | None, *_: object) -> bool:  # not the databases' own check-call index
        return not (name or "").startswith(CHECK_CALLS_INDEX)

    with db.begin() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": described})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_database_is_at_the_newest_migration(db: Database) -> None:
    with db.read() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()


def _one_record(conn: object) -> None:
    now = datetime.now(UTC)
    sid = conn.execute(  # type: ignore[attr-defined]
        insert(subjects)
        .values(kind="person", identifier="11010519491231002X", created_at=now)
        .returning(subjects.c.id)
    ).scalar_one()
    conn.execute(  # type: ignore[attr-defined]
        insert(records).values(
            seq=1,
            agency="CN-SPC",
            agency_ref="r1",
            kind="incident",
            subject_id=sid,
            rule="X",
            rule_version=1,
            jurisdiction="CN",
            occurred_on=date(2024, 1, 1),
            recorded_at=now,
            evidence="",
            target_seq=None,
            content_hash=b"\0" * 32,
            leaf_hash=b"\0" * 32,
        )
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE records SET evidence = 'changed'",
        "DELETE FROM records",
        "UPDATE tree_heads SET checkpoint = ''",
        "DELETE FROM quarantine",
    ],
)
def test_append_only_tables_refuse_update_and_delete(db: Database, statement: str) -> None:
    with db.begin() as conn:
        _one_record(conn)
    with pytest.raises(DBAPIError, match="append-only"), db.begin() as conn:
        conn.execute(
            text("INSERT INTO tree_heads VALUES (1, :r, 'c', :t)"), {"r": b"\0" * 32, "t": datetime.now(UTC)}
        )
        conn.execute(
            text(
                "INSERT INTO quarantine (agency, source, raw, reasons, received_at) "
                "VALUES ('a', 's', '{}', '[]', :t)"
            ),
            {"t": datetime.now(UTC)},
        )
        conn.execute(text(statement))


def test_postgres_refuses_truncate_of_the_ledger(postgresql_engine: Engine) -> None:
    with pytest.raises(DBAPIError, match="append-only"), postgresql_engine.begin() as conn:
        conn.execute(text("TRUNCATE records CASCADE"))


def test_postgres_commits_synchronously(postgresql_engine: Engine) -> None:
    with postgresql_engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        assert conn.exec_driver_sql("SHOW fsync").scalar() == "on"


def test_a_busy_worker_keeps_its_connections_open_instead_of_reopening_them(tmp_path: Path) -> None:
    settings = load_settings({}).replace(database_url=f"sqlite:///{tmp_path / 'pool.db'}", worker_threads=4)
    db = open_database(settings)
    opened = 0

    def count(*_: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(db.engine, "connect", count)
    threads = settings.worker_threads + BACKGROUND_CONNECTIONS  # every thread a worker may run
    start = threading.Barrier(threads)

    def reader() -> None:
        for _ in range(5):  # bursts: all threads at once, then all idle
            start.wait()
            with db.read() as conn:
                conn.execute(text("SELECT 1"))
                time.sleep(0.005)
            start.wait()

    workers = [threading.Thread(target=reader) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    db.dispose()
    # At most one connection per thread, ever: none opened and closed again per transaction.
    assert opened <= threads


def _autocheckpoint(db: Database) -> int:
    with db.read() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def _write_pages(db: Database, pages: int) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS blob (b BLOB)")
        conn.exec_driver_sql("INSERT INTO blob VALUES (zeroblob(?))", (pages * 4096,))


def test_sqlite_commits_leave_checkpoints_to_the_background_thread(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = Database.from_url(f"sqlite:///{path}")
    assert _autocheckpoint(db) == 1000  # SQLite's default, without a checkpointer
    with db.checkpoints(interval=3600) as checkpointer:  # started, but not due within the test
        assert checkpointer is not None
        assert _autocheckpoint(db) == 0
        _write_pages(db, 2000)  # twice the threshold at which a commit would checkpoint
        # The commit wrote its pages to the WAL only: the database file did not grow.
        assert path.stat().st_size < 100 * 4096
        assert Path(f"{path}-wal").stat().st_size > 2000 * 4096
    assert _autocheckpoint(db) == 1000  # connections opened after it stopped checkpoint again
    db.dispose()


def test_the_checkpointer_copies_the_wal_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = Database.from_url(f"sqlite:///{path}")
    with db.checkpoints(interval=0.01) as checkpointer:
        assert checkpointer is not None
        _write_pages(db, 2000)
        checkpointer.wait_for_checkpoint()
        checkpointer.wait_for_checkpoint()  # one that began after the commit
        assert path.stat().st_size > 2000 * 4096
    db.dispose()


def test_a_failed_checkpoint_is_counted_and_logged_and_the_next_round_checkpoints_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, the first exception ended the thread, and with it every checkpoint: the WAL
    grew for as long as the worker ran (its connections no longer checkpoint themselves)."""
    path = tmp_path / "wal.db"
    db = Database.from_url(f"sqlite:///{path}")

    def failures() -> float:
        return REGISTRY.get_sample_value("credo_upkeep_failures_total", {"task": "wal-checkpoint"}) or 0.0

    before = failures()
    with db.checkpoints(interval=0.2) as checkpointer:
        assert checkpointer is not None
        checkpointer.wait_for_checkpoint()
        # Between two rounds (0.2 s apart), the connection the rounds keep goes bad under them.
        kept = checkpointer._conn
        assert kept is not None and kept.connection.dbapi_connection is not None
        kept.connection.dbapi_connection.close()
        deadline = time.monotonic() + 10
        while checkpointer.health.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        _write_pages(db, 2000)
        checkpointer.wait_for_checkpoint()
        checkpointer.wait_for_checkpoint()  # one that began after the commit, on a new connection
        assert path.stat().st_size > 2000 * 4096
    assert checkpointer.health.failed == 1
    assert (checkpointer.health.last_error or "").startswith("ProgrammingError: Cannot operate on a closed")
    assert failures() == before + 1
    lines = [(r.getMessage(), r.exc_info is not None) for r in caplog.records if r.name == "credo.upkeep"]
    assert lines == [
        ("wal-checkpoint: a round failed; the next tries again", True),
        ("wal-checkpoint: a round completed after 1 that failed", False),
    ]
    db.dispose()


def test_under_back_to_back_commits_the_checkpointer_keeps_the_wal_restarting(tmp_path: Path) -> None:
    """A WAL restarts only when a writer begins after every frame was copied and before
    anyone appended: never, under commits back to back (the check log's WAL grew ~30 MB/s)."""
    path = tmp_path / "wal.db"
    db = Database.from_url(f"sqlite:///{path}")
    _write_pages(db, 1)
    with db.checkpoints(interval=0.002) as checkpointer:
        assert checkpointer is not None
        checkpointer.restart_frames = 200
        deadline = time.monotonic() + 30
        written = 0
        while written < 4_000 and time.monotonic() < deadline:  # 16 MB, no pause between commits
            with db.begin() as conn:
                conn.exec_driver_sql("INSERT INTO blob VALUES (zeroblob(?))", (8 * 4096,))
            written += 9  # frames: 8 pages of blob, about one of the table's
        assert checkpointer.restarts > 0
        # The file is as long as the most frames the WAL held between restarts.
        assert Path(f"{path}-wal").stat().st_size < 1_500 * 4096
    db.dispose()


def test_checkpoints_are_sqlite_files_only(db: Database, tmp_path: Path) -> None:
    with db.checkpoints() as bound:  # a test's bound connection: nothing to run
        assert bound is None
    memory = Database.from_url("sqlite://")
    with memory.checkpoints() as in_memory:
        assert in_memory is None
    memory.dispose()
