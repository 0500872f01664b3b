"""Backups of a registry and their restore, as one file each.

- **SQLite**: SQLite's online backup API copies every page of the live
  database under one read transaction, so the copy is a consistent snapshot
  even while the server writes; the copy is a SQLite file itself, checked
  with ``PRAGMA integrity_check``.
- **PostgreSQL**: ``pg_dump --format=custom`` of the registry's schema, from
  a snapshot this module holds open (``pg_export_snapshot``), so the tree
  head it reports is the one inside the dump. Restored with ``pg_restore
  --single-transaction --exit-on-error``: all of it or nothing.

A restore goes only into an empty database (one without a registry): it
never merges with or overwrites a registry. The kind of a backup is read
from its first bytes, so a SQLite backup is never fed to PostgreSQL.

On SQLite the check log has a file of its own beside the registry's
(``{database}-checks``, see ``lists/checklog.py``): a backup folds its calls
into the backup's ``check_calls``, so the backup stays one file, and a
restored registry's check log is made again from them when it is first opened.

Not in the backup: the log's signing key (a secret; keep it apart, see
``docs/security.md``). ``credo audit verify`` on the restored registry
needs the same key (or its verifier key) to check the signed tree heads.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import URL

from credo.ledger.log import latest_tree_head
from credo.lists.checklog import COMPANION
from credo.store.db import Database

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    kind: str  # sqlite | postgresql
    bytes: int
    tree_size: int  # ledger size at the moment of the snapshot
    checkpoint: str | None  # the newest signed tree head in the backup

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "bytes": self.bytes,
            "tree_size": self.tree_size,
            "checkpoint": self.checkpoint,
        }


def _head(conn: Connection) -> tuple[int, str | None]:
    head = latest_tree_head(conn)
    return (0, None) if head is None else (int(head["size"]), str(head["checkpoint"]))


def kind_of(path: Path) -> str:
    """``sqlite`` or ``postgresql``, from the file's first bytes."""
    try:
        with path.open("rb") as f:
            start = f.read(16)
    except OSError as exc:
        raise BackupError(f"{path}: {exc.strerror}") from None
    if start.startswith(SQLITE_MAGIC):
        return "sqlite"
    if start.startswith(PGDUMP_MAGIC):
        return "postgresql"
    raise BackupError(f"{path}: not a credo backup (neither a SQLite file nor a pg_dump archive)")


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("database: an in-memory SQLite database has nothing to back up or restore into")
    return Path(url.database)


def _fresh(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise BackupError(f"{path}: already exists (choose a new file, or --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)


# -- PostgreSQL tools -------------------------------------------------------------------------


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URI for pg_dump/pg_restore (the password goes in the environment, not argv)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name}: not found on PATH (install the PostgreSQL client tools)")
    return found


def _run(args: list[str], env: Mapping[str, str]) -> str:
    done = subprocess.run(args, env=dict(env), capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


@contextmanager
def _snapshot(db: Database) -> Iterator[tuple[str, str, int, str | None]]:
    """An exported snapshot held open: (snapshot id, schema, tree size, checkpoint) within it."""
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snapshot = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
            schema = str(conn.execute(text("SELECT current_schema()")).scalar_one())
            size, checkpoint = _head(conn)
            yield snapshot, schema, size, checkpoint


# -- backup -----------------------------------------------------------------------------------


def backup(db: Database, path: Path, *, force: bool = False) -> BackupInfo:
    """Write a consistent copy of the registry to ``path`` (via a temporary file, then renamed)."""
    url = db.engine.url
    _fresh(path, force)
    partial = Path(tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)[1])
    try:
        if url.get_backend_name() == "sqlite":
            size, checkpoint = _backup_sqlite(db, partial)
            kind = "sqlite"
        elif url.get_backend_name() == "postgresql":
            size, checkpoint = _backup_postgresql(db, partial)
            kind = "postgresql"
        else:
            raise BackupError(f"database: cannot back up a {url.get_backend_name()} database")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return BackupInfo(path, kind, path.stat().st_size, size, checkpoint)


def _backup_sqlite(db: Database, target: Path) -> tuple[int, str | None]:
    source = _sqlite_path(db.engine.url)
    if not source.exists():
        raise BackupError(f"{source}: no such database")
    src = sqlite3.connect(source)  # the backup takes a read lock only; WAL needs a writable -shm
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # every page under one read transaction: a snapshot
        companion = db.companion_path(COMPANION)
        if companion is not None and Path(companion).exists():
            _fold_calls(dst, companion)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"{target}: the copy failed its integrity check: {check}")
    finally:
        dst.close()
        src.close()
    copy = Database.from_url(f"sqlite:///{target}")
    try:
        with copy.read() as conn:
            return _head(conn)
    finally:
        copy.dispose()


def _fold_calls(dst: sqlite3.Connection, companion: str) -> None:
    """Append to the backup's ``check_calls`` the check log's calls it lacks (by ``seq``):
    those logged in the check log's own file; its index fills by its trigger."""
    dst.execute("ATTACH DATABASE ? AS checklog", (companion,))
    try:
        with dst:  # one transaction: all the calls or none
            dst.execute(
                "INSERT INTO main.check_calls SELECT * FROM checklog.check_calls"
                " WHERE seq > (SELECT coalesce(max(seq), 0) FROM main.check_calls) ORDER BY seq"
            )
    finally:
        dst.execute("DETACH DATABASE checklog")


def _backup_postgresql(db: Database, target: Path) -> tuple[int, str | None]:
    uri, env = _libpq(db.engine.url)
    with _snapshot(db) as (snapshot, schema, size, checkpoint):
        _run(
            [
                _tool("pg_dump"),
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f"--snapshot={snapshot}",
                f"--schema={schema}",
                f"--file={target}",
                f"--dbname={uri}",
            ],
            env,
        )
    _run([_tool("pg_restore"), "--list", str(target)], env)  # readable?
    return size, checkpoint


# -- restore ----------------------------------------------------------------------------------


def _holds_registry(db: Database) -> bool:
    with db.engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
    return bool(names & {"records", "alembic_version"})


def restore(db: Database, path: Path) -> BackupInfo:
    """Restore ``path`` into ``db``, which must hold no registry yet. All or nothing."""
    kind = kind_of(path)
    url = db.engine.url
    if kind != url.get_backend_name():
        raise BackupError(
            f"{path}: a {kind} backup cannot be restored into a {url.get_backend_name()} database"
        )
    if kind == "sqlite":
        _restore_sqlite(db, path)
    else:
        _restore_postgresql(db, path)
    with db.read() as conn:
        size, checkpoint = _head(conn)
    return BackupInfo(path, kind, path.stat().st_size, size, checkpoint)


def _restore_sqlite(db: Database, path: Path) -> None:
    target = _sqlite_path(db.engine.url)
    if target.exists() and target.stat().st_size > 0 and _holds_registry(db):
        raise BackupError(f"{target}: already holds a registry; restore into a new file (move this one away)")
    companion = db.companion_path(COMPANION)
    if companion is not None and Path(companion).exists():  # another registry's check log
        raise BackupError(f"{companion}: a check log is there already; restore beside none (move it away)")
    db.dispose()
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check = src.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"{path}: the backup fails its integrity check: {check}")
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")
        finally:
            dst.close()
    finally:
        src.close()


_LISTED_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )(\S+) ")


def _first_schema(conn: Connection) -> str:
    """Where new tables go: ``current_schema()``, or (it is NULL while the schema does not exist
    yet) the first entry of ``search_path``."""
    current = conn.execute(text("SELECT current_schema()")).scalar()
    if current is not None:
        return str(current)
    path = str(conn.execute(text("SELECT current_setting('search_path')")).scalar())
    first = path.split(",")[0].strip().strip('"')
    return "public" if first in ("", "$user") else first


def _restore_postgresql(db: Database, path: Path) -> None:
    uri, env = _libpq(db.engine.url)
    listing = _run([_tool("pg_restore"), "--list", str(path)], env)
    schemas = {m.group(1) for line in listing.splitlines() if (m := _LISTED_TABLE.match(line))}
    with db.engine.connect() as conn:
        current = _first_schema(conn)
        existing = set(conn.execute(text("SELECT nspname FROM pg_namespace")).scalars())
    if _holds_registry(db):
        raise BackupError(f"database: schema {current} already holds a registry; restore into an empty one")
    if schemas and schemas != {current}:
        raise BackupError(
            f"{path}: holds schema {', '.join(sorted(schemas))}, but this database's search_path "
            f"starts with {current}; restore where that schema comes first"
        )
    # A schema that exists already (``public`` always does) is not created again.
    keep = [
        line
        for line in listing.splitlines()
        if not any(f" SCHEMA - {name} " in line or line.endswith(f" SCHEMA - {name}") for name in existing)
        and not any(f"COMMENT - SCHEMA {name} " in line for name in existing)
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".list") as chosen:
        chosen.write("\n".join(keep) + "\n")
        chosen.flush()
        _run(
            [
                _tool("pg_restore"),
                "--single-transaction",
                "--exit-on-error",
                "--no-owner",
                "--no-privileges",
                f"--use-list={chosen.name}",
                f"--dbname={uri}",
                str(path),
            ],
            env,
        )
