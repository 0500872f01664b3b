"""SQLite's writers of several processes take turns on a file lock beside the database."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from credo.store.db import Database, WriterLock


def _locked_elsewhere(path: Path) -> bool:
    """Whether another open file description (as another process has) finds the writer file locked."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # (closing releases a lock this description took)
    return False


def test_a_write_transaction_holds_the_file_lock_other_processes_wait_on(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'w.db'}")
    lock_file = tmp_path / "w.db-writer"
    try:
        with db.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            assert _locked_elsewhere(lock_file)
        assert not _locked_elsewhere(lock_file)
        with db.read() as conn:  # a read takes no writer lock
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
            assert not _locked_elsewhere(lock_file)
    finally:
        db.dispose()


def test_taken_again_by_its_holder_the_lock_is_let_go_only_at_the_last_release(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "x-writer"))
    assert lock.acquire() and lock.acquire()
    lock.release()
    assert _locked_elsewhere(tmp_path / "x-writer")
    lock.release()
    assert not _locked_elsewhere(tmp_path / "x-writer")


def test_a_writer_waits_for_another_process_then_writes(tmp_path: Path) -> None:
    """Another process holds the writer file lock: a write here starts only once it lets go."""
    path = tmp_path / "w.db"
    db = Database.from_url(f"sqlite:///{path}")
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.readline()",
            str(tmp_path / "w.db-writer"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            _wait_behind(db, holder)
        finally:
            holder.kill()
            db.dispose()


def _wait_behind(db: Database, holder: subprocess.Popen[str]) -> None:
    """The holder has the file lock; a write here waits for it, then goes through."""
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline() == "held\n"
    entered = threading.Event()

    def write() -> None:
        with db.begin() as conn:
            entered.set()
            conn.execute(text("INSERT INTO t VALUES (1)"))

    writer = threading.Thread(target=write)
    writer.start()
    assert not entered.wait(0.5)  # blocked on the other process's lock
    holder.stdin.write("\n")
    holder.stdin.flush()
    writer.join(10)
    assert entered.is_set() and not writer.is_alive()
    with db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1


def test_databases_of_one_file_in_one_process_share_its_lock(tmp_path: Path) -> None:
    one = Database.from_url(f"sqlite:///{tmp_path / 'w.db'}")
    two = Database.from_url(f"sqlite:///{tmp_path / '.' / 'w.db'}")
    memory = Database.from_url("sqlite://")
    try:
        assert one._writer is two._writer
        assert memory._writer is not None and memory._writer is not one._writer
    finally:
        for db in (one, two, memory):
            db.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_a_database_in_memory_has_no_lock_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = Database.from_url(url)
    try:
        with db.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert list(tmp_path.iterdir()) == []
    finally:
        db.dispose()


def test_the_lock_file_is_made_by_the_first_write_not_by_opening_the_database(tmp_path: Path) -> None:
    # A command that only reads settings (or a test on the default URL) left `credo.db-writer`
    # in the working directory.
    db = Database.from_url(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        assert not (tmp_path / "w.db-writer").exists()
        with db.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert (tmp_path / "w.db-writer").exists()
    finally:
        db.dispose()
