"""Engines and transactions: the one way the code reaches a database.

``Database.begin()`` is a write transaction: on SQLite it starts with
``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock, and
every SQLite connection runs in WAL mode with ``synchronous=FULL`` so a
commit that returned is on disk. ``Database.read()`` is a read transaction
(deferred on SQLite, so readers never wait for the writer).

Writers of one process take turns on a lock of their own before ``BEGIN
IMMEDIATE``: SQLite's busy handler polls (sleeping up to 100 ms between
tries), so a writer queued on it could start long after the lock was free.
Writers of several processes on one database file (a server's workers, the CLI) take
turns the same way, on an ``flock`` of a file beside it (``{database}-writer``), whose
waiters the kernel wakes as soon as it is released: where SQLite's busy handler left a
worker's check-log commit sleeping behind the other worker's commits (under
``bench/checks.py``, manifests on two workers: the wait for the writer p99 109 ms, up to
1 s). The file lock only orders writers; SQLite's own lock still guards the data. One
process shares one lock per file, however many ``Database`` objects it opens on it.
That queue is bounded: beyond ``max_waiting_writers`` waiting, or after
``max_writer_wait`` seconds of waiting (both settings, ``CREDO_MAX_WAITING_WRITERS``
and ``CREDO_MAX_WRITER_WAIT``), ``begin()`` raises
:class:`Overloaded` (the API answers 503 with ``Retry-After``) rather than
letting requests pile up behind the single writer. Background work that
must not be shed (the access log) passes ``shed=False``.

Tests bind a ``Database`` to one connection inside an outer transaction and
turn every ``begin()`` into a savepoint (``Database.bound``).

Two helpers keep bulk work off SQLAlchemy's per-value paths: ``one_of``
(``column IN (...)`` as one bound parameter) and ``insert_many`` (the
driver's own bulk insert).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from itertools import chain
from typing import Any, TypeGuard

import orjson
from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Engine,
    LargeBinary,
    Table,
    Time,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from credo.store.upkeep import Upkeep

WAL_LIMIT = 64 * 2**20  # bytes of WAL kept after a restart, and the size that asks for one

SQLITE_PRAGMAS = (
    ("journal_mode", "wal"),
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    ("busy_timeout", "30000"),
    # A page cache of 256 KiB per connection, not SQLite's 2 MiB: a server worker keeps ~24
    # connections open, and each writer's commit empties every other connection's cache
    # (WAL: a reader that sees a new WAL starts afresh), so big caches were mostly refilled
    # memory: bench/load.py, resident memory +13-17 % in three minutes, +9.1 % with 200 KiB.
    ("cache_size", "-256"),
    # A WAL written from its start again is cut back to this size (Checkpointer).
    ("journal_size_limit", str(WAL_LIMIT)),
)

#: Frames in the WAL (4 KiB pages) past which the Checkpointer makes it restartable.
WAL_RESTART_FRAMES = WAL_LIMIT // 4096


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
        if make_url(url).database in (None, "", ":memory:"):  # one shared connection: no pool to size
            kwargs.pop("pool_size", None)
            kwargs.pop("max_overflow", None)
        engine = create_engine(url, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if make_url(url).get_driver_name() == "psycopg":
        # No server-side prepared statements: after five runs psycopg would
        # prepare one, and PostgreSQL may then keep a generic plan made while
        # a table was small -- for ``= ANY(array)`` look-ups a sequential
        # scan comparing every row with every value, ever slower as the
        # ledger grows. Unprepared, each run is planned for its own values.
        kwargs["connect_args"] = {"prepare_threshold": None, **kwargs.get("connect_args", {})}
    return create_engine(url, **kwargs)


class Overloaded(RuntimeError):
    """Too many writers already wait for SQLite's single writer: try again shortly."""

    retry_after = 1


_WRITER_LOCKS: dict[str, WriterLock] = {}
_WRITER_LOCKS_LOCK = threading.Lock()


def _sqlite_file(database: str | None) -> TypeGuard[str]:
    """Whether an SQLite URL's database is a file others can open (not ``:memory:`` or a
    ``file:`` URI, which tests use for shared in-memory databases)."""
    return database not in (None, "", ":memory:") and not database.startswith("file:")


def _no_autocheckpoint(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    if record.info.get("credo_autocheckpoint") != 0:
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")
        record.info["credo_autocheckpoint"] = 0


def _writer_lock(database: str | None) -> WriterLock:
    """This process's writer lock of an SQLite database: one per file, shared with other
    processes through ``{file}-writer``; one per ``Database`` in memory."""
    if not _sqlite_file(database):
        return WriterLock()
    path = os.path.realpath(database)
    with _WRITER_LOCKS_LOCK:
        lock = _WRITER_LOCKS.get(path)
        if lock is None:
            lock = _WRITER_LOCKS[path] = WriterLock(path + "-writer")
        return lock


class WriterLock:
    """SQLite's one writer, handed first to urgent takers.

    A re-entrant lock (a nested ``begin()`` in one thread behaves as it always
    did) whose waiters are served urgent ones first. Why: a relying party's
    check is answered only once its check-log row is committed, so that commit
    waits for the writer; behind a queue of ingest batches (each holding the
    writer for tens of milliseconds) a 1 ms check waited for all of them. Now
    it waits for at most the transaction in progress.

    >>> lock = WriterLock()
    >>> lock.acquire(), lock.acquire(), lock.release(), lock.release()
    (True, True, None, None)
    """

    def __init__(self, path: str | None = None) -> None:
        # the file other processes' writers lock too (see the module's docstring); opened (and
        # created) by the first write, so that a Database nobody writes through leaves no file
        self._path = path
        self._file: int | None = None
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._urgent_waiting = 0
        self.waiting = 0  # threads blocked in acquire (tests wait on it to order their writers)

    def acquire(self, *, urgent: bool = False, blocking: bool = True, timeout: float | None = None) -> bool:
        taken = self._acquire(urgent, blocking, timeout)
        if taken and self._path is not None and self._depth == 1:  # first taken: the other processes'
            if self._file is None:  # only the holder gets here
                self._file = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._file, fcntl.LOCK_EX)  # turn (blocks without the GIL)
        return taken

    def _acquire(self, urgent: bool, blocking: bool, timeout: float | None) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None and (urgent or not self._urgent_waiting):
                self._owner, self._depth = me, 1
                return True
            if not blocking:
                return False
            self.waiting += 1
            self._urgent_waiting += urgent
            try:
                free = self._cond.wait_for(
                    lambda: self._owner is None and (urgent or not self._urgent_waiting), timeout
                )
            finally:
                self.waiting -= 1
                self._urgent_waiting -= urgent
            if not free:
                return False
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a writer lock this thread does not hold")
            if self._depth == 1 and self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._depth -= 1
            if not self._depth:
                self._owner = None
                self._cond.notify_all()


class Checkpointer(Upkeep):
    """SQLite's WAL checkpoints on a thread of their own, not inside a request's commit.

    Why: by default the commit that takes the WAL past 1,000 pages also copies it into
    the database file and syncs that file, holding SQLite's writer meanwhile. Under
    ``bench/load.py`` that commit was an ingest batch; the check log's commit queued
    behind it, every check with it, and the worker's 64 requests in flight filled
    (stacks sampled at the time: one request in ``do_commit``, the check log and the
    access log waiting for the writer). A ``PASSIVE`` checkpoint takes no writer lock:
    commits go on appending to the WAL while it runs, each syncing only its own frames.

    While it runs, the engine's connections do not checkpoint themselves
    (``wal_autocheckpoint=0``, set as each is checked out); when it stops, the pool
    is emptied, and connections opened after that do again.

    The WAL is written from its start again only by a writer that begins once every
    frame is copied, before anyone appends another. Under back-to-back commits (two
    workers' check logs under ``bench/checks.py``) that moment never came: the check
    log's WAL grew by ~30 MB a second, 640 MB in 25 s, for as long as the load lasted.
    So once the WAL holds ``restart_frames``, the checkpointer takes its turn with the
    writer lock and checkpoints what the last commits added (a few frames, a
    millisecond or so) before giving it back: the next commit then restarts the WAL,
    and ``journal_size_limit`` cuts the file back to 64 MiB.

    A round that fails is counted and logged (:mod:`credo.store.upkeep`), its connection
    replaced, and the next round checkpoints again: a checkpointer that stopped would leave
    the WAL to grow without bound.

    >>> import tempfile, pathlib
    >>> db = Database.from_url(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'x.db'}")
    >>> with db.checkpoints(interval=0.01) as checkpointer:
    ...     with db.begin() as conn:
    ...         _ = conn.exec_driver_sql("CREATE TABLE t (x)")
    ...     checkpointer.wait_for_checkpoint()
    >>> checkpointer.checkpoints > 0
    True
    """

    task = "wal-checkpoint"

    def __init__(
        self,
        engine: Engine,
        interval: float,
        writer: WriterLock | None = None,
        restart_frames: int = WAL_RESTART_FRAMES,
    ) -> None:
        super().__init__(interval)
        self.engine = engine
        self.writer = writer  # the database's writer lock, held while the WAL is made restartable
        self.restart_frames = restart_frames
        self.checkpoints = 0  # completed PASSIVE checkpoints (tests wait on it)
        self.restarts = 0  # checkpoints that left the WAL to be written from its start
        self._ran = threading.Condition()
        self._conn: Connection | None = None  # kept from round to round; dropped when one fails

    def start(self) -> None:
        event.listen(self.engine, "checkout", _no_autocheckpoint)
        super().start()

    def round(self) -> None:
        if self._conn is None:
            self._conn = self.engine.connect()
        try:
            raw = self._conn.connection.dbapi_connection
            assert raw is not None
            # (busy, frames in the WAL, frames copied): PASSIVE copies what it can, and
            # gives (1, -1, -1) while another connection's checkpoint runs.
            _, frames, _ = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= self.restart_frames and self.writer is not None:
                self._make_restartable(raw)
        except Exception:
            self._conn.invalidate()  # a connection that failed may be broken: the next round opens another
            self.closing()
            raise
        with self._ran:
            self.checkpoints += 1
            self._ran.notify_all()

    def closing(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _make_restartable(self, raw: Any) -> None:
        """Copy the WAL's last frames with no writer between, so the next commit restarts it.
        The writer is taken as a check's commit takes it (before any ingest batch waiting),
        and held for one short checkpoint: a commit arriving meanwhile waits for that only."""
        assert self.writer is not None
        if not self.writer.acquire(urgent=True, timeout=max(self.interval, 0.1)):
            return
        try:
            busy, frames, copied = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            self.writer.release()
        # not when another process's checkpoint ran (busy, -1, -1), or a reader still reads
        # frames that could not be copied: then the next round tries again
        self.restarts += busy == 0 and frames == copied

    def wait_for_checkpoint(self, timeout: float = 10.0) -> None:
        """Block until one more checkpoint than now has run."""
        with self._ran:
            seen = self.checkpoints
            self._ran.wait_for(lambda: self.checkpoints > seen, timeout)

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        event.remove(self.engine, "checkout", _no_autocheckpoint)
        self.engine.dispose()  # the pooled connections, which no longer checkpoint themselves


class Database:
    """A registry database: an engine, or (in tests) one bound connection."""

    def __init__(
        self,
        engine: Engine,
        bound: Connection | None = None,
        *,
        max_waiting_writers: int = 16,
        max_writer_wait: float = 5.0,
    ) -> None:
        self.engine = engine
        self._bound = bound
        self._writer = _writer_lock(engine.url.database) if engine.dialect.name == "sqlite" else None
        self.max_waiting_writers = max_waiting_writers
        self.max_writer_wait = max_writer_wait
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._companions: dict[str, Database] = {}
        self._companions_lock = threading.Lock()

    def _take_writer(self, lock: WriterLock, shed: bool, urgent: bool) -> None:
        """Take the writer lock: at once if free (or ours), else as one of a bounded queue."""
        if lock.acquire(urgent=urgent, blocking=False):
            return
        if not shed:
            lock.acquire(urgent=urgent)
            return
        with self._waiting_lock:
            if self._waiting >= self.max_waiting_writers:
                raise Overloaded(f"{self._waiting} writers already wait for the database; retry shortly")
            self._waiting += 1
        try:
            taken = lock.acquire(urgent=urgent, timeout=self.max_writer_wait)
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        if not taken:
            raise Overloaded(f"waited {self.max_writer_wait:g} s for the database writer; retry shortly")

    @classmethod
    def from_url(
        cls, url: str, *, max_waiting_writers: int = 16, max_writer_wait: float = 5.0, **kwargs: Any
    ) -> Database:
        """A database at ``url``; the two limits bound SQLite's writer queue (settings of the same names)."""
        return cls(
            make_engine(url, **kwargs),
            max_waiting_writers=max_waiting_writers,
            max_writer_wait=max_writer_wait,
        )

    @property
    def shared(self) -> bool:
        """Whether another process can open this database: PostgreSQL, or an SQLite file (not
        one in memory, and not tests' bound connection, whose transaction no one else sees)."""
        return self._bound is None and (self.dialect != "sqlite" or _sqlite_file(self.engine.url.database))

    def leave_checkpoints(self) -> None:
        """This process's connections never checkpoint SQLite's WAL themselves: another
        process's :class:`Checkpointer` does (an ingest process beside a server worker)."""
        if self.dialect == "sqlite":
            event.listen(self.engine, "checkout", _no_autocheckpoint)

    def companion_path(self, name: str) -> str | None:
        """The file of the companion ``name`` (``{database}-{name}``), or None where there is
        none: PostgreSQL, an in-memory or a bound (test) database."""
        if not self.shared or self.dialect != "sqlite":
            return None
        return f"{self.engine.url.database}-{name}"

    def companion(self, name: str, **kwargs: Any) -> Database:
        """A database beside this one for one busy append-only log, with a writer of its own.

        Why: SQLite has one writer per file. The check log commits before every check is
        answered; in the registry's own file that commit waited for whichever ingest batch
        held the writer (bench/load.py: the check log's wait p99 58 ms, max 267 ms). In a
        file of its own (``{database}-{name}``) it waits only for its own commits. PostgreSQL
        locks rows, not the database, and tests bind one connection: there the companion is
        this database itself. ``kwargs`` size the companion's pool (``make_engine``).

        >>> import tempfile, pathlib
        >>> db = Database.from_url(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'x.db'}")
        >>> db.companion("checks").engine.url.database.endswith("x.db-checks"), db.companion("checks") is db
        (True, False)
        >>> memory = Database.from_url("sqlite://")
        >>> memory.companion("checks") is memory
        True
        """
        path = self.companion_path(name)
        if path is None:
            return self
        with self._companions_lock:
            found = self._companions.get(name)
            if found is None:
                found = self._companions[name] = Database.from_url(
                    f"sqlite:///{path}",
                    max_waiting_writers=self.max_waiting_writers,
                    max_writer_wait=self.max_writer_wait,
                    **kwargs,
                )
            return found

    @classmethod
    def bound(cls, conn: Connection) -> Database:
        return cls(conn.engine, bound=conn)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self, *, shed: bool = True, urgent: bool = False) -> Iterator[Connection]:
        """A write transaction, committed (durably) when the block ends.

        SQLite: raises :class:`Overloaded` when the writer queue is full
        (unless ``shed=False``: then it waits its turn however long).
        ``urgent``: someone is waiting for this commit to be answered (the
        check log): it takes the writer before every waiting non-urgent writer.
        """
        if self._bound is not None:
            with self._bound.begin_nested():
                yield self._bound
            return
        if self._writer is not None:
            self._take_writer(self._writer, shed, urgent)
            try:
                with self.engine.connect() as conn, conn.begin():
                    yield conn
            finally:
                self._writer.release()
            return
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def raw_write(self, conn: Connection, *, urgent: bool = False) -> Iterator[Any]:
        """A write transaction on ``conn``'s own sqlite3 connection (a file-backed SQLite
        database's, held by its caller), committed durably when the block ends.

        The writer lock is taken as :meth:`begin` takes it (never shed); then ``BEGIN
        IMMEDIATE``, the block's statements and ``COMMIT`` go straight to sqlite3. Why: the
        check log's writer commits a call or two at a time, each answer waiting for it; the
        pool's checkout and return, the "begin" hook and SQLAlchemy's statement wrappers were
        about 0.13 of its 0.32 ms of CPU a commit (bench/RESULTS.md, "Checks", session 14),
        taken from the thread that answers the calls, which shares the GIL.
        """
        if self._writer is None or self._bound is not None:
            raise RuntimeError("raw_write: only for a file-backed SQLite database")
        raw = conn.connection.dbapi_connection
        assert raw is not None
        self._take_writer(self._writer, False, urgent)
        try:
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield raw
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
        finally:
            self._writer.release()

    @contextmanager
    def checkpoints(self, interval: float = 1.0) -> Iterator[Checkpointer | None]:
        """WAL checkpoints on a background thread while the block runs (a file-backed
        SQLite database; elsewhere nothing changes and the block gets ``None``)."""
        if not self.shared or self.dialect != "sqlite":
            yield None
            return
        checkpointer = Checkpointer(self.engine, interval, self._writer)
        checkpointer.start()
        try:
            yield checkpointer
        finally:
            checkpointer.stop()

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
        for companion in self._companions.values():
            companion.dispose()


def one_of(conn: Connection, column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN (values)`` with the whole list bound as one parameter.

    ``in_()`` renders one placeholder per value on every execution (and
    drivers cap their number); here the statement stays the same whatever
    the count: a JSON array read by ``json_each`` on SQLite, an array and
    ``= ANY`` on PostgreSQL. Both search the column's index per value.
    Values are strings or integers.
    """
    if conn.dialect.name == "sqlite":
        listed = func.json_each(bindparam(None, orjson.dumps(list(values)).decode())).table_valued("value")
        return column.in_(select(listed.c.value))
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


_REMEMBERING: dict[Callable[[Any], Any], Callable[[Any], Any]] = {}


def _remembering(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A bind processor that remembers its answers (dates and instants repeat: a
    batch shares one ``recorded_at``, and acts fall on a few thousand days)."""
    found = _REMEMBERING.get(process)
    if found is None:
        if len(_REMEMBERING) > 64:  # one pair per engine; tests make many
            _REMEMBERING.clear()
        found = _REMEMBERING[process] = lru_cache(maxsize=1 << 14)(process)
    return found


def insert_many(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    skip_existing: bool = False,
    returning: Sequence[str] = (),
    one_statement: bool = False,
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (tuples in ``columns`` order) with the driver's bulk path.

    SQLite: one ``INSERT ... VALUES (...), (...), ...`` per as many rows as
    its bound-parameter limit allows; PostgreSQL: ``COPY`` (or, with
    ``skip_existing`` or ``one_statement``, one ``INSERT ... SELECT FROM unnest(...)``:
    one round trip, where ``COPY`` takes two).
    Values are stored exactly as SQLAlchemy would store them (its SQLite
    date and time texts), without its per-value bookkeeping. With
    ``skip_existing`` a row that would break a unique constraint is left out
    (``ON CONFLICT DO NOTHING``). Runs in the connection's transaction.
    With ``returning`` (column names) the inserted rows' values of those
    columns come back, in no particular order (PostgreSQL then inserts with
    ``INSERT ... SELECT FROM unnest(...)`` rather than ``COPY``).
    """
    if not rows:
        return []
    cols = [table.c[name] for name in columns]
    names = ", ".join(f'"{c.name}"' for c in cols)
    back = (" RETURNING " + ", ".join(f'"{table.c[name].name}"' for name in returning)) if returning else ""
    tail = " ON CONFLICT DO NOTHING" if skip_existing else ""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    if conn.dialect.name == "postgresql":
        if skip_existing or returning or one_statement:
            types = [f"{c.type.compile(conn.dialect)}[]" for c in cols]
            arrays = ", ".join(f"%s::{t}" for t in types)
            result = conn.exec_driver_sql(
                f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({arrays})'  # noqa: S608
                + tail
                + back,
                tuple(list(column) for column in zip(*rows, strict=True)),
            )
            return [tuple(row) for row in result.fetchall()] if returning else []
        statement = f'COPY "{table.name}" ({names}) FROM STDIN'
        cursor = dbapi.cursor()
        try:
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except conn.dialect.loaded_dbapi.Error as exc:
            # What SQLAlchemy raises for any other statement (IntegrityError, ...).
            raise DBAPIError.instance(
                statement, None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
            ) from exc
        finally:
            cursor.close()
        return []
    inserted: list[tuple[Any, ...]] = []
    for statement, values in sqlite_inserts(conn.dialect, dbapi, table, columns, rows, tail + back):
        result = conn.exec_driver_sql(statement, values)
        if returning:
            inserted.extend(tuple(row) for row in result.fetchall())
    return inserted


def sqlite_inserts(
    dialect: Dialect,
    dbapi: Any,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    tail: str = "",
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The statements (and their values) that insert ``rows`` into an SQLite ``table``,
    as few as the connection's bound-parameter limit allows, values stored as SQLAlchemy
    stores them; ``tail`` ends each statement (``ON CONFLICT``, ``RETURNING``).

    Two rows of ``t(a, b)`` are ``('INSERT INTO "t" ("a", "b") VALUES (?, ?), (?, ?)', (1, 2, 3, 4))``.
    """
    cols = [table.c[name] for name in columns]
    names = ", ".join(f'"{c.name}"' for c in cols)
    # SQLAlchemy's bind processors turn dates and times into its texts, each
    # distinct one converted once. (Its binary processor only wraps bytes,
    # which sqlite3 takes as they are.)
    processors = [
        (i, _remembering(p) if isinstance(c.type, Date | DateTime | Time) else p)
        for i, c in enumerate(cols)
        if not isinstance(c.type, LargeBinary) and (p := c.type._cached_bind_processor(dialect))
    ]
    if processors:
        columns_of = list(zip(*rows, strict=True))
        for i, process in processors:
            columns_of[i] = tuple(map(process, columns_of[i]))
        rows = list(zip(*columns_of, strict=True))
    # Many rows to one INSERT ... VALUES (...), (...): SQLite parses and plans
    # once and runs the whole insert in one step (executemany steps row by
    # row, and the sqlite3 module takes the GIL back after every row).
    per_row = "(" + ", ".join("?" * len(cols)) + ")"
    limit = dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    step = max(1, min(len(rows), limit // len(cols)))
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        yield (
            f'INSERT INTO "{table.name}" ({names}) VALUES {", ".join([per_row] * len(chunk))}{tail}',  # noqa: S608
            tuple(chain.from_iterable(chunk)),
        )
