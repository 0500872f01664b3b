"""Check-index snapshots on disk, memory-mapped and shared by a server's workers.

A snapshot is a folder ``snap-<version>-<token>/`` of ``.npy`` arrays and a
``meta.json``; ``current.json`` names the one in force. Publishing writes
the folder under a temporary name, flushes it, renames it, then replaces
``current.json`` (write to a temporary file and rename): a reader sees the
old snapshot or the new one, never half of one. Each worker maps the arrays
read-only (``numpy.load(mmap_mode="r")``), so their pages sit once in the
page cache whatever the number of workers. One worker builds at a time
(``flock`` on ``.lock``); the others adopt what it published. A mapping
stays valid after its folder is removed, so old folders are pruned freely.

Huge pages: a check reads two random buckets of a table of up to ~170 MiB, and
with 4 KiB pages nearly every read also misses the TLB (dearer still in a virtual
machine). The pages ``np.save`` leaves in the page cache are small ones, so
``publish`` drops them once flushed, and every mapping asks for huge pages
(``MADV_HUGEPAGE``): the first worker's reads then bring the file back as 2 MiB
pages, which later mappings share (on Linux, where the file system and the
kernel's transparent huge pages allow it; elsewhere both steps change nothing).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import mmap
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from credo.lists.index import Snapshot

FORMAT = 1
ARRAYS = ("table", "bits", "others_pos", "others_ids")
CURRENT = "current.json"
_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_cached(path: Path) -> None:
    """Let the kernel forget the file's cached pages (flushed already): the next mapping
    reads it back, in huge pages if it asks for them (see the module's docstring)."""
    if hasattr(os, "posix_fadvise"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


_HUGE = getattr(mmap, "MADV_HUGEPAGE", None)
_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _map(path: Path) -> Any:
    """The array in ``path``, mapped read-only, in huge pages where the system allows:
    a plain ndarray over the mapping (which the array keeps alive)."""
    with open(path, "rb") as handle:
        header = _HEADERS.get(np.lib.format.read_magic(handle))
        shape, fortran, dtype = header(handle) if header is not None else ((), True, np.dtype(object))
        count = int(np.prod(shape, dtype=np.int64))
        if not count:  # an empty array cannot be mapped
            return np.load(path)
        if fortran or dtype.hasobject:  # not as ``publish`` writes them: numpy's own mapping
            return np.load(path, mmap_mode="r").view(np.ndarray)
        offset = handle.tell()
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if _HUGE is not None:
        with contextlib.suppress(OSError):
            mapping.madvise(_HUGE)
    return np.frombuffer(mapping, dtype, count, offset).reshape(shape)


class SnapshotStore:
    """The snapshots of one registry database in one folder."""

    def __init__(self, directory: Path, database: str) -> None:
        self.directory = Path(directory)
        self.database = database  # the database's URL (no password): a folder serves one registry
        self.directory.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self, *, blocking: bool) -> Iterator[bool]:
        """The builder's lock across processes; yields whether it was taken."""
        with open(self.directory / ".lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def latest(self) -> dict[str, Any] | None:
        """The metadata of the snapshot in force for this database, if any."""
        try:
            meta = json.loads((self.directory / CURRENT).read_text())
        except (OSError, ValueError):
            return None
        if meta.get("format") != FORMAT or meta.get("database") != self.database:
            return None
        return dict(meta)

    def publish(self, snapshot: Snapshot, anchor: int | None) -> Snapshot:
        """Write ``snapshot`` and make it the one in force; returns it mapped from its files.

        ``anchor``: the subject of change ``snapshot.version``, which a worker
        compares with the database before trusting the snapshot.
        """
        token = secrets.token_hex(4)
        name = f"snap-{snapshot.version}-{token}"
        staging = self.directory / f".tmp-{name}"
        staging.mkdir()
        arrays: dict[str, Any] = {
            "table": snapshot.table,
            "bits": snapshot.bits,
            "others_pos": snapshot.others_pos,
            "others_ids": snapshot.others_ids,
        }
        for key, array in arrays.items():
            path = staging / f"{key}.npy"
            np.save(path, np.ascontiguousarray(array))
            _fsync(path)
            _drop_cached(path)
        meta = {
            "format": FORMAT,
            "database": self.database,
            "name": name,
            "measures": list(snapshot.measures),
            "size": snapshot.size,
            "secret": snapshot.secret.hex(),
            "built_on": None if snapshot.built_on is None else snapshot.built_on.isoformat(),
            "version": snapshot.version,
            "gaps": list(snapshot.gaps),
            "anchor": anchor,
            "created_at": time.time(),
            "bytes": {key: int(array.nbytes) for key, array in arrays.items()},
        }
        (staging / "meta.json").write_text(json.dumps(meta))
        _fsync(staging / "meta.json")
        os.rename(staging, self.directory / name)
        pointer = self.directory / f".{CURRENT}.{token}"
        pointer.write_text(json.dumps(meta))
        _fsync(pointer)
        os.replace(pointer, self.directory / CURRENT)
        _fsync(self.directory)
        self.prune(keep=name)
        return self.load(meta)

    def load(self, meta: dict[str, Any]) -> Snapshot:
        folder = self.directory / str(meta["name"])
        arrays = {key: _map(folder / f"{key}.npy") for key in ARRAYS}
        return Snapshot(
            measures=tuple(meta["measures"]),
            table=arrays["table"],
            size=int(meta["size"]),
            bits=arrays["bits"],
            others_pos=arrays["others_pos"],
            others_ids=arrays["others_ids"],
            secret=bytes.fromhex(meta["secret"]),
            built_on=None if meta["built_on"] is None else date.fromisoformat(meta["built_on"]),
            version=int(meta["version"]),
            gaps=tuple(int(g) for g in meta["gaps"]),
            path=str(folder),
        )

    def prune(self, keep: str) -> None:
        """Remove every other snapshot folder (workers still mapping one keep their pages)."""
        for entry in self.directory.iterdir():
            if entry.name.startswith(("snap-", ".tmp-snap-")) and entry.name != keep and entry.is_dir():
                # another builder's staging folder cannot exist: building holds the lock
                shutil.rmtree(entry, ignore_errors=True)

    def clear(self) -> None:
        """Forget the snapshot in force (``credo serve`` does at start: the index is rebuilt)."""
        with contextlib.suppress(FileNotFoundError):
            (self.directory / CURRENT).unlink()


def mapped_memory(pid: int, directory: Path) -> dict[str, int]:
    """What process ``pid`` maps from snapshot files under ``directory``, in bytes (Linux,
    ``/proc/PID/smaps``): ``size`` mapped, ``rss`` resident, ``pss`` its share of those pages
    (a page shared by n processes counts 1/n to each), ``huge`` mapped in huge pages."""
    prefix = str(Path(directory).resolve())
    totals = {"size": 0, "rss": 0, "pss": 0, "huge": 0}
    names = {"Size": "size", "Rss": "rss", "Pss": "pss", "FilePmdMapped": "huge"}
    inside = False
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            if _MAPPING.match(line):  # a mapping's first line: "start-end perms offset dev inode path"
                inside = line.rstrip().endswith(".npy") and prefix in line
            elif inside:
                head, _, rest = line.partition(":")
                if head in names:
                    totals[names[head]] += int(rest.split()[0]) * 1024
    return totals
