"""The check log, group-committed: the calls of many requests in one transaction.

Every relying-party check is logged (who asked, about whom, for what
purpose, the answer and when) *before* it is answered: a check the subject
could not later see must not have happened. Committing each call on its
own makes every check wait for its own durable commit, and on SQLite for
the single writer; instead one writer thread takes whatever calls are
waiting, writes them all at once, commits once, and only then releases each
call to answer. Under load a commit serves many calls; idle, a call waits
for just its own commit.

A call is logged packed: one ``check_calls`` row holds the whole manifest
(its subjects, measures and decisions). A subject's calls are found through
an inverted index of the subjects, where a B-tree row per subject wrote ~300
pages at random places per manifest (on SQLite, 5.6 ms of CPU per manifest of
300). On PostgreSQL it is a GIN index of the subjects' 64-bit hashes, updated
in the call's transaction (migrations 0008 and 0011), whose pending list a
background thread merges (:class:`IndexMerger`). On SQLite it is a
contentless FTS5 table filled *behind* the commits (migration 0014): a
commit writes the calls alone, and :func:`index_calls` adds the subjects of
the calls logged since, in batches, on a thread of its own
(:class:`CallIndexer`), in a file of its own (:func:`index_database`), so
that it never holds the log's writer. A subject's calls are those the index
finds and those logged after the last call it holds. Each item's ref is
``{call}-{i}``; :func:`checks_about` and :func:`check_by_ref` give the
subject the items about them (a match of the index is confirmed against the
call's subjects), one dict per check as the API shows it.

On SQLite the log has a database file of its own (``Database.companion``:
``{database}-checks``), so that its commit never waits for an ingest batch
holding the registry's writer; :func:`prepare` migrates it and copies in the
calls the registry's own ``check_calls`` holds (those logged before, or put
back by a restore); backups fold its calls back into the one backup file.

Bounded: beyond ``max_waiting`` items waiting, a call is refused with
:class:`~credo.store.db.Overloaded` (503 with Retry-After) rather than
queueing without end. If a batch is refused, each call in it is retried in
a transaction of its own, so one bad call cannot fail the others.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from credo.store import migrate
from credo.store.db import Database, Overloaded, insert_many, sqlite_inserts
from credo.store.tables import check_calls
from credo.store.upkeep import Upkeep

_STOP = object()
_DECISION = {"a": "allowed", "d": "denied", "g": "granted"}
CALL_COLUMNS = ("id", "party", "purpose", "checked_at", "measures", "subjects", "decisions")


@dataclass(frozen=True, slots=True)
class Call:
    """One relying-party call as logged: item ``i`` asked about ``subjects[i]`` (canonical
    text) and ``measures[i]``, was answered ``decisions[i]``, and has the ref ``{id}-{i}``."""

    id: str
    party: str
    purpose: str
    checked_at: datetime
    subjects: Sequence[str]
    measures: Sequence[str]
    decisions: Sequence[str]

    def __len__(self) -> int:
        return len(self.subjects)

    def row(self) -> tuple[Any, ...]:
        """The ``check_calls`` row (``CALL_COLUMNS``)."""
        measures = self.measures
        first = measures[0] if measures else ""
        same = measures.count(first) == len(measures)
        return (
            self.id,
            self.party,
            self.purpose,
            self.checked_at,
            first if same else "\n".join(measures),
            "\n".join(self.subjects),
            "".join([d[0] for d in self.decisions]),
        )


def write_calls(conn: Connection, calls: Sequence[Call], *, one_statement: bool = False) -> None:
    """Log ``calls`` in the connection's transaction (the database indexes their subjects);
    ``one_statement``: in one INSERT (PostgreSQL; SQLite's insert is one statement anyway)."""
    insert_many(conn, check_calls, CALL_COLUMNS, _rows(calls), one_statement=one_statement)


def _rows(calls: Sequence[Call]) -> list[tuple[Any, ...]]:
    return [call.row() for call in calls]


COMPANION = "checks"  # the check log's file beside an SQLite registry: ``{database}-checks``


INDEX_COMPANION = "index"  # the check log's subject index beside its file: ``{log}-index``

#: SQLite: the subject index (contentless FTS5: rowid = the call's ``seq``) and the last call
#: it holds (``seq`` and ``id``: a log put back from a backup is told from the one indexed).
#: FTS5 merges its segments 16 at a time, not 4 (as migration 0012 had the index merge inside
#: the commits): filled behind them in rounds of 200 or 1,000 manifests of 300 fresh
#: subjects, 0.26 ms of CPU a manifest against 0.34-0.36 with 4.
INDEX_TABLES = (
    "CREATE VIRTUAL TABLE check_calls_index USING fts5(subjects, content='', "
    "tokenize=\"ascii tokenchars ':-'\", detail=none, columnsize=0)",
    "INSERT INTO check_calls_index (check_calls_index, rank) VALUES ('automerge', 16)",
    "INSERT INTO check_calls_index (check_calls_index, rank) VALUES ('crisismerge', 32)",
    "CREATE TABLE check_calls_indexed (seq INTEGER NOT NULL, call_id TEXT NOT NULL)",
)


def log_database(registry: Database, **pool: Any) -> Database:
    """Where the check log is written and read: on SQLite a file of its own beside the
    registry's, elsewhere (PostgreSQL, tests' bound connection) the registry database."""
    return registry.companion(COMPANION, **pool)


def index_database(log: Database) -> Database:
    """Where the check log's subject index is kept: on SQLite with a log file, a file of its
    own beside it (``{log}-index``, its tables made by :func:`prepare`), so that filling it
    never holds the log's writer; otherwise the log's database (migration 0014's tables;
    PostgreSQL has its GIN index and none of them). Only derived data: a lost or stale
    file is filled again."""
    return log.companion(INDEX_COMPANION)


def _index_tables(index: Database, log: Database) -> None:
    """The index's tables in a file of its own (the log's database has them from migration 0014)."""
    if index is not log:
        with index.begin(shed=False) as conn:
            made = "SELECT 1 FROM sqlite_master WHERE name = 'check_calls_indexed'"
            if conn.exec_driver_sql(made).first() is None:
                for statement in INDEX_TABLES:
                    conn.exec_driver_sql(statement)


def _indexed(index: Connection, log: Connection) -> int | None:
    """The ``seq`` of the last call the index holds, 0 for none; None when that call is not the
    log's (the log was put back from a backup, say): then the index holds nothing true."""
    row = index.exec_driver_sql("SELECT seq, call_id FROM check_calls_indexed").first()
    if row is None:
        return 0
    seq, call_id = int(row[0]), str(row[1])
    same = log.execute(select(check_calls.c.id).where(check_calls.c.seq == seq)).scalar() == call_id
    return seq if same else None


def index_calls(log: Database, index: Database, *, chunk: int = 2_000) -> int:
    """Put the subjects of the calls logged since the index's last into the index (SQLite):
    how many calls. In transactions of ``chunk`` calls on ``index`` alone (a log's writer is
    not taken); safe to run twice at once (each reads the last call inside its transaction).
    An index that is not the log's (see :func:`_indexed`) is emptied and filled again."""
    done = 0
    while True:
        with index.begin(shed=False) as conn:
            with _reader(log, index, conn) as read:
                last = _indexed(conn, read)
                if last is None:
                    conn.exec_driver_sql(
                        "INSERT INTO check_calls_index (check_calls_index) VALUES ('delete-all')"
                    )
                    conn.exec_driver_sql("DELETE FROM check_calls_indexed")
                    last = 0
                rows = read.execute(
                    select(check_calls.c.seq, check_calls.c.id, check_calls.c.subjects)
                    .where(check_calls.c.seq > last)
                    .order_by(check_calls.c.seq)
                    .limit(chunk)
                ).all()
            if not rows:
                return done
            conn.exec_driver_sql(
                "INSERT INTO check_calls_index (rowid, subjects) VALUES (?, ?)",
                [(seq, subjects) for seq, _, subjects in rows],
            )
            conn.exec_driver_sql("DELETE FROM check_calls_indexed")
            conn.exec_driver_sql(
                "INSERT INTO check_calls_indexed (seq, call_id) VALUES (?, ?)", (rows[-1][0], rows[-1][1])
            )
        done += len(rows)


@contextmanager
def _reader(log: Database, index: Database, conn: Connection) -> Iterator[Connection]:
    """A connection reading the log: ``conn`` itself when the index is in the log's database."""
    if index is log:
        yield conn
        return
    with log.read() as read:
        yield read


def copy_calls(source: Database, target: Database, *, chunk: int = 5_000) -> int:
    """Append to ``target`` every call of ``source`` after ``target``'s last (by ``seq``),
    in ``seq`` order and with their ``seq``: how many were copied. Safe to run twice at
    once: each chunk reads ``target``'s last call inside its write transaction."""
    copied = 0
    columns = [c.name for c in check_calls.columns]
    while True:
        with target.begin(shed=False) as conn:
            last = conn.execute(select(func.max(check_calls.c.seq))).scalar() or 0
            with source.read() as read:
                rows = [
                    tuple(row)
                    for row in read.execute(
                        select(*check_calls.columns)
                        .where(check_calls.c.seq > last)
                        .order_by(check_calls.c.seq)
                        .limit(chunk)
                    )
                ]
            insert_many(conn, check_calls, columns, rows)
        if not rows:
            return copied
        copied += len(rows)


def prepare(registry: Database, log: Database) -> int:
    """Make the check log's own database ready (``log_database``): migrated like a registry
    (of its tables only ``check_calls`` is used), then holding every call the registry's own
    ``check_calls`` has and it lacks: how many were copied (0 when the log is the registry)."""
    if log is registry:
        return 0
    with log.begin(shed=False) as conn:
        migrate.upgrade(conn)
    _index_tables(index_database(log), log)
    return copy_calls(registry, log)


def subject_checks(log: Database, subject: str, **options: Any) -> list[dict[str, Any]]:
    """:func:`checks_about` read from the check log ``log`` and its subject index."""
    index = index_database(log)
    if index is log:
        with log.read() as conn:
            return checks_about(conn, subject, **options)
    with index.read() as found, log.read() as conn:
        return checks_about(conn, subject, index=found, **options)


#: The calls whose subjects include ``:subject``, by each database's index of them (SQLite:
#: the calls the index found, and those logged after the last it holds, read as they are).
_ABOUT = {
    "sqlite": (
        "(check_calls.seq IN (SELECT value FROM json_each(:found)) OR (check_calls.seq > :indexed "
        "AND instr(char(10) || check_calls.subjects || char(10), :line) > 0))"
    ),
    # hashed keys (migration 0011); a call found by another subject's equal hash is dropped by _items
    "postgresql": (
        "credo_subject_keys(check_calls.subjects) @> ARRAY[hashtextextended(CAST(:subject AS text), 0)]"
    ),
}


def _items(row: Any, subject: str, wanted: int | None = None) -> list[dict[str, Any]]:
    """The checks of one ``check_calls`` row about ``subject`` (or only its item ``wanted``)."""
    subjects = row.subjects.split("\n")
    measures = row.measures.split("\n")
    if len(measures) == 1:
        measures = measures * len(subjects)
    positions = range(len(subjects)) if wanted is None else [wanted] if wanted < len(subjects) else []
    return [
        {
            "ref": f"{row.id}-{i}",
            "party": row.party,
            "subject": subject,
            "measure": measures[i],
            "purpose": row.purpose,
            "decision": _DECISION[row.decisions[i]],
            "listing_id": None,
            "checked_at": row.checked_at,
        }
        for i in positions
        if subjects[i] == subject
    ]


def checks_about(
    conn: Connection,
    subject: str,
    *,
    limit: int | None = None,
    newest_first: bool = True,
    index: Connection | None = None,
) -> list[dict[str, Any]]:
    """Every check about ``subject`` (canonical text), newest first (or oldest first).

    ``conn`` reads the log; ``index`` its subject index on SQLite when that has a database
    of its own (:func:`index_database`), else ``conn`` holds it too."""
    at, seq = check_calls.c.checked_at, check_calls.c.seq
    about = text(_ABOUT[conn.dialect.name]).bindparams(
        **(
            _sqlite_about(conn, index or conn, subject)
            if conn.dialect.name == "sqlite"
            else {"subject": subject}
        )
    )
    query = (
        select(check_calls).where(about).order_by(*((at.desc(), seq.desc()) if newest_first else (at, seq)))
    )
    if limit is not None:  # every call found holds at least one check about the subject
        query = query.limit(limit)
    found: list[dict[str, Any]] = []
    for row in conn.execute(query):
        found += _items(row, subject)
        if limit is not None and len(found) >= limit:
            return found[:limit]
    return found


def _sqlite_about(log: Connection, index: Connection, subject: str) -> dict[str, Any]:
    """``_ABOUT["sqlite"]``'s values: the calls the index finds (its last call is read first,
    so that whatever the index holds, the log's calls after it are read as they are)."""
    last = _indexed(index, log) or 0  # None, an index of another log: every call is read as it is
    found: list[int] = []
    if last:
        match = '"' + subject.replace('"', '""') + '"'  # an FTS5 string: the one token
        found = list(
            index.exec_driver_sql(
                "SELECT rowid FROM check_calls_index WHERE check_calls_index MATCH ? AND rowid <= ?",
                (match, last),
            ).scalars()
        )
    return {"found": json.dumps(found), "indexed": last, "line": f"\n{subject}\n"}


def check_by_ref(conn: Connection, subject: str, ref: str) -> dict[str, Any] | None:
    """The check ``ref`` if it was about ``subject``, else None."""
    call, dash, position = ref.rpartition("-")
    if not dash or not position.isdigit() or len(position) > 6:
        return None
    row = conn.execute(select(check_calls).where(check_calls.c.id == call)).first()
    found = [] if row is None else _items(row, subject, int(position))
    return found[0] if found else None


class CheckLog:
    def __init__(self, db: Database, *, max_batch: int = 20_000, max_waiting: int = 200_000) -> None:
        self.db = db
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.waiting = 0  # items (checks) queued and not yet committed
        self.commits = 0
        self.calls = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._count = threading.Lock()
        self._thread: threading.Thread | None = None
        self._own: Connection | None = None  # the writer thread's, on PostgreSQL

    def commit(self, calls: Sequence[Call]) -> None:
        """Log ``calls`` in one transaction (what the writer thread does)."""
        with self.db.begin(shed=False, urgent=True) as conn:
            write_calls(conn, calls)

    def _commit_alone(self, calls: Sequence[Call]) -> None:
        """The writer thread's commit on PostgreSQL: one INSERT that commits by itself
        (autocommit; ``synchronous_commit`` makes it durable before it returns) on the
        connection the thread keeps. One round trip to the server, where a transaction from
        the pool took five (the pool's ping, BEGIN, COPY and its rows, COMMIT), each a wait
        for a process that shares the CPUs."""
        with self._kept(isolation_level="AUTOCOMMIT") as conn:
            write_calls(conn, calls, one_statement=True)

    def _commit_sqlite(self, calls: Sequence[Call]) -> None:
        """The writer thread's commit on an SQLite file: one INSERT in a transaction on the
        connection the thread keeps, straight to sqlite3 (``Database.raw_write``), under the
        same writer lock as every other commit. Rows are stored as ``write_calls`` stores them."""
        rows = _rows(calls)
        with self._kept() as conn, self.db.raw_write(conn, urgent=True) as raw:
            for statement, values in sqlite_inserts(conn.dialect, raw, check_calls, CALL_COLUMNS, rows):
                raw.execute(statement, values)

    @contextmanager
    def _kept(self, **options: Any) -> Iterator[Connection]:
        """The writer thread's own connection (opened with ``options`` the first time); one
        that fails is dropped, and the next commit opens another."""
        if self._own is None:
            self._own = self.db.engine.connect().execution_options(**options)
        try:
            yield self._own
        except Exception:
            self._own.invalidate()
            self._own.close()
            self._own = None
            raise

    async def write(self, call: Call) -> None:
        """Returns once ``call`` is committed (raises if it could not be)."""
        if not len(call):
            return
        if self._thread is None:  # not started (tests, one-off use): a transaction of its own
            await asyncio.to_thread(self.commit, [call])
            return
        with self._count:
            if self.waiting + len(call) > self.max_waiting:
                raise Overloaded(f"{self.waiting} checks already wait to be logged; retry shortly")
            self.waiting += len(call)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put((call, loop, done))
        await done

    def _run(self, waiting: queue.SimpleQueue[Any]) -> None:
        while True:
            first = waiting.get()
            if first is _STOP:
                return
            batch = [first]
            size = len(first[0])
            stop = False
            while size < self.max_batch:
                try:
                    item = waiting.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                size += len(item[0])
            self._flush(batch)
            if stop:
                return

    def _flush(self, batch: list[tuple[Call, asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
        outcomes: list[BaseException | None]
        commit = self.commit
        if self.db.shared:
            commit = self._commit_alone if self.db.dialect == "postgresql" else self._commit_sqlite
        try:
            commit([call for call, _, _ in batch])
            outcomes = [None] * len(batch)
            self.commits += 1
        except Exception:
            outcomes = []
            for call, _, _ in batch:
                try:
                    commit([call])
                    outcomes.append(None)
                    self.commits += 1
                except Exception as exc:
                    outcomes.append(exc)
        with self._count:
            self.waiting -= sum(len(call) for call, _, _ in batch)
            self.calls += len(batch)
        for (_, loop, done), outcome in zip(batch, outcomes, strict=True):
            loop.call_soon_threadsafe(_settle, done, outcome)

    def start(self) -> None:
        """Start the writer thread, on a queue of its own; a no-op while one runs.

        Why its own queue: a thread that outlived its stop (its join timed out in a long
        commit), or a second thread on one queue, took the next stop's sentinel, and the
        thread that stop waited for never saw one. Under schemathesis, which runs the app's
        lifespan once per test, every stop from then on waited its full 30 s."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(self._queue,), name="check-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Commit what is waiting, then stop (waiting at most ``timeout`` seconds)."""
        if self._thread is not None:
            self._queue.put(_STOP)  # the queue of the thread joined here, and of no other
            self._thread.join(timeout=timeout)
            self._thread = None
        if self._own is not None:
            self._own.close()
            self._own = None


#: The GIN index of the check log's subjects on PostgreSQL (migration 0008).
SUBJECT_INDEX = "ix_check_calls_subjects"


class IndexUpkeep(Upkeep):
    """A round of upkeep of the subject index (:meth:`round`) every ``interval`` seconds, on a
    thread of its own; a failed round is counted and logged (:mod:`credo.store.upkeep`) and
    the next one tries again."""

    task = "check-log-index"


class IndexMerger(IndexUpkeep):
    """PostgreSQL: the subject index's pending list merged on a thread of its own, not by a check.

    Why: GIN appends new entries to a pending list, and the insert that takes the list past
    its limit merges the whole list before its transaction commits. For the check log that
    insert is a group commit of checks: under ``bench/load.py`` 64 checks waited 265 ms for
    it, once in ten minutes (three answered 503). Without the list (``fastupdate`` off) every
    subject of a manifest went into the index at once, and manifests per second halved. So
    the list stays, with room for 64 MB (migration 0010), and this thread merges it every
    ``interval`` seconds; while it merges, an insert that finds the list full leaves the
    merge to it. Several workers' mergers take turns (PostgreSQL's lock on the merge).
    """

    task = "check-index-merge"

    def __init__(self, db: Database, interval: float) -> None:
        super().__init__(interval)
        self.db = db

    def merge(self) -> int:
        """Merge the pending list now; the pages it held."""
        with self.db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            pages = conn.execute(
                text("SELECT gin_clean_pending_list(CAST(:index AS regclass))"), {"index": SUBJECT_INDEX}
            ).scalar_one()
        return int(pages)

    def round(self) -> int:
        return self.merge()


class CallIndexer(IndexUpkeep):
    """SQLite: the calls logged since put into the subject index every ``interval`` seconds
    (:func:`index_calls`); several workers' indexers take turns on the index's writer."""

    def __init__(self, log: Database, index: Database, interval: float) -> None:
        super().__init__(interval)
        self.log = log
        self.index = index
        self.indexed = 0  # calls this indexer put into the index

    def round(self) -> int:
        done = index_calls(self.log, self.index)
        self.indexed += done
        return done


@contextmanager
def index_merges(db: Database, interval: float) -> Iterator[IndexUpkeep | None]:
    """The check log's subject index kept up in the background while the block runs: on
    PostgreSQL its pending list merged (:class:`IndexMerger`), on SQLite with a log file of
    its own the calls logged since indexed (:class:`CallIndexer`). Elsewhere (a bound or
    in-memory database: the index is read with the calls after it), or with ``interval`` 0,
    nothing runs and the block gets None."""
    if interval <= 0 or not db.shared:
        yield None
        return
    worker: IndexUpkeep
    if db.dialect == "postgresql":
        worker = IndexMerger(db, interval)
    else:
        index = index_database(db)
        if index is db:
            yield None
            return
        worker = CallIndexer(db, index, interval)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def _settle(done: asyncio.Future[None], outcome: BaseException | None) -> None:
    if done.done():  # the caller went away (client disconnected); the rows are committed anyway
        return
    if outcome is None:
        done.set_result(None)
    else:
        done.set_exception(outcome)
