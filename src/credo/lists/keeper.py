"""Keeps a process's check index current: a listing change is seen within a second.

Each API worker runs one keeper. It polls the change counter
(``list_changes``) and the date; when either moved it rebuilds the index
and swaps it in with one assignment, so checks never wait for a rebuild.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from credo.catalog.registry import Registry
from credo.lists.index import CheckIndex
from credo.lists.services import build_index, last_change
from credo.store.db import Database


class IndexKeeper:
    def __init__(self, db: Database, catalogs: Registry, timezone: str, interval: float = 0.25) -> None:
        self.db = db
        self.catalogs = catalogs
        self.zone = ZoneInfo(timezone)
        self.interval = interval
        self.index = CheckIndex(effects={m.code: m.effect for m in catalogs.measures()}, version=-1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def today(self) -> datetime:
        return datetime.now(UTC).astimezone(self.zone)

    def refresh_if_changed(self) -> bool:
        with self.db.read() as conn:
            version = last_change(conn)
            today = self.today().date()
            if version == self.index.version and today == self.index.built_on:
                return False
            self.index = build_index(conn, self.catalogs, today, version)
        return True

    def current(self) -> CheckIndex:
        """The index, built on first use when the keeper thread is not running (tests, CLI)."""
        if self.index.version < 0:
            self.refresh_if_changed()
        return self.index

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh_if_changed()
            except Exception:  # noqa: S112 - a failed poll is retried at the next tick
                continue

    def start(self) -> None:
        self.refresh_if_changed()
        self._thread = threading.Thread(target=self._run, name="check-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
