"""Ingest batches in processes of their own, beside the worker that took the request.

Why: a batch of 100 records costs ~17 ms of Python (checking, leaf hashes, the
inserts' parameters, notices) and a worker has one GIL. Run on one of the
worker's threads, that time was taken from the event loop and the check-log
writer in slices of up to 5 ms (the GIL's switch interval), and every
statement the batch ran while it held SQLite's writer waited for the GIL to
come back: under ``bench/load.py`` a check's p99 and a batch's p99 both grew
with the other. In a process of its own, a batch competes for a CPU, which
the kernel shares in far finer slices, and never for the worker's GIL.

The API worker still reads the request (token, size limit, JSON array) and
answers it; the process checks and appends the batch in its own
transaction and returns the answer's body. A batch the process committed but
could not answer (it died) is answered 503; the agency's retry is then a
``duplicate`` of the same sequence numbers, as after any lost answer.

Off where there is no file to share (an in-memory database, tests' bound
connection) or with ``ingest_processes`` = 0: there batches run on the
worker's threads, as before.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import orjson

from credo.ledger.services import prepare
from credo.process.intake import append_and_notify
from credo.runtime import Freezer, Runtime, freeze_startup_objects
from credo.settings import Settings
from credo.store.db import Overloaded

_RUNTIME: Runtime | None = None  # the ingest process's own (catalogs, database, signing key)
_FREEZER: Freezer | None = None


def ingest_batch(runtime: Runtime, agency: str, token_id: int, items: list[Any]) -> dict[str, Any]:
    """Check and append one API batch; the answer's body (``BatchOut``) as a dict."""
    # Checked before the write transaction: the checks need no database, and
    # another batch's statements and commit can run meanwhile. One registry
    # for both steps, whatever a catalog reload swaps in between.
    catalogs = runtime.catalogs
    batch = prepare(catalogs, agency, items)
    with runtime.db.begin() as conn:
        result = append_and_notify(conn, catalogs, runtime.log, batch, source=f"api:token{token_id}")
    return {
        **result.counts(),
        "tree_size": result.tree_size,
        "checkpoint": result.checkpoint,
        "items": [o.as_dict() for o in result.outcomes],
    }


def _watch(worker: int, every: float = 0.5) -> None:
    """Exit once the worker that started this process is gone (SIGKILL, a crash).

    Why: the process waits on a queue whose writing end it holds itself (``spawn`` hands
    it both ends), so it never sees its worker die; left alone it would wait forever, an
    orphan holding the registry open, one more for every killed worker. Nothing is lost:
    a batch it was appending is rolled back, or committed and found as a ``duplicate``
    when the agency sends it again. Polled, because ``PR_SET_PDEATHSIG`` follows the
    thread that started the process, and the pool starts them from whichever thread
    submits.
    """
    while os.getppid() == worker:
        time.sleep(every)
    os._exit(1)


def _start(settings: Settings, worker: int) -> None:
    global _RUNTIME, _FREEZER
    threading.Thread(target=_watch, args=(worker,), name="watch-worker", daemon=True).start()
    _RUNTIME = Runtime.open(settings)
    if float(settings.checkpoint_interval) > 0:  # the worker's checkpointer runs them
        _RUNTIME.db.leave_checkpoints()
    # As in the worker (see Freezer): without them, every full collection here walked the
    # catalogs and the identifier caches, 160-265 ms every ~35 s under bench/load.py, each
    # one a batch that waited (bench/RESULTS.md, "Load and overload", session 10).
    freeze_startup_objects()
    _FREEZER = Freezer()
    _FREEZER.start()


def _frozen() -> tuple[int, bool]:
    """Objects the collector no longer walks, and whether the freezer runs (for tests)."""
    return gc.get_freeze_count(), _FREEZER is not None and _FREEZER.running


def _ready() -> int:
    return multiprocessing.current_process().pid or 0


def _ingest(agency: str, token_id: int, body: bytes) -> bytes:
    assert _RUNTIME is not None, "the ingest process was not started with _start"
    return orjson.dumps(ingest_batch(_RUNTIME, agency, token_id, orjson.loads(body)))


class IngestProcesses:
    """A pool of ``processes`` ingest processes (started with the server worker)."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._pids: list[int] = []
        self._lock = threading.Lock()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the worker already runs threads (a fork would copy their locks held).
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(self.settings, os.getpid()),
        )

    def start(self) -> list[int]:
        """Start the processes and wait until each has opened the registry: their pids."""
        with self._lock:
            self._pool = self._new_pool()
            pool = self._pool
        self._pids = sorted({f.result() for f in [pool.submit(_ready) for _ in range(self.processes * 2)]})
        return self._pids

    def pids(self) -> list[int]:
        """The processes' ids as :meth:`start` found them."""
        return list(self._pids)

    async def run(self, agency: str, token_id: int, body: bytes) -> bytes:
        """The answer's body for one batch (``body``: the request's JSON array)."""
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool()
            pool = self._pool
        try:
            return await asyncio.wrap_future(pool.submit(_ingest, agency, token_id, body))
        except BrokenProcessPool:
            # An ingest process died (killed, out of memory): the batch may have committed or
            # not; the agency's retry finds out (a duplicate, or accepted). A new pool serves it.
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise Overloaded("the ingest process stopped; retry the batch") from None

    def stop(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=False)
