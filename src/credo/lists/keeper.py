"""Keeps a worker's check index current: a listing change is seen within a second.

Each API worker runs one keeper thread. Every ``interval`` (0.25 s) it reads
the list changes (``list_changes``) after the last one it applied, asks the
database which measures now apply to each subject they name, and lays those
answers over the snapshot (a new ``CheckIndex``, swapped in with one
assignment, so checks never wait for the keeper).

The snapshot itself is rebuilt when the day turns over (listings become
enforceable, or end, by date) or when the overlay has grown past
``max_overlay`` subjects. With a ``directory`` (several workers), the
snapshot lives there as memory-mapped files: one worker builds and publishes
it, the others map the same files (``lists/snapshots.py``). Without one,
each keeper holds its snapshot in its own memory (one process: tests, CLI).

PostgreSQL hands out change ids in the order transactions *start*, not
commit: a change with a lower id may become visible after a higher one.
Ids missing below the highest seen are kept as *gaps* and looked for again
at every poll for ten minutes (a rolled-back transaction leaves a gap for
good), so such a change is applied when it commits, not skipped.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from credo.catalog.registry import Registry
from credo.lists.index import CheckIndex, Snapshot
from credo.lists.services import (
    change_subject,
    change_window,
    enforceable_members,
    last_change,
    subject_measures,
)
from credo.lists.snapshots import SnapshotStore
from credo.store.db import Database
from credo.store.tables import list_changes
from credo.store.upkeep import Upkeep

GAP_LIFETIME = 600.0  # seconds a missing change id is looked for
GAP_SCAN = 10_000  # change ids below the newest examined for gaps when a snapshot is built


def index_directory(settings: Any) -> Path | None:
    """The folder shared by a server's workers (``CREDO_INDEX_DIR``), None: keep it in memory."""
    value = str(getattr(settings, "index_dir", "") or "")
    return Path(value) if value else None


def database_name(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=True)


class IndexKeeper(Upkeep):
    task = "list-index"  # the background refreshes, counted in /metrics

    def __init__(
        self,
        db: Database,
        catalogs: Registry,
        timezone: str,
        interval: float = 0.25,
        *,
        directory: Path | None = None,
        max_overlay: int = 100_000,
    ) -> None:
        self.db = db
        self.catalogs = catalogs
        self.effects = {m.code: m.effect for m in catalogs.measures()}
        super().__init__(interval)
        self.zone = ZoneInfo(timezone)
        self.max_overlay = max_overlay
        self.store = None if directory is None else SnapshotStore(directory, database_name(db))
        self.index: CheckIndex | None = None
        self._last = 0  # the newest change id applied
        self._gaps: dict[int, float] = {}  # change id not yet seen -> when it was first missed
        self._lock = threading.Lock()

    def today(self) -> date:
        return datetime.now(UTC).astimezone(self.zone).date()

    # -- snapshots ----------------------------------------------------------------

    def _build(self, conn: Connection, today: date) -> tuple[Snapshot, int | None]:
        version = last_change(conn)
        seen = set(
            conn.execute(select(list_changes.c.id).where(list_changes.c.id > version - GAP_SCAN)).scalars()
        )
        gaps = [i for i in range(max(1, version - GAP_SCAN + 1), version + 1) if i not in seen]
        members = enforceable_members(conn, self.catalogs, today)
        snapshot = Snapshot.build(members, built_on=today, version=version, gaps=gaps)
        return snapshot, change_subject(conn, version) if version else None

    def _usable(self, conn: Connection, meta: dict[str, Any] | None, today: date) -> bool:
        """A published snapshot this worker may adopt: today's, of this very database."""
        if meta is None or meta.get("built_on") != today.isoformat():
            return False
        version = int(meta["version"])
        return version <= last_change(conn) and (
            version == 0 or change_subject(conn, version) == meta.get("anchor")
        )

    def _adopt(self, snapshot: Snapshot, today: date) -> None:
        self.index = CheckIndex(self.effects, snapshot, version=snapshot.version, built_on=today)
        self._last = snapshot.version
        now = time.monotonic()
        self._gaps = {g: now for g in snapshot.gaps}

    def _ours(self, meta: dict[str, Any] | None) -> bool:
        path = self.index.snapshot.path if self.index is not None else None
        return meta is not None and path is not None and Path(path).name == meta["name"]

    def _try_adopt(self, conn: Connection, meta: dict[str, Any] | None, today: date) -> bool:
        if meta is None or self._ours(meta) or not self._usable(conn, meta, today) or self.store is None:
            return False
        try:
            self._adopt(self.store.load(meta), today)
        except OSError:
            return False  # pruned under our feet: a newer one is in force
        return True

    def _rebase(self, conn: Connection, today: date, *, blocking: bool) -> bool:
        """A new snapshot: another worker's if it published one for today, else built here
        (and published). False when another worker is building (keep what we have)."""
        if self.store is None:
            self._adopt(self._build(conn, today)[0], today)
            return True
        if self._try_adopt(conn, self.store.latest(), today):
            return True
        with self.store.lock(blocking=blocking) as taken:
            if not taken:
                return False
            if self._try_adopt(conn, self.store.latest(), today):
                return True
            snapshot, anchor = self._build(conn, today)
            self._adopt(self.store.publish(snapshot, anchor), today)
        return True

    # -- changes ------------------------------------------------------------------

    def _apply_changes(self, conn: Connection, today: date) -> bool:
        assert self.index is not None
        now = time.monotonic()
        self._gaps = {g: t for g, t in self._gaps.items() if now - t < GAP_LIFETIME}
        rows = change_window(conn, self._last, self._gaps)
        if not rows:
            return False
        ids = {i for i, _ in rows}
        newest = max(ids)
        for missing in range(self._last + 1, newest):
            if missing not in ids:
                self._gaps.setdefault(missing, now)
        for i in ids:
            self._gaps.pop(i, None)
        changes = subject_measures(conn, self.catalogs, today, {s for _, s in rows})
        self._last = max(self._last, newest)
        self.index = self.index.with_overlay(changes, self._last)
        return True

    # -- the keeper's round ---------------------------------------------------------

    def refresh_if_changed(self, *, wait: bool = False) -> bool:
        """Apply what changed since the last round; True when the index changed.

        A round already running elsewhere (the keeper thread) is not waited for
        unless ``wait``: its result is what this caller would have got.
        """
        if not self._lock.acquire(blocking=wait or self.index is None):
            return False
        try:
            today = self.today()
            with self.db.read() as conn:
                changed = False
                if self.index is None or self.index.built_on != today:
                    changed = self._rebase(conn, today, blocking=self.index is None)
                elif self.store is not None:  # another worker may have published a newer one
                    changed = self._try_adopt(conn, self.store.latest(), today)
                changed = self._apply_changes(conn, today) or changed
                assert self.index is not None
                if len(self.index.overlay) > self.max_overlay and self._rebase(conn, today, blocking=False):
                    self._apply_changes(conn, today)
                    changed = True
                return changed
        finally:
            self._lock.release()

    def current(self) -> CheckIndex:
        """The index, built on first use when the keeper thread is not running (tests, CLI)."""
        if self.index is None:
            self.refresh_if_changed(wait=True)
        assert self.index is not None
        return self.index

    def round(self) -> bool:
        return self.refresh_if_changed()  # a failed poll is retried at the next tick

    def start(self) -> None:
        self.refresh_if_changed(wait=True)
        super().start()

    def stop(self, timeout: float | None = 5) -> None:
        super().stop(timeout)
