"""SIGKILL the server while agencies send batches: nothing acknowledged is lost, nothing doubled.

A real ``credo serve`` (uvicorn on a loopback port) runs against a fresh
database; two client threads send batches of 50-200 records to
``POST /api/v1/records`` with an agency token, back to back. The server is
killed with SIGKILL at a random moment (a seeded RNG), ``CREDO_CRASH_KILLS``
times (50 by default; ``make soak`` raises it), and started again each
time. Every batch not acknowledged (a connection error or no 2xx) is sent
again once the server is back. At the end:

* every record of every acknowledged batch is in the ledger exactly once,
  with the sequence number its acknowledgement gave;
* every record ever sent is there exactly once after the retries;
* SQLite's ``PRAGMA integrity_check`` says ``ok``;
* ``credo audit verify`` (the CLI) exits 0.

Each kill lands a random 20-300 ms after the restarted server acknowledged
its first batch, so every run makes progress however slow the machine.
Against PostgreSQL (a fresh database; the server process is killed, not
PostgreSQL) it kills half as many times.

Starting: ``credo``'s imports take seconds on a busy two-core machine, which
50 restarts cannot afford. So a launcher process imports the CLI once (and
builds its command tree and one throw-away app, which warms class-level
caches) and, for every (re)start, forks a fresh child that runs ``credo
serve`` from the top (settings, database, migrations, catalogs, app,
uvicorn): a pre-loading server, as gunicorn's ``--preload``. The launcher
never opens the database. The child is what gets killed, by its own pid.
``credo audit verify`` is run the same way.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from factories import person_id
from sqlalchemy import func, select

from credo.access.services import create_token
from credo.runtime import Runtime, bootstrap
from credo.settings import load_settings
from credo.store.tables import log_state, records

pytestmark = pytest.mark.slow

AGENCY = "CN-ZJ-HZ-TP"
KILLS = int(os.environ.get("CREDO_CRASH_KILLS", "50"))
# PostgreSQL gets half as many (the database itself is not what is killed,
# and both runs must fit in about a minute and a half on a two-core machine).
KILLS_BY_DATABASE = {"sqlite": KILLS, "postgresql": max(10, KILLS // 2)}
SEED = int(os.environ.get("CREDO_CRASH_SEED", "20261126"))
POSTGRES_URL = os.environ.get("CREDO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Reads commands on stdin, one per line, and answers one line each:
#   serve PORT LOG   -> fork a child running `credo serve`; answer its pid
#   run LOG ARGS...  -> fork a child running `credo ARGS...`; answer its exit status
LAUNCHER = r"""
import os, sys
import typer
import credo.cli
from credo.api.app import create_app
from credo.runtime import Runtime

# Pay once for what every start would pay again: the click command tree and
# FastAPI's and pydantic's per-class set-up (the first create_app is slow,
# the next ones are not). No connection is opened here.
command = typer.main.get_command(credo.cli.app)
warm = Runtime.open()
create_app(warm)
warm.db.dispose()

def child(argv, log):
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    sys.argv = ["credo", *argv]
    code = 0
    try:
        command.main(args=argv, prog_name="credo")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

for line in sys.stdin:
    verb, *args = line.split()
    if verb == "serve":
        port, log = args
        pid = os.fork()
        if pid == 0:
            child(["serve", "--host", "127.0.0.1", "--port", port, "--workers", "1"], log)
        print(pid, flush=True)
    elif verb == "run":
        log, *argv = args
        pid = os.fork()
        if pid == 0:
            child(argv, log)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
    elif verb == "reap":
        os.waitpid(int(args[0]), 0)
        print("ok", flush=True)
"""


class Launcher:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER],
            env={**env, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer, f"the launcher died (exit {self.proc.poll()})"
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        self.proc.stdout.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stream:
    """The batches, which of them were sent, and what the server acknowledged."""

    bodies: list[bytes]
    refs: list[list[str]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    retry: deque[int] = field(default_factory=deque)
    next_fresh: int = 0
    finishing: bool = False
    in_flight: set[int] = field(default_factory=set)
    sent: set[int] = field(default_factory=set)
    acked: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    up: threading.Event = field(default_factory=threading.Event)
    serving: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    base: str = ""

    def take(self) -> int | None:
        with self.lock:
            if self.retry:
                i = self.retry.popleft()
            elif not self.finishing and self.next_fresh < len(self.bodies):
                i = self.next_fresh
                self.next_fresh += 1
            else:
                return None
            self.in_flight.add(i)
            self.sent.add(i)
            return i

    def done(self, i: int, answer: dict[str, Any] | None) -> None:
        with self.lock:
            self.in_flight.discard(i)
            if answer is None:
                self.failures += 1
                self.retry.append(i)
            else:
                self.acked[i] = answer

    def drained(self) -> bool:
        with self.lock:
            return not self.retry and not self.in_flight


def sender(stream: Stream, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(headers=headers, timeout=30) as client:
        while not stream.stop.is_set():
            if not stream.up.wait(0.1):
                continue
            i = stream.take()
            if i is None:
                time.sleep(0.01)
                continue
            try:
                res = client.post(f"{stream.base}/api/v1/records", content=stream.bodies[i])
            except httpx.HTTPError:
                stream.done(i, None)  # the server died under us: send it again later
                stream.up.wait(5)
                continue
            if res.status_code // 100 == 2:
                stream.done(i, orjson.loads(res.content))
                stream.serving.set()
            else:
                if res.status_code < 500 and res.status_code != 429:  # busy is fine: sent again
                    stream.errors.append(f"batch {i}: HTTP {res.status_code}: {res.text[:300]}")
                stream.done(i, None)


def make_stream(rng: random.Random, batches: int) -> Stream:
    run = secrets.token_hex(3)
    bodies, refs = [], []
    n = 0
    for _ in range(batches):
        items = []
        for _ in range(rng.randint(50, 200)):
            items.append(
                {
                    "agency_ref": f"crash-{run}-{n}",
                    "subject": person_id(rng.randrange(1, 50_000)),
                    "rule": "CN-ZJ-HZ.TRAFFIC-RED-LIGHT",
                    "occurred_on": "2024-03-01",
                    "evidence": f"https://example.invalid/crash/{run}/{n}",
                }
            )
            n += 1
        bodies.append(orjson.dumps(items))
        refs.append([item["agency_ref"] for item in items])
    return Stream(bodies, refs)


def wait_until_up(base: str, pid: int, deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not psutil.pid_exists(pid):
            raise AssertionError("credo serve exited on start")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"credo serve did not come up within {deadline} s")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'crash.db'}"


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable under CI=true: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    name = f"credo_crash_{secrets.token_hex(4)}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_sigkill_loses_no_acknowledged_record_and_doubles_none(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url: str = request.getfixturevalue(f"{database}_url")
    env = {
        **os.environ,
        "CREDO_DATABASE_URL": url,
        "CREDO_SIGNING_KEY_PATH": str(tmp_path / "keys" / "log.key"),
    }
    settings = load_settings(env)
    runtime = Runtime.open(settings)
    bootstrap(runtime)
    with runtime.db.begin() as conn:
        token = create_token(conn, "agency", agency=AGENCY, label="crash test")
    # Nothing of ours stays open: each restart recovers the database alone.
    runtime.db.dispose()

    rng = random.Random(SEED)
    stream = make_stream(rng, batches=KILLS_BY_DATABASE[database] * 25 + 50)
    log = str(tmp_path / "serve.log")
    launcher = Launcher(env)
    threads = [threading.Thread(target=sender, args=(stream, token), daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    started = time.monotonic()
    pid = -1
    kills = KILLS_BY_DATABASE[database]
    try:
        for _ in range(kills):
            port = free_port()
            pid = int(launcher.ask(f"serve {port} {log}"))
            stream.base = f"http://127.0.0.1:{port}"
            wait_until_up(stream.base, pid)
            stream.serving.clear()
            stream.up.set()
            assert stream.serving.wait(60), "no batch was acknowledged within 60 s"
            time.sleep(rng.uniform(0.020, 0.300))
            stream.up.clear()
            os.kill(pid, signal.SIGKILL)
            launcher.ask(f"reap {pid}")
            pid = -1
        # Back once more, for good: every batch not acknowledged is sent again.
        with stream.lock:
            stream.finishing = True
        port = free_port()
        pid = int(launcher.ask(f"serve {port} {log}"))
        stream.base = f"http://127.0.0.1:{port}"
        wait_until_up(stream.base, pid)
        stream.up.set()
        deadline = time.monotonic() + 120
        while not stream.drained():
            assert time.monotonic() < deadline, "the retries did not drain"
            time.sleep(0.05)
        stream.stop.set()
        for t in threads:
            t.join(30)
        os.kill(pid, signal.SIGTERM)
        launcher.ask(f"reap {pid}")
        pid = -1
        verified = launcher.ask(f"run {tmp_path / 'verify.log'} audit verify")
    finally:
        stream.stop.set()
        stream.up.set()
        if pid > 0:  # a failure above must not leave our server behind (not yet reaped: still ours)
            os.kill(pid, signal.SIGKILL)
        launcher.close()
    elapsed = time.monotonic() - started

    assert not stream.errors, stream.errors[:5]
    assert stream.failures > 0, "no kill ever caught a batch in flight: the test proves nothing"
    assert set(stream.acked) == stream.sent, "a batch that was sent was never acknowledged"

    with runtime.db.read() as conn:
        stored = dict(conn.execute(select(records.c.agency_ref, records.c.seq)).all())
        count = conn.execute(select(func.count()).select_from(records)).scalar_one()
        size = conn.execute(select(log_state.c.size)).scalar_one()
        integrity = (
            conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() if database == "sqlite" else "ok"
        )
    runtime.db.dispose()

    sent_refs = [ref for i in sorted(stream.sent) for ref in stream.refs[i]]
    assert count == len(stored) == len(sent_refs), "a record is missing or stored twice"
    assert set(stored) == set(sent_refs)
    assert size == count == max(stored.values()), "the log and the ledger disagree"
    for i, answer in stream.acked.items():
        assert [item["agency_ref"] for item in answer["items"]] == stream.refs[i]
        for item in answer["items"]:
            assert item["status"] in ("accepted", "duplicate"), item
            assert stored[item["agency_ref"]] == item["seq"], "an acknowledgement named another seq"
    assert integrity == "ok"
    assert verified == "0", Path(tmp_path / "verify.log").read_text()[-2000:]
    print(
        f"{database}: {kills} kills, {len(stream.sent)} batches ({count} records), "
        f"{stream.failures} sends cut off and retried, {elapsed:.0f} s"
    )
