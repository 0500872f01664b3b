"""The check log, group-committed: the rows of many calls in one transaction.

Every relying-party check is logged (who asked, about whom, for what
purpose, the answer and when) *before* it is answered: a check the subject
could not later see must not have happened. Committing each call on its
own makes every check wait for its own durable commit, and on SQLite for
the single writer; instead one writer thread takes whatever calls are
waiting, inserts all their rows at once (``insert_many``: one statement on
SQLite, ``COPY`` on PostgreSQL), commits once, and only then releases each
call to answer. Under load a commit serves many calls; idle, a call waits
for just its own commit.

Bounded: beyond ``max_waiting`` rows waiting, a call is refused with
:class:`~credo.store.db.Overloaded` (503 with Retry-After) rather than
queueing without end. If a batch is refused, each call in it is retried in
a transaction of its own, so one bad call cannot fail the others.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence
from typing import Any

from credo.lists.checks import LOG_COLUMNS
from credo.store.db import Database, Overloaded, insert_many
from credo.store.tables import checks

Rows = Sequence[tuple[Any, ...]]
_STOP = object()


class CheckLog:
    def __init__(self, db: Database, *, max_batch: int = 20_000, max_waiting: int = 200_000) -> None:
        self.db = db
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.waiting = 0  # rows queued and not yet committed
        self.commits = 0
        self.calls = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._count = threading.Lock()
        self._thread: threading.Thread | None = None

    def commit(self, calls: Sequence[Rows]) -> None:
        """Insert the rows of ``calls`` in one transaction (what the writer thread does)."""
        with self.db.begin(shed=False) as conn:
            insert_many(conn, checks, LOG_COLUMNS, [row for rows in calls for row in rows])

    async def write(self, rows: Rows) -> None:
        """Returns once ``rows`` are committed (raises if they could not be)."""
        if not rows:
            return
        if self._thread is None:  # not started (tests, one-off use): a transaction of its own
            await asyncio.to_thread(self.commit, [rows])
            return
        with self._count:
            if self.waiting + len(rows) > self.max_waiting:
                raise Overloaded(f"{self.waiting} checks already wait to be logged; retry shortly")
            self.waiting += len(rows)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put((rows, loop, done))
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

    def _flush(self, batch: list[tuple[Rows, asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
        outcomes: list[BaseException | None]
        try:
            self.commit([rows for rows, _, _ in batch])
            outcomes = [None] * len(batch)
            self.commits += 1
        except Exception:
            outcomes = []
            for rows, _, _ in batch:
                try:
                    self.commit([rows])
                    outcomes.append(None)
                    self.commits += 1
                except Exception as exc:
                    outcomes.append(exc)
        with self._count:
            self.waiting -= sum(len(rows) for rows, _, _ in batch)
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


def _settle(done: asyncio.Future[None], outcome: BaseException | None) -> None:
    if done.done():  # the caller went away (client disconnected); the rows are committed anyway
        return
    if outcome is None:
        done.set_result(None)
    else:
        done.set_exception(outcome)
