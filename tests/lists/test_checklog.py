"""The check log, packed: one row per call, and each subject sees exactly the items about them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from factories import person_id
from fastapi.testclient import TestClient
from helpers import POSTGRES_URL, postgres_schema
from lists.test_checks import airline, client, register_airline  # noqa: F401 - the fixture
from sqlalchemy import Engine, event, func, select, text

from credo.access.services import create_token
from credo.api.app import create_app
from credo.catalog.registry import Registry
from credo.ids import parse_subject_ref
from credo.lists.checklog import (
    _ABOUT,
    Call,
    CheckLog,
    IndexMerger,
    check_by_ref,
    checks_about,
    copy_calls,
    index_calls,
    index_database,
    index_merges,
    log_database,
    prepare,
    subject_checks,
    write_calls,
)
from credo.process.export import subject_file
from credo.runtime import Runtime, bootstrap
from credo.settings import Settings
from credo.store import migrate
from credo.store.db import Database
from credo.store.tables import check_calls, subjects

NOW = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)
OLD_ROW = "INSERT INTO checks VALUES (:ref, 'CA', :subject, :measure, 'p', :decision, NULL, :at)"


def _subject_token(runtime: Runtime, who: str) -> str:
    with runtime.db.begin() as conn:
        sid = (
            conn.execute(select(subjects.c.id).where(subjects.c.identifier == who)).scalar()
            or conn.execute(
                subjects.insert()
                .values(kind="person", identifier=who, created_at=NOW)
                .returning(subjects.c.id)
            ).scalar_one()
        )
        return create_token(conn, "subject", subject_id=sid)


def test_a_manifest_is_one_logged_call_and_each_subject_sees_exactly_their_items(
    runtime: Runtime,
    airline: str,  # noqa: F811
) -> None:
    a, b = person_id(), person_id()
    items = [
        {"subject": a, "measure": "air-travel"},
        {"subject": b, "measure": "air-travel"},
        {"subject": a, "measure": "high-speed-rail"},
    ]
    answers = client(runtime, airline).post("/api/v1/checks", json=items).json()
    refs = [x["ref"] for x in answers]
    with runtime.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(check_calls)).scalar() == 1
    mine = client(runtime, _subject_token(runtime, a)).get("/api/v1/me/checks").json()
    assert sorted((c["ref"], c["measure"]) for c in mine) == [
        (refs[0], "air-travel"),
        (refs[2], "high-speed-rail"),
    ]
    assert {tuple(sorted(c)) for c in mine} == {
        ("checked_at", "decision", "listing_id", "measure", "party", "purpose", "ref", "subject")
    }
    assert {c["subject"] for c in mine} == {str(parse_subject_ref(a))}
    theirs = client(runtime, _subject_token(runtime, b))
    assert [c["ref"] for c in theirs.get("/api/v1/me/checks").json()] == [refs[1]]
    assert theirs.get(f"/api/v1/me/checks/{refs[1]}").json()["measure"] == "air-travel"
    for ref in (refs[0], refs[2], refs[1] + "0", refs[1][:-2], "nope", "-1", refs[1][:-1] + "9"):
        assert theirs.get(f"/api/v1/me/checks/{ref}").status_code == 404, ref


def test_the_newest_checks_first_and_at_most_limit(runtime: Runtime) -> None:
    who = str(parse_subject_ref(person_id()))
    other = str(parse_subject_ref(person_id()))
    calls = [
        Call(
            f"c{i}",
            "CA",
            "p",
            datetime(2024, 6, 1 + i, tzinfo=UTC),
            [who, other, who],
            ["air-travel"] * 3,
            ["allowed", "denied", "granted"],
        )
        for i in range(3)
    ]
    with runtime.db.begin() as conn:
        write_calls(conn, calls)
    with runtime.db.read() as conn:
        newest = checks_about(conn, who, limit=3)
        oldest = checks_about(conn, who, newest_first=False)
        assert check_by_ref(conn, other, "c1-1")["decision"] == "denied"  # type: ignore[index]
        assert check_by_ref(conn, other, "c1-2") is None
    assert [c["ref"] for c in newest] == ["c2-0", "c2-2", "c1-0"]
    assert [c["ref"] for c in oldest] == ["c0-0", "c0-2", "c1-0", "c1-2", "c2-0", "c2-2"]
    assert [c["decision"] for c in oldest[:2]] == ["allowed", "granted"]


def test_a_batch_of_calls_is_logged_in_one_commit_and_a_subject_export_lists_them(runtime: Runtime) -> None:
    who = person_id()
    subject = str(parse_subject_ref(who))
    log = CheckLog(runtime.db)
    log.commit([Call(f"k{i}", "CA", "p", NOW, [subject], ["air-travel"], ["allowed"]) for i in range(3)])
    with runtime.db.begin() as conn:
        sid = conn.execute(
            subjects.insert().values(kind="person", identifier=who, created_at=NOW).returning(subjects.c.id)
        ).scalar_one()
        exported = subject_file(conn, runtime.catalogs, sid, now=NOW)
    assert [c["ref"] for c in exported["checks"]] == ["k0-0", "k1-0", "k2-0"]


def test_migration_0008_moves_the_checks_logged_before_it_and_back(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'old.db'}")
    a, b = "person:11010519491231002X", "person:110105194912310029"
    old = [
        ("abc123-0", a, "air-travel", "allowed"),
        ("abc123-1", b, "air-travel", "denied"),
        ("abc123-2", a, "high-speed-rail", "denied"),
        ("def456-0", a, "air-travel", "allowed"),
    ]
    try:
        with db.begin() as conn:
            migrate.upgrade(conn, "0007")
            for i, (ref, subject, measure, decision) in enumerate(old):
                conn.execute(
                    text(OLD_ROW),
                    {
                        "ref": ref,
                        "subject": subject,
                        "measure": measure,
                        "decision": decision,
                        "at": f"2024-06-0{1 + i // 3} 02:00:00.000000",
                    },
                )
            migrate.upgrade(conn)
            assert conn.execute(select(func.count()).select_from(check_calls)).scalar() == 2
            seen = checks_about(conn, a, newest_first=False)
            assert [(c["ref"], c["measure"], c["decision"]) for c in seen] == [
                ("abc123-0", "air-travel", "allowed"),
                ("abc123-2", "high-speed-rail", "denied"),
                ("def456-0", "air-travel", "allowed"),
            ]
            assert check_by_ref(conn, b, "abc123-1")["decision"] == "denied"  # type: ignore[index]
            config = migrate.alembic_config(conn)
            command.downgrade(config, "0007")
            back = conn.execute(text("SELECT ref, subject, measure, decision FROM checks ORDER BY ref")).all()
        assert [tuple(r) for r in back] == sorted(old)
    finally:
        db.dispose()


@pytest.mark.parametrize("n", [1, 300])
def test_a_started_check_log_answers_once_committed(runtime: Runtime, n: int) -> None:
    log = CheckLog(runtime.db)
    log.start()
    subject = str(parse_subject_ref(person_id()))
    try:
        asyncio.run(log.write(Call("w1", "CA", "p", NOW, [subject] * n, ["air-travel"] * n, ["allowed"] * n)))
    finally:
        log.stop()
    with runtime.db.read() as conn:
        assert len(checks_about(conn, subject)) == n


@contextmanager
def _writer_held(db: Database) -> Iterator[None]:
    """The block runs while another thread holds ``db``'s writer in a transaction."""
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with db.begin():
            held.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        yield
    finally:
        done.set()
        holder.join()


def _file_registry(tmp_path: Path) -> Database:
    registry = Database.from_url(f"sqlite:///{tmp_path / 'credo.db'}")
    with registry.begin() as conn:
        migrate.upgrade(conn)
    return registry


def test_on_sqlite_the_check_log_has_a_file_of_its_own_whose_writer_never_waits_for_the_registry(
    tmp_path: Path,
) -> None:
    registry = _file_registry(tmp_path)
    log = log_database(registry)
    assert log is not registry and log.engine.url.database == f"{tmp_path / 'credo.db'}-checks"
    assert prepare(registry, log) == 0
    subject = str(parse_subject_ref(person_id()))
    with _writer_held(registry):  # by an ingest batch, say
        logger = threading.Thread(
            target=CheckLog(log).commit,
            args=([Call("w", "CA", "p", NOW, [subject], ["air-travel"], ["allowed"])],),
        )
        logger.start()
        logger.join(5)
        committed = not logger.is_alive()
    logger.join()
    assert committed, "the check log waited for the registry's writer"
    with log.read() as conn:
        assert [c["ref"] for c in checks_about(conn, subject)] == ["w-0"]
    with registry.read() as conn:
        assert conn.execute(select(func.count()).select_from(check_calls)).scalar() == 0
    registry.dispose()


def test_prepare_copies_in_the_calls_logged_in_the_registry_once(tmp_path: Path) -> None:
    """Calls logged in the registry's own file (before it had a check log of its own, or put
    back by a restore) are copied into the log's file, once, keeping their refs."""
    registry = _file_registry(tmp_path)
    subject = str(parse_subject_ref(person_id()))
    with registry.begin() as conn:
        write_calls(
            conn, [Call(f"r{i}", "CA", "p", NOW, [subject], ["air-travel"], ["denied"]) for i in range(3)]
        )
    log = log_database(registry)
    assert prepare(registry, log) == 3
    assert prepare(registry, log) == 0
    CheckLog(log).commit([Call("n", "CA", "p", NOW, [subject], ["air-travel"], ["allowed"])])
    assert copy_calls(registry, log) == 0  # the new call's seq follows the copied ones
    with log.read() as conn:
        found = checks_about(conn, subject, newest_first=False)
    assert [(c["ref"], c["decision"]) for c in found] == [
        ("r0-0", "denied"),
        ("r1-0", "denied"),
        ("r2-0", "denied"),
        ("n-0", "allowed"),
    ]
    registry.dispose()


def test_the_runtime_logs_checks_in_the_log_file_and_the_subject_reads_them_there(
    tmp_path: Path, catalogs: Registry, settings: Settings
) -> None:
    registry = _file_registry(tmp_path)
    runtime = Runtime(settings=settings, db=registry, catalogs=catalogs)
    bootstrap(runtime)
    who = person_id()
    token = register_airline(runtime)
    with client(runtime, token) as http:
        answer = http.post("/api/v1/checks", json=[{"subject": who, "measure": "air-travel"}])
        assert answer.status_code == 200, answer.text
        ref = answer.json()[0]["ref"]
        mine = {"Authorization": f"Bearer {_subject_token(runtime, who)}"}
        assert [c["ref"] for c in http.get("/api/v1/me/checks", headers=mine).json()] == [ref]
        assert http.get(f"/api/v1/me/checks/{ref}", headers=mine).status_code == 200
        assert [c["ref"] for c in http.get("/api/v1/me/file", headers=mine).json()["checks"]] == [ref]
    with registry.read() as conn:
        assert conn.execute(select(func.count()).select_from(check_calls)).scalar() == 0
    with runtime.check_log_db.read() as conn:
        assert conn.execute(select(func.count()).select_from(check_calls)).scalar() == 1
    registry.dispose()


def _indexed_up_to(index: Database) -> int:
    with index.read() as conn:
        return int(conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM check_calls_indexed").scalar_one())


def test_on_sqlite_a_commit_writes_the_calls_alone_and_the_index_follows_in_its_own_file(
    tmp_path: Path,
) -> None:
    """Migration 0014: no check waits for the subject index; a subject sees their calls at once."""
    registry = _file_registry(tmp_path)
    log = log_database(registry)
    prepare(registry, log)
    index = index_database(log)
    assert index.engine.url.database == f"{tmp_path / 'credo.db'}-checks-index"
    who, other = (str(parse_subject_ref(person_id())) for _ in range(2))

    def call(i: int, *subjects: str) -> Call:
        return Call(
            f"c{i}",
            "CA",
            "p",
            NOW,
            list(subjects),
            ["air-travel"] * len(subjects),
            ["allowed"] * len(subjects),
        )

    CheckLog(log).commit([call(0, who, other), call(1, other)])
    assert _indexed_up_to(index) == 0  # the commit wrote the calls alone
    assert [c["ref"] for c in subject_checks(log, who)] == ["c0-0"]  # read one by one
    assert index_calls(log, index) == 2 and index_calls(log, index) == 0
    assert _indexed_up_to(index) == 2
    CheckLog(log).commit([call(2, who), call(3, other, who)])
    # the index's calls and those logged after its last, newest first and at most limit
    assert [c["ref"] for c in subject_checks(log, who)] == ["c3-1", "c2-0", "c0-0"]
    assert [c["ref"] for c in subject_checks(log, who, limit=2)] == ["c3-1", "c2-0"]
    assert [c["ref"] for c in subject_checks(log, other, newest_first=False)] == ["c0-1", "c1-0", "c3-0"]

    with _writer_held(log):  # by a group commit of checks, say
        assert index_calls(log, index) == 2  # did not wait for the log's writer
    assert [c["ref"] for c in subject_checks(log, who)] == ["c3-1", "c2-0", "c0-0"]
    registry.dispose()


def test_a_subject_is_one_whole_line_of_a_call_not_a_part_of_one(tmp_path: Path) -> None:
    """Calls after the index's last are read as they are: a subject whose text begins another's
    is not theirs (nor takes the place of one of theirs within ``limit``)."""
    registry = _file_registry(tmp_path)
    log = log_database(registry)
    prepare(registry, log)
    short, longer = "foreign:US-P1234", "foreign:US-P12345"
    CheckLog(log).commit(
        [
            Call("a", "CA", "p", NOW, [short], ["air-travel"], ["allowed"]),
            Call("b", "CA", "p", NOW, [longer], ["air-travel"], ["denied"]),
        ]
    )
    assert [c["ref"] for c in subject_checks(log, short, limit=1)] == ["a-0"]
    index_calls(log, index_database(log))
    assert [c["ref"] for c in subject_checks(log, short, limit=1)] == ["a-0"]
    registry.dispose()


def test_an_index_of_another_log_is_not_believed_and_is_filled_again(tmp_path: Path) -> None:
    """The index names its last call by ``seq`` and ``id``: a log put back from a backup (other
    calls under the same numbers) is read one by one until the index is filled again."""
    registry = _file_registry(tmp_path)
    log = log_database(registry)
    prepare(registry, log)
    index = index_database(log)
    who = str(parse_subject_ref(person_id()))
    CheckLog(log).commit([Call("first", "CA", "p", NOW, [who], ["air-travel"], ["allowed"])])
    assert index_calls(log, index) == 1
    with index.begin() as conn:  # as if another log's call 1 had been indexed
        conn.exec_driver_sql("UPDATE check_calls_indexed SET call_id = 'another'")
        conn.exec_driver_sql("INSERT INTO check_calls_index (rowid, subjects) VALUES (1, 'person:x')")
    assert [c["ref"] for c in subject_checks(log, who)] == ["first-0"]
    assert index_calls(log, index) == 1  # emptied, then filled from the log's first call
    with index.read() as conn:
        assert conn.exec_driver_sql("SELECT call_id FROM check_calls_indexed").scalar_one() == "first"
    assert subject_checks(log, "person:x") == []
    assert [c["ref"] for c in subject_checks(log, who)] == ["first-0"]
    registry.dispose()


def test_migration_0014_takes_the_index_out_of_the_commit_and_back(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'old.db'}")
    who = str(parse_subject_ref(person_id()))
    fts = "SELECT count(*) FROM check_calls_fts WHERE check_calls_fts MATCH :m"
    try:
        with db.begin() as conn:
            migrate.upgrade(conn, "0013")
            write_calls(conn, [Call("old", "CA", "p", NOW, [who], ["air-travel"], ["allowed"])])
            migrate.upgrade(conn)
            names = set(conn.exec_driver_sql("SELECT name FROM sqlite_master").scalars())
            assert "check_calls_fts_insert" not in names and "check_calls_fts" not in names
            assert {"check_calls_index", "check_calls_indexed"} <= names
            write_calls(conn, [Call("new", "CA", "p", NOW, [who], ["air-travel"], ["denied"])])
            assert [c["ref"] for c in checks_about(conn, who, newest_first=False)] == ["old-0", "new-0"]
            command.downgrade(migrate.alembic_config(conn), "0013")
            assert conn.execute(text(fts), {"m": f'"{who}"'}).scalar() == 2  # rebuilt from the calls
            write_calls(conn, [Call("later", "CA", "p", NOW, [who], ["air-travel"], ["allowed"])])
            assert conn.execute(text(fts), {"m": f'"{who}"'}).scalar() == 3  # and the trigger is back
    finally:
        db.dispose()


def test_a_server_on_sqlite_indexes_the_calls_in_the_background(
    tmp_path: Path, catalogs: Registry, settings: Settings
) -> None:
    registry = _file_registry(tmp_path)
    runtime = Runtime(
        settings=settings.replace(check_index_merge_interval=0.05),
        db=registry,
        catalogs=catalogs,
    )
    bootstrap(runtime)
    token = register_airline(runtime)
    index = index_database(runtime.check_log_db)
    with client(runtime, token) as http:
        answer = http.post("/api/v1/checks", json=[{"subject": person_id(), "measure": "air-travel"}])
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 10
        while _indexed_up_to(index) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert _indexed_up_to(index) == 1
    registry.dispose()


def test_postgresql_and_bound_databases_keep_the_check_log_in_the_registry(runtime: Runtime) -> None:
    assert runtime.check_log_db is runtime.db
    assert prepare(runtime.db, runtime.check_log_db) == 0


def test_on_postgresql_the_subject_index_has_room_for_a_second_of_calls(postgresql_engine: Engine) -> None:
    """64 MB of pending list (migration 0010), which the server merges in the background."""
    with postgresql_engine.connect() as conn:
        options = conn.execute(
            text("SELECT reloptions FROM pg_class WHERE oid = 'ix_check_calls_subjects'::regclass")
        ).scalar_one()
    assert options is not None and "gin_pending_list_limit=65536" in options


def test_on_postgresql_a_subjects_calls_are_found_through_the_index_of_hashed_keys(
    postgresql_engine: Engine,
) -> None:
    """The index keys 64-bit hashes (migration 0011: under half the CPU of text keys); the
    query must be the index's own expression, or each look-up reads the whole log."""
    who = str(parse_subject_ref(person_id()))
    with postgresql_engine.connect() as conn:
        outer = conn.begin()
        index = text("SELECT pg_get_indexdef('ix_check_calls_subjects'::regclass)")
        assert "credo_subject_keys(subjects)" in str(conn.execute(index).scalar())
        calls = [_call(i) for i in range(3)]
        calls[1] = Call("mine", "CA", "boarding", NOW, (who,), ("air-travel",), ("d",))
        write_calls(conn, calls)
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a table this small is read whole
        found = checks_about(conn, who)
        assert [check["ref"] for check in found] == ["mine-0"]
        query = "EXPLAIN SELECT seq FROM check_calls WHERE " + _ABOUT["postgresql"]
        plan = "\n".join(conn.execute(text(query), {"subject": who}).scalars())
        assert "Bitmap Index Scan on ix_check_calls_subjects" in plan
        outer.rollback()


def test_on_postgresql_a_calls_subjects_are_lz4_compressed_in_the_tables_own_pages(
    postgresql_engine: Engine,
) -> None:
    """Migration 0013: pglz took ~0.25 ms of PostgreSQL's CPU a manifest, LZ4 ~0.05."""
    with postgresql_engine.connect() as conn:
        outer = conn.begin()
        column = conn.execute(
            text(
                "SELECT attcompression, attstorage FROM pg_attribute "
                "WHERE attrelid = 'check_calls'::regclass AND attname = 'subjects'"
            )
        ).one()
        assert tuple(column) == ("l", "m")
        write_calls(conn, [_call(0)])
        stored = conn.execute(
            text("SELECT pg_column_compression(subjects), pg_column_size(subjects) FROM check_calls")
        ).one()
        assert stored[0] == "lz4" and stored[1] < 8000 // 2  # ~7.8 KB of text
        toast = "SELECT reltoastrelid::regclass FROM pg_class WHERE oid = 'check_calls'::regclass"
        toasted = conn.execute(text(f"SELECT count(*) FROM {conn.execute(text(toast)).scalar_one()}"))
        assert toasted.scalar_one() == 0  # kept in the table's own page
        outer.rollback()


def test_a_server_on_postgresql_merges_the_subject_index_in_the_background(
    settings: Settings, catalogs: Registry
) -> None:
    """So that no check's commit merges it (~265 ms for every check behind it)."""
    with postgres_schema("credo_merge") as schema:
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        runtime = Runtime.open(settings.replace(database_url=url, check_index_merge_interval=0.05))
        try:
            bootstrap(runtime)
            with index_merges(runtime.check_log_db, 0) as off:
                assert off is None
            with runtime.db.begin() as conn:
                write_calls(conn, [_call(i) for i in range(50)])
            with index_merges(runtime.check_log_db, 3600) as merger:
                assert merger is not None and merger.merge() > 0  # the calls' pending pages
                assert merger.merge() == 0
                with runtime.db.begin() as conn:
                    write_calls(conn, [_call(50)])
            app = create_app(runtime)
            with TestClient(app):
                merging = [t for t in threading.enumerate() if t.name == "check-index-merge"]
                assert len(merging) == 1
                deadline = time.monotonic() + 10  # the app's merger takes the last call's pages
                while _pending_pages(runtime) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert _pending_pages(runtime) == 0
            assert not any(t.name == "check-index-merge" for t in threading.enumerate())
        finally:
            runtime.db.dispose()


def _call(i: int) -> Call:
    subjects = tuple(str(parse_subject_ref(person_id())) for _ in range(300))
    return Call(
        f"merge{i}", "CA", "boarding", datetime.now(UTC), subjects, ("air-travel",) * 300, ("a",) * 300
    )


def _pending_pages(runtime: Runtime) -> int:
    """Pages the subject index's pending list holds now (merging them to count them: a
    merger that took them first leaves none)."""
    return IndexMerger(runtime.db, 0).merge()


def test_on_postgresql_the_writer_commits_a_batch_in_one_statement_and_survives_its_connection(
    settings: Settings,
) -> None:
    """One INSERT in autocommit on the writer's own connection (one round trip, not the five
    of a pooled transaction); a connection the server dropped is replaced, the call retried."""
    with postgres_schema("credo_writer") as schema:
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        runtime = Runtime.open(settings.replace(database_url=url))
        try:
            bootstrap(runtime)
            engine = runtime.check_log_db.engine
            seen: list[str] = []
            event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
            log = CheckLog(runtime.check_log_db)
            log.start()
            try:
                calls = [_call(i) for i in range(3)]
                asyncio.run(_write_all(log, calls))
                writes = [s for s in seen if "check_calls" in s]
                assert 1 <= len(writes) <= 3  # however the writer took them: one INSERT each
                assert all(w.startswith('INSERT INTO "check_calls"') and "unnest" in w for w in writes)
                assert log._own is not None
                assert log._own.connection.dbapi_connection.autocommit  # type: ignore[union-attr]
                pid = log._own.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
                alive = text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid")
                with runtime.db.begin() as conn:  # the server drops the writer's connection
                    conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    with runtime.db.read() as conn:
                        if conn.execute(alive, {"pid": pid}).first() is None:
                            break
                    time.sleep(0.02)
                asyncio.run(_write_all(log, [_call(3)]))
                assert log._own is not None
                assert log._own.connection.dbapi_connection.info.backend_pid != pid  # type: ignore[union-attr]
            finally:
                log.stop()
            with runtime.db.read() as conn:
                ids = set(conn.execute(select(check_calls.c.id)).scalars())
            assert ids == {"merge0", "merge1", "merge2", "merge3"}
        finally:
            runtime.db.dispose()


def test_on_sqlite_the_writer_commits_on_its_own_connection_past_the_pool_and_stores_the_same_rows(
    tmp_path: Path,
) -> None:
    """The writer thread's commits go straight to sqlite3 on a connection it keeps (no pool
    checkout, no SQLAlchemy statement per commit), under the writer lock, and store exactly
    what ``write_calls`` stores; a commit that fails rolls back, drops that connection and
    takes none of its batch's other calls with it."""
    registry = _file_registry(tmp_path)
    log_db = log_database(registry)
    prepare(registry, log_db)
    seen: list[str] = []
    event.listen(log_db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    checkouts: list[object] = []
    event.listen(log_db.engine, "checkout", lambda *a: checkouts.append(a[0]))
    calls = [_call(i) for i in range(6)]
    log = CheckLog(log_db)
    log.start()
    try:
        asyncio.run(_write_all(log, calls[:3]))
        assert log._own is not None
        first = log._own.connection.dbapi_connection
        asyncio.run(_write_all(log, [calls[3]]))
        assert log._own.connection.dbapi_connection is first  # kept between commits
        assert len(checkouts) == 1
        assert not [s for s in seen if "check_calls" in s]  # not one statement through SQLAlchemy
        with _writer_held(log_db):  # the writer lock is the same every commit takes
            pending = threading.Thread(target=asyncio.run, args=(_write_all(log, [calls[4]]),))
            pending.start()
            pending.join(0.5)
            assert pending.is_alive()
        pending.join(5)
        assert not pending.is_alive()

        async def again_and_new() -> list[BaseException | None]:
            return await asyncio.gather(log.write(calls[0]), log.write(calls[5]), return_exceptions=True)

        outcomes = asyncio.run(again_and_new())  # a call id logged already breaks its unique key
        assert isinstance(outcomes[0], Exception) and outcomes[1] is None
        assert log._own is None or log._own.connection.dbapi_connection is not first
    finally:
        log.stop()
    reference = Database.from_url(f"sqlite:///{tmp_path / 'reference.db'}")
    with reference.begin() as conn:
        migrate.upgrade(conn)
    with reference.begin() as conn:
        write_calls(conn, calls)
    query = select(*(c for c in check_calls.c if c.name != "seq")).order_by(check_calls.c.id)
    with log_db.read() as conn, reference.read() as ref:
        assert conn.execute(query).all() == ref.execute(query).all()
    registry.dispose()
    reference.dispose()


def test_a_writer_that_outlived_its_stop_takes_no_later_writers_stop(tmp_path: Path) -> None:
    """Schemathesis runs the app's lifespan once per test. A writer thread left from one run
    (a failed start-up, or a commit longer than its stop's wait) took the next run's stop
    sentinel from the queue they shared, and every stop after it waited its full 30 s for a
    thread that never saw one (the suite took 40 minutes instead of 15)."""
    registry = _file_registry(tmp_path)
    log_db = log_database(registry)
    prepare(registry, log_db)
    log = CheckLog(log_db)
    log.start()
    first = log._thread
    log.start()  # started twice (two lifespans at once): still one writer
    assert first is not None and log._thread is first
    second = None
    try:
        with _writer_held(log_db):  # the writer is in a commit when its stop comes
            pending = threading.Thread(target=asyncio.run, args=(_write_all(log, [_call(0)]),))
            pending.start()
            deadline = time.monotonic() + 5
            while not (log.waiting and log._queue.empty()) and time.monotonic() < deadline:  # taken
                time.sleep(0.01)
            log.stop(timeout=0.1)
            assert first.is_alive()  # still waiting for the writer lock
            log.start()
            second = log._thread
            assert second is not None and second is not first
            time.sleep(0.2)
            assert second.is_alive()  # it did not take the first writer's stop
        pending.join(5)
        first.join(5)
        assert not first.is_alive()  # it committed, then found its own stop
        asyncio.run(_write_all(log, [_call(1)]))
    finally:
        began = time.monotonic()
        log.stop()
        assert time.monotonic() - began < 5
    assert second is not None and not second.is_alive()
    with log_db.read() as conn:
        assert conn.execute(select(func.count()).select_from(check_calls)).scalar_one() == 2
    registry.dispose()


async def _write_all(log: CheckLog, calls: list[Call]) -> None:
    await asyncio.gather(*(log.write(call) for call in calls))


def test_on_sqlite_the_subject_index_merges_16_segments_at_a_time(tmp_path: Path) -> None:
    """As migration 0012 had it inside the commits: ~25 % less CPU a manifest than 4 at a time."""
    registry = _file_registry(tmp_path)
    log = log_database(registry)
    prepare(registry, log)
    for db in (registry, index_database(log)):  # the log's own index, and the one in its file
        with db.read() as conn:
            options = dict(conn.exec_driver_sql("SELECT k, v FROM check_calls_index_config").fetchall())
        assert options["automerge"] == 16 and options["crisismerge"] == 32
    registry.dispose()
