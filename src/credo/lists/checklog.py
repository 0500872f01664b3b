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
the database's own inverted index of the subjects, updated in the same
transaction (SQLite: an FTS5 table a trigger fills, which appends what a
transaction adds and merges later; PostgreSQL: a GIN index of the subjects' 64-bit
hashes; migrations 0008 and 0011),
where a B-tree row per subject wrote ~300 pages at random places per manifest
(on SQLite, 5.6 ms of CPU per manifest of 300; now ~0.5 ms). The GIN index
keeps a pending list too, which a background thread merges (:class:`IndexMerger`). Each item's ref is
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
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from credo.store import migrate
from credo.store.db import Database, Overloaded, insert_many
from credo.store.tables import check_calls

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
    insert_many(conn, check_calls, CALL_COLUMNS, [call.row() for call in calls], one_statement=one_statement)


COMPANION = "checks"  # the check log's file beside an SQLite registry: ``{database}-checks``


def log_database(registry: Database, **pool: Any) -> Database:
    """Where the check log is written and read: on SQLite a file of its own beside the
    registry's, elsewhere (PostgreSQL, tests' bound connection) the registry database."""
    return registry.companion(COMPANION, **pool)


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
    return copy_calls(registry, log)


#: The calls whose subjects include ``:subject``, by each database's index of them.
_ABOUT = {
    "sqlite": "check_calls.seq IN (SELECT rowid FROM check_calls_fts WHERE check_calls_fts MATCH :match)",
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
    conn: Connection, subject: str, *, limit: int | None = None, newest_first: bool = True
) -> list[dict[str, Any]]:
    """Every check about ``subject`` (canonical text), newest first (or oldest first)."""
    at, seq = check_calls.c.checked_at, check_calls.c.seq
    about = text(_ABOUT[conn.dialect.name]).bindparams(
        **(
            {"match": '"' + subject.replace('"', '""') + '"'}  # an FTS5 string: the one token
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
        (autocommit; ``synchronous_commit`` makes it durable before it returns) on a
        connection the thread keeps. One round trip to the server, where a transaction from
        the pool took five (the pool's ping, BEGIN, COPY and its rows, COMMIT), each a wait
        for a process that shares the CPUs. A connection that fails is dropped; the next
        commit opens another."""
        if self._own is None:
            self._own = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            write_calls(self._own, calls, one_statement=True)
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

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            size = len(first[0])
            stop = False
            while size < self.max_batch:
                try:
                    item = self._queue.get_nowait()
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
        commit = self._commit_alone if self.db.dialect == "postgresql" and self.db.shared else self.commit
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
        self._thread = threading.Thread(target=self._run, name="check-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is waiting, then stop."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None
        if self._own is not None:
            self._own.close()
            self._own = None


#: The GIN index of the check log's subjects on PostgreSQL (migration 0008).
SUBJECT_INDEX = "ix_check_calls_subjects"


class IndexMerger:
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

    def __init__(self, db: Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self.last_error: str | None = None  # the last failed merge's, for an operator
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def merge(self) -> int:
        """Merge the pending list now; the pages it held."""
        with self.db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            pages = conn.execute(
                text("SELECT gin_clean_pending_list(CAST(:index AS regclass))"), {"index": SUBJECT_INDEX}
            ).scalar_one()
        return int(pages)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.merge()
            except Exception as exc:  # the database went away: the next round tries again
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="check-index-merge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


@contextmanager
def index_merges(db: Database, interval: float) -> Iterator[IndexMerger | None]:
    """The subject index merged in the background while the block runs (a PostgreSQL
    registry; elsewhere, or with ``interval`` 0, nothing changes and the block gets None)."""
    if interval <= 0 or not db.shared or db.dialect != "postgresql":
        yield None
        return
    merger = IndexMerger(db, interval)
    merger.start()
    try:
        yield merger
    finally:
        merger.stop()


def _settle(done: asyncio.Future[None], outcome: BaseException | None) -> None:
    if done.done():  # the caller went away (client disconnected); the rows are committed anyway
        return
    if outcome is None:
        done.set_result(None)
    else:
        done.set_exception(outcome)
