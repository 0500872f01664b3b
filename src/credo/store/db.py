"""Engines and transactions: the one way the code reaches a database.

``Database.begin()`` is a write transaction: on SQLite it starts with
``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock, and
every SQLite connection runs in WAL mode with ``synchronous=FULL`` so a
commit that returned is on disk. ``Database.read()`` is a read transaction
(deferred on SQLite, so readers never wait for the writer).

Tests bind a ``Database`` to one connection inside an outer transaction and
turn every ``begin()`` into a savepoint (``Database.bound``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_PRAGMAS = (
    ("journal_mode", "wal"),
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    ("busy_timeout", "30000"),
)


def normalise_url(url: str) -> str:
    """Let people write ``postgresql://`` and still get psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that our
        # "begin" hook decides between BEGIN IMMEDIATE and a deferred BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for name, value in SQLITE_PRAGMAS:
            cur.execute(f"PRAGMA {name}={value}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "BEGIN" if conn.get_execution_options().get("credo_readonly") else "BEGIN IMMEDIATE"
        conn.exec_driver_sql(mode)


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        # Connections are pooled and may be handed to another thread (the API's
        # thread pool); each is used by one thread at a time.
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(url, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class Database:
    """A registry database: an engine, or (in tests) one bound connection."""

    def __init__(self, engine: Engine, bound: Connection | None = None) -> None:
        self.engine = engine
        self._bound = bound

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(make_engine(url, **kwargs))

    @classmethod
    def bound(cls, conn: Connection) -> Database:
        return cls(conn.engine, bound=conn)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction, committed (durably) when the block ends."""
        if self._bound is not None:
            with self._bound.begin_nested():
                yield self._bound
            return
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction."""
        if self._bound is not None:
            yield self._bound
            return
        with self.engine.connect() as conn:
            conn = conn.execution_options(credo_readonly=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        if self._bound is None:
            self.engine.dispose()
