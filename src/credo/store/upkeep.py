"""Background upkeep that outlives a failed round and says so.

A server worker runs loops beside its requests: SQLite's WAL checkpoints
(:class:`credo.store.db.Checkpointer`), the check log's subject index
(:class:`credo.lists.checklog.IndexUpkeep`), the list index's refresh, the
access log's flush, the scheduler's clock. A round that raises (the database
went away, the disk is full) must not end its loop, nor pass unseen: a WAL
checkpointer that stopped would let the WAL grow without bound, since the
engine's connections no longer checkpoint themselves while it runs.

So every round goes through :meth:`Rounds.run`, which counts it in
``/metrics`` (``credo_upkeep_rounds_total`` and ``credo_upkeep_failures_total``,
by ``task``) and logs the first failure of a streak, with its traceback, and the
round that ends the streak: one pair of lines per outage, not one a second.

>>> class Flaky(Upkeep):
...     task = "doctest-flaky"
...     calls = 0
...     def round(self) -> None:
...         self.calls += 1
...         if self.calls == 1:
...             raise OSError("disk full")
>>> flaky = Flaky(interval=3600)
>>> flaky.health.run(flaky.round), flaky.health.run(flaky.round)
(False, True)
>>> flaky.health.failed, flaky.health.completed, flaky.health.last_error
(1, 1, 'OSError: disk full')
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import ClassVar

from prometheus_client import Counter

ROUNDS = Counter("credo_upkeep_rounds", "Rounds of a background task that completed", ["task"])
FAILURES = Counter("credo_upkeep_failures", "Rounds of a background task that raised", ["task"])

log = logging.getLogger("credo.upkeep")


class Rounds:
    """The rounds of one background task ``task``: counted, and each streak of failures
    logged when it starts (with the traceback) and when it ends."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.completed = 0
        self.failed = 0
        self.streak = 0  # failed rounds since the last that completed
        self.last_error: str | None = None  # the last failed round's, for an operator
        # Each task's two series exist from its start, at 0: an alert on failures needs no absent()
        self._completed = ROUNDS.labels(task)
        self._failed = FAILURES.labels(task)

    def run(self, work: Callable[[], object]) -> bool:
        """``work()`` once: True when it returned, False when it raised (kept, not raised)."""
        try:
            work()
        except Exception as exc:  # the next round tries again; the loop must go on
            self.failed += 1
            self.streak += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self._failed.inc()
            if self.streak == 1:
                log.warning("%s: a round failed; the next tries again", self.task, exc_info=True)
            return False
        self.completed += 1
        self._completed.inc()
        if self.streak:
            log.warning("%s: a round completed after %d that failed", self.task, self.streak)
            self.streak = 0
        return True


class Upkeep:
    """:meth:`round` every ``interval`` seconds on a thread named :attr:`task`, through
    :class:`Rounds` (:attr:`health`); :meth:`closing` runs on that thread when it stops."""

    task: ClassVar[str] = "upkeep"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.health = Rounds(self.task)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def round(self) -> object:
        raise NotImplementedError

    def closing(self) -> None:
        """Release what the rounds kept (a connection), on the upkeep's own thread."""

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                self.health.run(self.round)
        finally:
            self.closing()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.task, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
