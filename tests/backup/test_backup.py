"""``credo backup`` and ``credo restore``: the restored registry verifies and scores identically.

Each test runs on a brand-new SQLite file and a brand-new PostgreSQL schema,
as an operator would: the CLI end to end, then a second, empty database for
the restore (PostgreSQL: a database of its own, holding the same schema).
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from factories import RecordFactory, person_id, retraction
from sqlalchemy import select, text
from typer.testing import CliRunner

from credo.catalog.registry import Registry
from credo.cli import app as credo_app
from credo.cli.backup import backup, restore
from credo.cli.common import close_runtimes
from credo.lists.checklog import Call, checks_about, log_database, prepare, write_calls
from credo.scoring.online import default_schemes, score_subject
from credo.store import migrate
from credo.store.backup import BackupError
from credo.store.backup import backup as store_backup
from credo.store.backup import restore as store_restore
from credo.store.db import Database, make_engine
from credo.store.tables import metadata, subjects

POSTGRES_URL = os.environ.get("CREDO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Until ``credo.cli`` registers them, the two commands on an app of their own.
backup_app = typer.Typer()


@backup_app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.call_on_close(close_runtimes)


backup_app.command("backup")(backup)
backup_app.command("restore")(restore)


def _postgres_db(name: str, schema: str) -> str:
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return f"{base}/{name}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(the registry's URL, an empty database's URL to restore into)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'credo.db'}", f"sqlite:///{tmp_path / 'restored.db'}"
        return
    request.getfixturevalue("postgresql_engine")  # skips, or fails under CI=true, when unreachable
    schema, other = f"credo_bk_{secrets.token_hex(4)}", f"credo_restore_{secrets.token_hex(4)}"
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        conn.execute(text(f"CREATE DATABASE {other}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", _postgres_db(other, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            conn.execute(text(f"DROP DATABASE IF EXISTS {other} WITH (FORCE)"))
        admin.dispose()


class Cli:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, key: Path) -> None:
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("CREDO_SIGNING_KEY_PATH", str(key))
        self.runner = CliRunner()

    def __call__(self, url: str, *args: str) -> Any:
        self.monkeypatch.setenv("CREDO_DATABASE_URL", url)
        app = backup_app if args[0] in ("backup", "restore") else credo_app
        return self.runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    return Cli(monkeypatch, tmp_path / "keys" / "log.key")


def said(result: Any) -> str:
    """The command's output as one line (the console wraps long messages)."""
    return " ".join(result.output.split())


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    fields = sorted({k for r in rows for k in r})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def fill(cli: Cli, url: str, folder: Path, tag: str) -> None:
    """Tickets, court judgments (listings and notices), a retraction, a quarantined row."""
    today = date.today()
    people = [person_id() for _ in range(6)]
    tickets = [
        RecordFactory(
            agency_ref=f"{tag}-t{i}", subject=people[i % 6], occurred_on=str(today - timedelta(days=i))
        )
        for i in range(12)
    ]
    tickets.append({**RecordFactory(agency_ref=f"{tag}-bad"), "subject": "110105194912310021"})
    courts = [
        RecordFactory(
            court_defaulter=True,
            agency_ref=f"{tag}-c{i}",
            subject=people[i],
            occurred_on=str(today - timedelta(days=3)),
        )
        for i in range(2)
    ]
    for agency, rows, name in [
        ("CN-ZJ-HZ-TP", tickets, "tickets"),
        ("CN-SPC", courts, "courts"),
        ("CN-ZJ-HZ-TP", [retraction(f"{tag}-t0")], "retract"),
    ]:
        res = cli(
            url, "ingest", str(write_csv(folder / f"{tag}-{name}.csv", rows)), "--agency", agency, "--json"
        )
        assert res.exit_code == 0, res.output


def fingerprint(url: str, catalogs: Registry, at: datetime) -> dict[str, Any]:
    """Every row of every table, and every subject's score in every scheme that judges them."""
    db = Database.from_url(url)
    try:
        with db.read() as conn:
            tables = {
                table.name: sorted((tuple(row) for row in conn.execute(select(table))), key=lambda r: repr(r))
                for table in metadata.sorted_tables
            }
            scores = {}
            for sid in conn.execute(select(subjects.c.id).order_by(subjects.c.id)).scalars():
                for scheme in default_schemes(conn, catalogs, sid):
                    report = score_subject(conn, catalogs, sid, scheme, known_at=at, with_forecast=False)
                    scores[(sid, scheme)] = report.as_dict()
    finally:
        db.dispose()
    return {"tables": tables, "scores": scores}


def test_a_restored_registry_verifies_and_scores_identically(
    cli: Cli, urls: tuple[str, str], tmp_path: Path, catalogs: Registry
) -> None:
    source, target = urls
    assert cli(source, "db", "upgrade").exit_code == 0
    fill(cli, source, tmp_path, "a")
    head = tmp_path / "head.txt"
    head.write_text(cli(source, "audit", "tree-head").stdout)
    at = datetime.now(UTC)
    before = fingerprint(source, catalogs, at)
    assert before["scores"] and before["tables"]["listings"] and before["tables"]["notices"]

    saved = tmp_path / "backups" / "credo.backup"
    made = cli(source, "backup", str(saved), "--json")
    assert made.exit_code == 0, made.output
    info = json.loads(made.stdout)
    assert info["tree_size"] == len(before["tables"]["records"]) and info["checkpoint"] == head.read_text()

    fill(cli, source, tmp_path, "b")  # the registry moves on; the backup does not

    done = cli(target, "restore", str(saved), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["verified"] is True
    verified = cli(target, "audit", "verify", "--checkpoint", str(head), "--json")
    assert verified.exit_code == 0, verified.output
    assert fingerprint(target, catalogs, at) == before

    again = cli(target, "restore", str(saved))
    assert again.exit_code == 2 and "already holds a registry" in said(again)
    assert cli(source, "backup", str(saved)).exit_code == 2  # never overwrites without --force
    assert cli(source, "backup", str(saved), "--force").exit_code == 0


def test_a_backup_restores_only_into_its_own_kind_and_refuses_other_files(cli: Cli, tmp_path: Path) -> None:
    sqlite = f"sqlite:///{tmp_path / 'credo.db'}"
    assert cli(sqlite, "db", "upgrade").exit_code == 0
    saved = tmp_path / "credo.backup"
    assert cli(sqlite, "backup", str(saved)).exit_code == 0
    res = cli(f"{POSTGRES_URL}?options=-csearch_path%3Dnowhere", "restore", str(saved))
    assert res.exit_code == 2 and "cannot be restored into a postgresql database" in said(res)
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a backup")
    res = cli(f"sqlite:///{tmp_path / 'other.db'}", "restore", str(junk))
    assert res.exit_code == 2 and "not a credo backup" in said(res)


@pytest.mark.slow
def test_a_sqlite_backup_taken_while_writers_write_is_a_consistent_snapshot(
    cli: Cli, tmp_path: Path, catalogs: Registry
) -> None:
    url = f"sqlite:///{tmp_path / 'credo.db'}"
    assert cli(url, "db", "upgrade").exit_code == 0
    stop = threading.Event()

    def write() -> None:
        from credo.ledger.log import LedgerLog
        from credo.process.intake import ingest_and_notify

        db = Database.from_url(url)
        log = LedgerLog(tmp_path / "keys" / "log.key", "credo.example/log")
        n = 0
        while not stop.is_set():
            with db.begin() as conn:
                ingest_and_notify(
                    conn,
                    catalogs,
                    log,
                    "CN-ZJ-HZ-TP",
                    [RecordFactory(agency_ref=f"w{n}-{i}") for i in range(20)],
                    source="test",
                )
            n += 1
        db.dispose()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        copies = []
        for i in range(3):
            saved = tmp_path / f"b{i}.backup"
            assert cli(url, "backup", str(saved)).exit_code == 0
            copies.append(saved)
    finally:
        stop.set()
        writer.join()
    for i, saved in enumerate(copies):
        res = cli(f"sqlite:///{tmp_path / f'r{i}.db'}", "restore", str(saved), "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["verify"]["ok"] is True


def test_a_sqlite_backup_carries_the_check_log_kept_in_its_own_file(tmp_path: Path) -> None:
    """On SQLite the check log is a file of its own (``{database}-checks``); a backup is still
    one file, and the restored registry's subjects see every check made about them."""
    registry = Database.from_url(f"sqlite:///{tmp_path / 'credo.db'}")
    with registry.begin() as conn:
        migrate.upgrade(conn)
        write_calls(conn, [Call("old", "CA", "p", datetime.now(UTC), ["person:a"], ["air-travel"], ["d"])])
    log = log_database(registry)
    prepare(registry, log)
    with log.begin() as conn:
        write_calls(conn, [Call("new", "CA", "p", datetime.now(UTC), ["person:a"], ["air-travel"], ["a"])])
    store_backup(registry, tmp_path / "backup.db")
    registry.dispose()

    restored = Database.from_url(f"sqlite:///{tmp_path / 'restored.db'}")
    store_restore(restored, tmp_path / "backup.db")
    assert not Path(f"{tmp_path / 'restored.db'}-checks").exists()
    log = log_database(restored)
    assert prepare(restored, log) == 2  # made again from the backup's calls
    with log.read() as conn:
        assert [c["ref"] for c in checks_about(conn, "person:a", newest_first=False)] == ["old-0", "new-0"]
    restored.dispose()

    beside = Database.from_url(f"sqlite:///{tmp_path / 'again.db'}")
    Path(f"{tmp_path / 'again.db'}-checks").write_bytes(b"")  # another registry's check log
    with pytest.raises(BackupError, match=r"again\.db-checks: a check log is there already"):
        store_restore(beside, tmp_path / "backup.db")
    beside.dispose()
