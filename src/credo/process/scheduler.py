"""The registry's clock: what must happen because time passed.

One ``tick`` tells subjects whose appeals went overdue (their records are
suspended from the deadline on, by the definition of the score), moves
their listings, refreshes every listing once a day (expiries and planned
ends at midnight; grade warnings that ran their course) and delivers due
notices. ``credo serve`` runs it in the background; ``credo tick`` runs it
once (cron).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from credo.catalog.registry import Registry
from credo.lists.refresh import refresh, refresh_all
from credo.process import appeals
from credo.process.outbox import OutboxConfig, deliver_due
from credo.store.db import Database
from credo.store.tables import clock_runs
from credo.store.upkeep import Rounds

#: ``clock_runs.kind`` of the daily refresh of every listing.
FULL_REFRESH = "full_refresh"


@dataclass
class Scheduler:
    db: Database
    catalogs: Registry
    timezone: str
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    last_full_refresh: date | None = None
    #: Added to the clock thread's nice value (Linux schedules threads, not processes). 0:
    #: the thread shares its worker's GIL, and a niced thread holding it can be left off the
    #: CPUs while every request waits for it. (Session 9 blamed +10 for bench/load.py's 503
    #: bursts; session 10 found that those bursts were the load generator's own full
    #: collections, bench/client_gc.py. Whether +10 also cost anything was not measured.)
    #: The refresh gives way by pausing between its writes instead.
    nice: int = 0
    #: the clock's ticks, counted in /metrics; a failed tick is logged and the next retries
    health: Rounds = field(default_factory=lambda: Rounds("scheduler"))
    _stop: threading.Event = field(default_factory=threading.Event)

    def tick(self, now: datetime | None = None) -> dict[str, int]:
        now = now or datetime.now(UTC)
        today = now.astimezone(ZoneInfo(self.timezone)).date()
        out = {"overdue": 0, "listings_changed": 0, "sent": 0}
        with self.db.begin() as conn:
            overdue = appeals.overdue(conn, now)
            out["overdue"] = len(overdue)
            if overdue:
                plan = refresh(conn, self.catalogs, now, overdue)
                out["listings_changed"] += len(plan.open) + len(plan.end)
        if self.last_full_refresh is None:
            self.last_full_refresh = self.refreshed_on()
        if self.last_full_refresh != today:
            plan = refresh_all(self.db, self.catalogs, now)
            changes = len(plan.open) + len(plan.end) + len(plan.warn)
            out["listings_changed"] += changes
            with self.db.begin(shed=False) as conn:
                conn.execute(
                    insert(clock_runs).values(
                        kind=FULL_REFRESH,
                        day=today,
                        catalog_digest=self.catalogs.digest,
                        finished_at=datetime.now(UTC),
                        changes=changes,
                    )
                )
            self.last_full_refresh = today
        with self.db.begin() as conn:
            out["sent"] = deliver_due(conn, self.outbox, now)["sent"]
        return out

    def refreshed_on(self) -> date | None:
        """The last day whose full refresh completed under these catalogs (None: none did).

        Why it is kept: a server that restarts (a deploy, a crash) would otherwise run a full
        scoring pass of the registry at its first tick, beside the requests it serves. Changes
        between full refreshes are the intake's (in the records' own transaction); only time
        (a new day) and new catalogs call for another.
        """
        with self.db.read() as conn:
            return conn.execute(
                select(func.max(clock_runs.c.day)).where(
                    clock_runs.c.kind == FULL_REFRESH,
                    clock_runs.c.catalog_digest == self.catalogs.digest,
                )
            ).scalar_one_or_none()

    def run(self, interval: float = 30.0) -> None:
        if self.nice and hasattr(os, "setpriority"):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self.nice)
        while not self._stop.wait(interval):
            self.health.run(self.tick)  # a crash must not stop the clock

    def start(self, interval: float = 30.0) -> threading.Thread:
        self._stop.clear()  # a worker's second lifespan starts the clock again
        thread = threading.Thread(target=self.run, args=(interval,), name="credo-scheduler", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
