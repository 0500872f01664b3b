"""What a running credo needs, built once: settings, database, catalogs.

Both the API and the CLI start from here, so they serve the same registry.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from credo.catalog.registry import CatalogError, Registry, load_catalogs
from credo.ledger.log import LedgerLog
from credo.lists.checklog import log_database, prepare
from credo.settings import Settings, load_settings
from credo.store import migrate
from credo.store.db import Database
from credo.store.tables import agencies, catalog_loads

if TYPE_CHECKING:
    from credo.scoring.rank import RankCache


class CatalogLoadError(RuntimeError):
    def __init__(self, errors: list[CatalogError]) -> None:
        self.errors = errors
        lines = [f"{e.file}: {e.location}: {e.message}" for e in errors]
        super().__init__("catalogs refused:\n" + "\n".join(lines))


def freeze_startup_objects() -> None:
    """Hide what start-up built (modules, catalogs, engines) from the cyclic collector.

    Those objects live as long as the process, yet every full collection
    walks them all: with the catalogs loaded that is a quarter of the CPU
    an ingest batch costs (bench/RESULTS.md, "Ingest"). Call once, after
    the long-lived objects exist and before the work starts.
    """
    gc.collect()
    gc.freeze()


#: glibc's ``mallopt`` parameter number of M_ARENA_MAX (malloc.h).
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Let the C allocator keep at most ``arenas`` heaps for all of a worker's threads.

    Why: glibc gives each thread that meets a busy heap a heap of its own, up to eight per
    CPU. A server worker runs ~30 threads (requests, the check log, the access log, the
    keeper, the clock), each using SQLite connections whose page caches come and go;
    memory freed in one heap is not reused by another. In ``bench/load.py`` the worker's
    resident memory grew by 13-17 % in three minutes; with two heaps by 9.9 %
    (bench/RESULTS.md, "Load and overload"). Returns False where there is no glibc.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, arenas))


#: The cyclic collector's first threshold in a server worker (CPython's default: 700).
WORKER_GC_THRESHOLD = 10_000


@contextmanager
def fewer_collections(threshold: int = WORKER_GC_THRESHOLD) -> Iterator[None]:
    """Collect the youngest generation after ``threshold`` allocations instead of 700, while
    the block runs.

    Why: a manifest of 300 allocates a few thousand tracked objects (the JSON's items,
    coroutines, futures), nearly all freed by reference counting within the request. At 700
    the collector ran every other manifest, walking the requests in flight, and every tenth
    young collection one of the middle generation, every hundredth a full one: under
    ``bench/checks.py`` at 400 manifests a second, 60 us of a worker's CPU a manifest and full
    collections of 10-33 ms, each a stall of every request in the worker (bench/RESULTS.md,
    "Checks", session 14). What lives long is frozen (:class:`Freezer`); what dies young
    dies as young at 10,000.

    >>> import gc
    >>> before = gc.get_threshold()
    >>> with fewer_collections(5_000):
    ...     gc.get_threshold()[0]
    5000
    >>> gc.get_threshold() == before
    True
    """
    before = gc.get_threshold()
    gc.set_threshold(threshold, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


class Freezer:
    """Every ``interval`` seconds, collect what the last interval left behind and freeze the rest.

    Why: a server's caches keep growing with the subjects it sees (parsed identifiers and
    rendered catalog rows are ``lru_cache`` s of up to 65,536 entries), and every automatic
    full collection walked them all: pauses of 20 ms growing to 84 ms, every ~4 s, in
    ``bench/load.py`` (timed by ``gc.callbacks``), each one a stall of every request in the
    worker. Frozen objects are still freed by reference counting when dropped; only a cycle
    among them would wait, and the collection just before each freeze leaves none.

    >>> import time
    >>> freezer = Freezer(interval=0.01)
    >>> freezer.start(); time.sleep(0.1); freezer.stop()
    >>> freezer.freezes > 0
    True
    """

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.freezes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gc-freezer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            gc.collect()
            gc.freeze()
            self.freezes += 1

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def thaw_startup_objects() -> None:
    """Undo :func:`freeze_startup_objects` when the work is done (an app shut down, a command
    closed): what became garbage meanwhile can be collected again, which matters to a process
    that opens many runtimes, such as the test suite."""
    gc.unfreeze()


#: Connections for a worker's own threads beside its request threads (check log, access log,
#: index keeper, clock), so that none of them waits on a request for one.
BACKGROUND_CONNECTIONS = 8


def open_database(settings: Settings) -> Database:
    """The registry database the settings name, its writer queue bounded as they say."""
    return Database.from_url(
        settings.database_url,
        max_waiting_writers=int(settings.max_waiting_writers),
        max_writer_wait=float(settings.max_writer_wait),
        # Kept open, not opened per request: past the pool, SQLAlchemy opens an overflow
        # connection for each burst and closes it after (on SQLite its pragmas and schema read
        # again): 12 % of a loaded server's CPU, with AnyIO's default 40 threads and a pool of 5.
        pool_size=int(settings.worker_threads) + BACKGROUND_CONNECTIONS,
        max_overflow=BACKGROUND_CONNECTIONS,
    )


@dataclass
class Runtime:
    settings: Settings
    db: Database
    catalogs: Registry

    @classmethod
    def open(cls, settings: Settings | None = None, db: Database | None = None) -> Runtime:
        settings = settings or load_settings()
        registry, errors = load_catalogs([settings.catalog_dir])
        if registry is None:
            raise CatalogLoadError(errors)
        return cls(settings, db or open_database(settings), registry)

    @cached_property
    def check_log_db(self) -> Database:
        """Where relying parties' checks are logged and read back (``lists.checklog``): on
        SQLite a file of its own beside the registry's, so that a check never waits for an
        ingest batch holding the registry's one writer; elsewhere the registry database."""
        # request threads reading a subject's checks, the check-log writer, the checkpointer
        log = log_database(self.db, pool_size=4, max_overflow=int(self.settings.worker_threads))
        prepare(self.db, log)  # a no-op once done (bootstrap does it as a server starts)
        return log

    @cached_property
    def zone(self) -> ZoneInfo:
        """The timezone in which "today" is counted for dates of acts and listings."""
        return ZoneInfo(str(self.settings.timezone))

    @cached_property
    def log(self) -> LedgerLog:
        return LedgerLog(self.settings.signing_key_path, str(self.settings.log_origin))

    @cached_property
    def ranks(self) -> RankCache:
        """Every scored subject's score per scheme and day: exact ranks at once (API, web, CLI)."""
        from credo.scoring.rank import RankCache

        return RankCache()


def sync_catalogs(conn: Connection, registry: Registry) -> int:
    """Register the catalogs' agencies (new ones only) and note which catalog is in force."""
    known = set(conn.execute(select(agencies.c.code)).scalars())
    new = [
        {
            "code": a.code,
            "jurisdiction": registry.agency_jurisdiction(a.code),
            "name_en": a.name_en,
            "name_zh": a.name_zh,
            "kind": a.kind,
        }
        for a in registry.agencies()
        if a.code not in known
    ]
    if new:
        conn.execute(agencies.insert(), new)
    if (
        conn.execute(select(catalog_loads.c.digest).where(catalog_loads.c.digest == registry.digest)).first()
        is None
    ):
        conn.execute(
            catalog_loads.insert().values(
                digest=registry.digest,
                loaded_at=datetime.now(UTC),
                files=json.dumps(sorted(j.code for j in registry.jurisdictions())),
            )
        )
    return len(new)


def bootstrap(runtime: Runtime) -> None:
    """Migrate to head and register the catalogs: what `serve` and `demo` do on start."""
    with runtime.db.begin() as conn:
        migrate.upgrade(conn)
        sync_catalogs(conn, runtime.catalogs)
    runtime.check_log_db  # noqa: B018 -- its file migrated, the calls logged before copied in
