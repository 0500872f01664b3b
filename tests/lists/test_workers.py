"""Several server workers: one snapshot in memory for all, and a listing seen by each within a second.

Real processes on a real SQLite file (not the rolled-back test connection):
two keepers in two processes, the page cache they share (``/proc/PID/smaps``),
and ``credo serve --workers 2`` answering checks over HTTP.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from factories import person_id
from fuzz.registry import Seeded, seeded_registry
from lists.test_checks import list_defaulter

from credo.catalog.registry import Registry
from credo.lists.index import Snapshot
from credo.lists.snapshots import SnapshotStore, mapped_memory

pytestmark = pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")

KEEPER = r"""
import sys
from pathlib import Path
from credo.catalog.registry import load_catalogs
from credo.lists.keeper import IndexKeeper
from credo.settings import PROJECT_ROOT
from credo.store.db import Database

catalogs, _ = load_catalogs([PROJECT_ROOT / "catalogs"])
keeper = IndexKeeper(Database.from_url(sys.argv[1]), catalogs, "Asia/Shanghai", directory=Path(sys.argv[2]))
keeper.start()
print("ready", keeper.current().snapshot.path, flush=True)
for line in sys.stdin:
    measure, subject = line.split()
    print(keeper.current().decide(measure, subject), flush=True)
"""

MAPPER = r"""
import sys
from pathlib import Path
import numpy as np
from credo.lists.snapshots import SnapshotStore

store = SnapshotStore(Path(sys.argv[1]), "test")
snapshot = store.load(store.latest())
print("ready", int(np.asarray(snapshot.table).sum() % 7), int(np.asarray(snapshot.bits).sum()), flush=True)
sys.stdin.readline()
"""


class Child:
    def __init__(self, code: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def line(self) -> str:
        assert self.proc.stdout is not None
        out = self.proc.stdout.readline().strip()
        assert out, f"child exited ({self.proc.poll()})"
        return out

    def ask(self, text: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.line()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def registry(tmp_path: Path, catalogs: Registry) -> Iterator[Seeded]:
    seeded = seeded_registry(tmp_path, catalogs)
    yield seeded
    seeded.runtime.db.dispose()


def list_now(seeded: Seeded) -> str:
    who = person_id()
    list_defaulter(seeded.runtime, who, started=date.today() - timedelta(days=20), now=datetime.now(UTC))
    return who


def test_two_worker_processes_share_one_snapshot_and_see_a_listing_within_a_second(
    registry: Seeded, tmp_path: Path
) -> None:
    folder = tmp_path / "index"
    url = registry.runtime.settings.database_url
    workers = [Child(KEEPER, url, str(folder)) for _ in range(2)]
    try:
        paths = {w.line() for w in workers}
        assert len(paths) == 1 and "snap-" in paths.pop()  # one built it, the other mapped it
        who = person_id()
        subject = f"person:{who}"
        assert [w.ask(f"air-travel {subject}") for w in workers] == ["allowed", "allowed"]
        list_defaulter(
            registry.runtime, who, started=date.today() - timedelta(days=20), now=datetime.now(UTC)
        )
        committed = time.monotonic()
        seen: dict[int, float] = {}
        while len(seen) < 2 and time.monotonic() - committed < 5:
            for i, w in enumerate(workers):
                if i not in seen and w.ask(f"air-travel {subject}") == "denied":
                    seen[i] = time.monotonic() - committed
            time.sleep(0.01)
        assert len(seen) == 2 and max(seen.values()) < 1.0, seen
    finally:
        for w in workers:
            w.close()


def test_the_snapshot_pages_are_shared_not_copied(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(1, 10**17, 1_000_000, dtype=np.int64).astype(np.uint64))
    snapshot = Snapshot.from_keys(keys, {"air-travel": np.arange(0, len(keys), 3)}, {}, b"k" * 16)
    store = SnapshotStore(tmp_path, "test")
    store.publish(snapshot, anchor=None)
    files = snapshot.table.nbytes + snapshot.bits.nbytes
    mappers = [Child(MAPPER, str(tmp_path)) for _ in range(2)]
    try:
        assert len({m.line() for m in mappers}) == 1  # both read every page, and the same data
        memory = [mapped_memory(m.proc.pid, tmp_path) for m in mappers]
    finally:
        for m in mappers:
            m.close()
    for each in memory:
        assert each["rss"] >= 0.95 * files  # all of it resident in each process ...
        assert each["pss"] <= 0.55 * files  # ... and each pays for half: the pages are shared
    assert sum(m["pss"] for m in memory) <= 1.05 * files


def cached_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache (``mincore`` of a fresh mapping)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, *[ctypes.c_int] * 3, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        vector = ctypes.create_string_buffer(pages)
        assert libc.mincore(address, size, vector) == 0, ctypes.get_errno()
        libc.munmap(address, size)
    finally:
        os.close(fd)
    return sum(b & 1 for b in vector.raw)


def test_a_published_table_is_read_back_and_mapped_for_huge_pages(tmp_path: Path) -> None:
    """``np.save`` leaves small pages in the page cache; ``publish`` drops them once flushed and
    maps with ``MADV_HUGEPAGE`` (VmFlags ``hg``), so the first reads bring huge pages where the
    kernel and file system allow (2 MiB TLB entries for the table's random reads)."""
    rng = np.random.default_rng(4)
    keys = np.unique(rng.integers(1, 10**17, 500_000, dtype=np.int64).astype(np.uint64))
    snapshot = Snapshot.from_keys(keys, {"air-travel": np.arange(0, len(keys), 3)}, {}, b"k" * 16)
    mapped = SnapshotStore(tmp_path, "test").publish(snapshot, anchor=None)
    table = Path(mapped.path or "") / "table.npy"
    pages = table.stat().st_size // 4096
    assert cached_pages(table) < pages / 10  # the writer's small pages are gone (the header was read)
    assert int(np.asarray(mapped.table).sum() % 7) == int(snapshot.table.sum() % 7)
    assert cached_pages(table) >= pages
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.exists() and "[never]" not in thp.read_text():
        smaps = Path("/proc/self/smaps").read_text().split("\n")
        at = next(i for i, line in enumerate(smaps) if line.endswith(str(table)))
        flags = next(line for line in smaps[at:] if line.startswith("VmFlags:"))
        assert " hg" in flags, flags


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_credo_serve_with_two_workers_answers_a_new_listing_within_a_second(
    registry: Seeded, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CREDO_DATABASE_URL": registry.runtime.settings.database_url,
        "CREDO_SIGNING_KEY_PATH": str(registry.runtime.settings.signing_key_path),
        "CREDO_SCHEDULER_INTERVAL": "0",
        "CREDO_LOG_REQUESTS": "0",
    }
    env.pop("CREDO_INDEX_DIR", None)
    credo = str(Path(sys.executable).with_name("credo"))
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen(
            [credo, "serve", "--port", str(port), "--workers", "2"], env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {registry.tokens['relying_party']}", "Connection": "close"}

    def check(who: str) -> str:
        # a new connection each time, so that both workers answer in turn
        res = httpx.post(
            f"{base}/api/v1/checks", json=[{"subject": who, "measure": "air-travel"}], headers=headers
        )
        assert res.status_code == 200, res.text
        (item,) = res.json()
        assert set(item) == {"subject", "measure", "decision", "ref"}
        return str(item["decision"])

    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError((tmp_path / "serve.log").read_text())
        who = person_id()
        assert {check(who) for _ in range(6)} == {"allowed"}
        list_defaulter(
            registry.runtime, who, started=date.today() - timedelta(days=20), now=datetime.now(UTC)
        )
        committed = time.monotonic()
        streak_from = None
        streak = 0
        # The bound is loose on purpose: the promise is the first answer within a second; 20 checks
        # took ~7 s in CI, each on a new connection to a server sharing two CPUs with other tests.
        while streak < 20 and time.monotonic() - committed < 30:
            if check(who) == "denied":
                streak_from = streak_from if streak else time.monotonic() - committed
                streak += 1
            else:
                streak = 0
        assert streak == 20 and streak_from is not None and streak_from < 1.0, (streak, streak_from)
        # keep-alive answers are not held back by Nagle's algorithm (they were, ~40 ms each)
        with httpx.Client() as keep_alive:
            times = []
            for _ in range(20):
                started = time.perf_counter()
                assert keep_alive.get(f"{base}/livez").status_code == 200
                times.append(time.perf_counter() - started)
        assert sorted(times)[10] < 0.02, times
        # keep-alive connections opened at once are spread over both workers (one listening
        # socket each, SO_REUSEPORT); with one socket shared, one worker took nearly all, every
        # time. Three tries: in CI (tests beside it on two CPUs) one try found all 24 with one
        # worker, which the kernel's hash does once in 2**23 while both workers listen.
        spreads = []
        for _ in range(3):
            held = _connections_held(server.pid, port, 24)
            spreads.append(held)
            if sum(held) == 24 and sorted(held)[-2] >= 4:
                break
            time.sleep(1)
        assert sum(held) == 24 and sorted(held)[-2] >= 4, spreads
    finally:
        server.terminate()
        server.wait(20)


def _connections_held(server: int, port: int, n: int) -> list[int]:
    """Open ``n`` keep-alive connections at once, one request each; how many each of the
    server's processes holds."""
    opened = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    try:
        for conn in opened:
            conn.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        for conn in opened:
            assert conn.recv(64).startswith(b"HTTP/1.1 200")
        return [
            sum(c.laddr.port == port and c.status == "ESTABLISHED" for c in w.net_connections("tcp"))
            for w in psutil.Process(server).children(recursive=True)
        ]
    finally:
        for conn in opened:
            conn.close()
