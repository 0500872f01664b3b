"""Crashes lose nothing acknowledged and double nothing: SIGKILL of the server, of the CLI ingest,
and (PostgreSQL) immediate restarts of the database itself.

**The server** (``test_sigkill_loses_no_acknowledged_record_and_doubles_none``). A real ``credo
serve`` (uvicorn on a loopback port) runs against a fresh database; two client threads send batches
of 50-200 records to ``POST /api/v1/records`` with an agency token, back to back. The server is
killed with SIGKILL at a random moment (a seeded RNG), ``CREDO_CRASH_KILLS`` times (50 by default,
on SQLite and on PostgreSQL; ``make soak`` runs 200), and started again each time. Every batch not
acknowledged (a connection error or no 2xx) is sent again once the server is back. At the end:

* every record of every acknowledged batch is in the ledger exactly once,
  with the sequence number its acknowledgement gave;
* every record ever sent is there exactly once after the retries;
* SQLite's ``PRAGMA integrity_check`` says ``ok``;
* ``credo audit verify`` (the CLI) exits 0.

Each kill lands a random 20-300 ms after the restarted server acknowledged
its first batch, so every run makes progress however slow the machine.

**The CLI ingest** (``test_sigkill_of_the_cli_ingest_mid_file_then_a_rerun_stores_every_row_once``).
``credo ingest FILE --agency CODE`` streams a JSON Lines file in transactions of 100 rows and is
killed with SIGKILL at a random moment, ``CREDO_CRASH_INGEST_KILLS`` times (half the server's kills
by default): mostly a few milliseconds after it committed one to three transactions of its own, a
quarter of the time blindly (while it starts, reads or skips what is already in). It is started
again on the same file each time, and once more to the end. Then every row of the file is in the
ledger exactly once (the agency's reference is the idempotency key) with its own content, every
record has exactly one notice, nothing went to quarantine, the log and the ledger agree, and
``credo audit verify`` exits 0.

**PostgreSQL itself** (``test_postgresql_restarts_lose_no_acknowledged_record``): the server test,
with ``CREDO_CRASH_PG_RESTARTS`` (3) of its faults an immediate stop of the PostgreSQL cluster
(``pg_ctlcluster ... stop -m immediate``: the crash, no checkpoint), down for a random 0.2-2 s,
then started again while the server keeps running and clients keep retrying (the server answers
503 with ``Retry-After`` meanwhile); one more restart cuts a CLI ingest, which is run again. Same
invariants. It stops the PostgreSQL every other test uses, so it runs only when
``CREDO_PG_RESTART=1`` or ``CI=true``, and alone: last in the session (``tests/conftest.py`` moves
tests marked ``restarts_postgres`` to the end), and after the parallel part of ``make pytest``,
which runs it in a pytest of its own (a pytest-xdist worker refuses it); a ``finally`` starts the
cluster again whatever happens.

Starting: ``credo``'s imports take seconds on a busy two-core machine, which
50 restarts cannot afford. So a launcher process imports the CLI once (and
builds its command tree and one throw-away app, which warms class-level
caches) and, for every (re)start, forks a fresh child that runs ``credo
serve`` (or ``credo ingest``) from the top (settings, database, migrations,
catalogs, app, uvicorn): a pre-loading server, as gunicorn's ``--preload``.
The launcher never opens the database. The child is what gets killed, by its
own pid. ``credo audit verify`` is run the same way.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from factories import person_id
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from credo.access.services import create_token
from credo.runtime import Runtime, bootstrap
from credo.settings import load_settings
from credo.store.tables import log_state, notices, quarantine, records

pytestmark = pytest.mark.slow

AGENCY = "CN-ZJ-HZ-TP"
RULE = "CN-ZJ-HZ.TRAFFIC-RED-LIGHT"
#: SIGKILLs of the server, per database (about a second each).
KILLS = int(os.environ.get("CREDO_CRASH_KILLS", "50"))
#: SIGKILLs of the CLI ingest, per database.
INGEST_KILLS = int(os.environ.get("CREDO_CRASH_INGEST_KILLS", str(max(5, KILLS // 2))))
#: Immediate restarts of PostgreSQL during the server run (and one more during an ingest).
PG_RESTARTS = int(os.environ.get("CREDO_CRASH_PG_RESTARTS", "3"))
INGEST_BATCH = 100
SEED = int(os.environ.get("CREDO_CRASH_SEED", "20261126"))
POSTGRES_URL = os.environ.get("CREDO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Reads commands on stdin, one per line, and answers one line each:
#   start LOG ARGS... -> fork a child running `credo ARGS...`; answer its pid
#   run LOG ARGS...   -> the same, waiting for it; answer its exit status
#   reap PID          -> wait for a started child; answer its exit status (-9: killed)
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
    if verb in ("start", "run"):
        log, *argv = args
        pid = os.fork()
        if pid == 0:
            child(argv, log)
        if verb == "start":
            print(pid, flush=True)
            continue
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
    elif verb == "reap":
        _, status = os.waitpid(int(args[0]), 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
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

    def serve(self, port: int, log: Path) -> int:
        return int(self.ask(f"start {log} serve --host 127.0.0.1 --port {port} --workers 1"))

    def kill(self, pid: int) -> int:
        """SIGKILL a started child (harmless if it has exited: it stays ours until reaped); its exit code."""
        os.kill(pid, signal.SIGKILL)
        return int(self.ask(f"reap {pid}"))

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
                if res.status_code == 500:
                    stream.errors.append(f"batch {i}: HTTP 500 (a fault must be a 503): {res.text[:300]}")
                stream.done(i, None)
                time.sleep(0.1)  # as Retry-After says, roughly


def record_item(run: str, n: int, rng: random.Random) -> dict[str, str]:
    return {
        "agency_ref": f"crash-{run}-{n}",
        "subject": person_id(rng.randrange(1, 50_000)),
        "rule": RULE,
        "occurred_on": "2024-03-01",
        "evidence": f"https://example.invalid/crash/{run}/{n}",
    }


def make_stream(rng: random.Random, batches: int) -> Stream:
    run = secrets.token_hex(3)
    bodies, refs = [], []
    n = 0
    for _ in range(batches):
        items = []
        for _ in range(rng.randint(50, 200)):
            items.append(record_item(run, n, rng))
            n += 1
        bodies.append(orjson.dumps(items))
        refs.append([item["agency_ref"] for item in items])
    return Stream(bodies, refs)


def wait_until_up(base: str, pid: int, deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:  # ours until reaped
            raise AssertionError("credo serve exited on start: see serve.log")
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


def _admin() -> Any:
    import psycopg

    return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)


@contextmanager
def postgresql_database() -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards."""
    name = f"credo_crash_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with _admin() as admin:  # a new connection: a restart of PostgreSQL ended the old ones
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    import psycopg

    try:
        _admin().close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable under CI=true: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    with postgresql_database() as url:
        yield url


def fresh_registry(url: str, tmp_path: Path) -> tuple[dict[str, str], Runtime]:
    """Migrate the database at ``url``; the environment a ``credo`` child runs with, and our runtime."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CREDO_DATABASE_URL": url,
        "CREDO_SIGNING_KEY_PATH": str(tmp_path / "keys" / "log.key"),
        "CREDO_LOG_REQUESTS": "0",
    }
    runtime = Runtime.open(load_settings(env))
    bootstrap(runtime)
    return env, runtime


class Cluster:
    """The local PostgreSQL cluster the tests use, stopped the hard way and started again."""

    def __init__(self) -> None:
        url = make_url(POSTGRES_URL)
        versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
        problem = None
        if shutil.which("pg_ctlcluster") is None or not versions:
            problem = "no local PostgreSQL cluster (pg_ctlcluster, /etc/postgresql) to restart"
        elif url.host not in (None, "127.0.0.1", "localhost", "::1"):
            problem = f"PostgreSQL at {url.host} is not on this machine: it cannot be restarted"
        if problem is not None:
            if os.environ.get("CI") == "true":
                pytest.fail(problem)
            pytest.skip(problem)
        self.version = versions[-1]

    def ctl(self, *args: str) -> None:
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def crash(self, down: float) -> None:
        """Stop without a checkpoint (the crash), stay down ``down`` seconds, start (crash recovery)."""
        self.ctl("stop", "-m", "immediate")
        time.sleep(down)
        self.start()

    def start(self) -> None:
        if subprocess.run(["pg_isready", "-q", "-d", POSTGRES_URL], check=False).returncode != 0:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", "start"],
                check=False,
                capture_output=True,
                timeout=120,
            )
        end = time.monotonic() + 60
        while subprocess.run(["pg_isready", "-q", "-d", POSTGRES_URL], check=False).returncode != 0:
            assert time.monotonic() < end, "PostgreSQL did not come back within 60 s"
            time.sleep(0.1)


def restarts_permitted() -> None:
    if os.environ.get("CREDO_PG_RESTART") != "1" and os.environ.get("CI") != "true":
        pytest.skip("restarts the PostgreSQL other tests use: set CREDO_PG_RESTART=1 (CI does)")


def send_through_faults(
    url: str, tmp_path: Path, faults: list[str], seed: int, cluster: Cluster | None = None
) -> None:
    """Two clients send batches while ``faults`` happen in turn ("kill": SIGKILL the server and start
    it again; "restart": crash PostgreSQL and start it again, the server running on); then check."""
    env, runtime = fresh_registry(url, tmp_path)
    with runtime.db.begin() as conn:
        token = create_token(conn, "agency", agency=AGENCY, label="crash test")
    # Nothing of ours stays open: each restart recovers the database alone.
    runtime.db.dispose()

    rng = random.Random(seed)
    # Clients send at full speed between faults, so the stream must outlast the run's time: a
    # PostgreSQL restart takes seconds (25 batches a fault ran dry at 10 restarts). Fresh batches left
    # unsent at the end cost nothing: only unacknowledged ones are sent again.
    stream = make_stream(rng, batches=len(faults) * 25 + faults.count("restart") * 300 + 50)
    log = tmp_path / "serve.log"
    launcher = Launcher(env)
    threads = [threading.Thread(target=sender, args=(stream, token), daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    started = time.monotonic()
    pid = -1

    def start_server() -> int:
        port = free_port()
        child = launcher.serve(port, log)
        stream.base = f"http://127.0.0.1:{port}"
        wait_until_up(stream.base, child)
        stream.up.set()
        return child

    try:
        for fault in faults:
            if pid < 0:
                pid = start_server()
            stream.serving.clear()
            acknowledged = stream.serving.wait(60)
            assert acknowledged or stream.next_fresh < len(stream.bodies), "the stream ran dry: raise batches"
            assert acknowledged, "no batch was acknowledged within 60 s"
            time.sleep(rng.uniform(0.020, 0.300))
            if fault == "kill":
                stream.up.clear()
                launcher.kill(pid)
                pid = -1
            else:
                assert cluster is not None
                cluster.crash(rng.uniform(0.2, 2.0))
        # Back once more, for good: every batch not acknowledged is sent again.
        with stream.lock:
            stream.finishing = True
        if pid < 0:
            pid = start_server()
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
            launcher.kill(pid)
        launcher.close()
    elapsed = time.monotonic() - started

    assert not stream.errors, stream.errors[:5]
    assert stream.failures > 0, "no fault ever caught a batch in flight: the test proves nothing"
    assert set(stream.acked) == stream.sent, "a batch that was sent was never acknowledged"

    sent_refs = [ref for i in sorted(stream.sent) for ref in stream.refs[i]]
    stored = check_ledger(runtime, sent_refs)
    for i, answer in stream.acked.items():
        assert [item["agency_ref"] for item in answer["items"]] == stream.refs[i]
        for item in answer["items"]:
            assert item["status"] in ("accepted", "duplicate"), item
            assert stored[item["agency_ref"]] == item["seq"], "an acknowledgement named another seq"
    assert verified == "0", Path(tmp_path / "verify.log").read_text()[-2000:]
    print(
        f"{runtime.db.dialect}: {faults.count('kill')} kills, {faults.count('restart')} PostgreSQL restarts, "
        f"{len(stream.sent)} batches ({len(stored)} records), "
        f"{stream.failures} sends cut off and retried, {elapsed:.0f} s"
    )


def check_ledger(runtime: Runtime, refs: list[str]) -> dict[str, int]:
    """Every ref exactly once, the log the size of the ledger, one notice a record, nothing
    quarantined, an intact SQLite file; the ledger as ref -> seq."""
    with runtime.db.read() as conn:
        stored = dict(conn.execute(select(records.c.agency_ref, records.c.seq)).all())
        count = conn.execute(select(func.count()).select_from(records)).scalar_one()
        size = conn.execute(select(log_state.c.size)).scalar_one()
        noticed = conn.execute(
            select(func.count(), func.count(notices.c.record_seq.distinct())).where(
                notices.c.record_seq.is_not(None)
            )
        ).one()
        quarantined = conn.execute(select(func.count()).select_from(quarantine)).scalar_one()
        integrity = (
            conn.exec_driver_sql("PRAGMA integrity_check").scalar_one()
            if runtime.db.dialect == "sqlite"
            else "ok"
        )
    runtime.db.dispose()
    assert count == len(stored) == len(refs), "a record is missing or stored twice"
    assert set(stored) == set(refs)
    assert size == count == max(stored.values()), "the log and the ledger disagree"
    assert tuple(noticed) == (count, count), "a record without its notice, or with two"
    assert quarantined == 0, "a crash made a good record look bad"
    assert integrity == "ok"
    return stored


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_sigkill_loses_no_acknowledged_record_and_doubles_none(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url: str = request.getfixturevalue(f"{database}_url")
    send_through_faults(url, tmp_path, ["kill"] * KILLS, SEED)


def ledger_size(runtime: Runtime) -> int:
    with runtime.db.read() as conn:
        return int(conn.execute(select(log_state.c.size)).scalar() or 0)


def write_file(path: Path, rows: int, rng: random.Random) -> list[dict[str, str]]:
    run = secrets.token_hex(3)
    items = [record_item(run, n, rng) for n in range(rows)]
    path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    return items


def ingest_through_faults(
    launcher: Launcher,
    runtime: Runtime,
    file: Path,
    log: Path,
    kills: int,
    rng: random.Random,
    fault: Callable[[], None] | None = None,
) -> tuple[int, int]:
    """Start ``credo ingest`` on ``file`` ``kills`` times and SIGKILL it at a random moment (or, with
    ``fault``, call it instead and let the ingest end on its own); (cut off, finished) runs."""
    command = f"start {log} ingest {file} --agency {AGENCY} --batch {INGEST_BATCH} --json"
    killed = finished = 0
    for _ in range(kills):
        before = ledger_size(runtime)
        pid = int(launcher.ask(command))
        if rng.random() < 0.25:  # blind: while it starts, reads, or skips what is in already
            time.sleep(rng.uniform(0, 0.6))
        else:  # a moment after it committed one to three transactions of its own
            target = before + rng.randint(1, 3) * INGEST_BATCH
            end = time.monotonic() + 60
            while ledger_size(runtime) < target and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                assert time.monotonic() < end, "the ingest made no progress within 60 s"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.03))
        if fault is None:
            code = launcher.kill(pid)
        else:
            fault()
            end = time.monotonic() + 60
            while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                assert time.monotonic() < end, "the ingest did not end within 60 s of the fault"
                time.sleep(0.05)
            code = launcher.kill(pid)
            assert code != -signal.SIGKILL
        killed += code != 0
        finished += code == 0
    runtime.db.dispose()
    return killed, finished


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_sigkill_of_the_cli_ingest_mid_file_then_a_rerun_stores_every_row_once(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url: str = request.getfixturevalue(f"{database}_url")
    env, runtime = fresh_registry(url, tmp_path)
    rng = random.Random(SEED + 1)
    file = tmp_path / "week.jsonl"
    items = write_file(file, INGEST_KILLS * 4 * INGEST_BATCH + 1000, rng)
    log = tmp_path / "ingest.log"
    launcher = Launcher(env)
    started = time.monotonic()
    try:
        killed, finished = ingest_through_faults(launcher, runtime, file, log, INGEST_KILLS, rng)
        before_last = ledger_size(runtime)
        runtime.db.dispose()
        last = launcher.ask(f"run {log} ingest {file} --agency {AGENCY} --batch {INGEST_BATCH} --json")
        verified = launcher.ask(f"run {tmp_path / 'verify.log'} audit verify")
    finally:
        launcher.close()
    elapsed = time.monotonic() - started

    assert last == "0", log.read_text()[-2000:]
    assert killed >= INGEST_KILLS // 2, (
        f"only {killed} of {INGEST_KILLS} runs were cut off: the file is too short"
    )
    assert 0 < before_last < len(items), "the kills must leave part of the file in and part out"
    stored = check_ledger(runtime, [item["agency_ref"] for item in items])
    with runtime.db.read() as conn:
        evidence = dict(conn.execute(select(records.c.agency_ref, records.c.evidence)).all())
    runtime.db.dispose()
    assert evidence == {item["agency_ref"]: item["evidence"] for item in items}, (
        "a row stored with another's content"
    )
    assert verified == "0", (tmp_path / "verify.log").read_text()[-2000:]
    print(
        f"{database}: ingest of {len(items)} rows killed {killed} times ({finished} runs finished first), "
        f"{before_last} rows in before the last run, {len(stored)} after, {elapsed:.0f} s"
    )


@pytest.mark.restarts_postgres
def test_postgresql_restarts_lose_no_acknowledged_record(postgresql_url: str, tmp_path: Path) -> None:
    restarts_permitted()
    cluster = Cluster()
    rng = random.Random(SEED + 2)
    # The restarts spread among server kills, none first (the server must be serving).
    faults = ["kill"] * max(PG_RESTARTS, 6)
    for position in rng.sample(range(1, len(faults) + PG_RESTARTS), PG_RESTARTS):
        faults.insert(position, "restart")
    try:
        send_through_faults(postgresql_url, tmp_path / "serve", faults, SEED + 2, cluster)

        # One more restart in the middle of a CLI ingest: the run fails, half of nothing; a rerun finishes.
        with postgresql_database() as url:
            env, runtime = fresh_registry(url, tmp_path / "ingest")
            file = tmp_path / "ingest" / "week.jsonl"
            items = write_file(file, 100 * INGEST_BATCH, rng)
            log = tmp_path / "ingest" / "ingest.log"
            launcher = Launcher(env)
            try:
                cut, _ = ingest_through_faults(
                    launcher, runtime, file, log, 1, rng, lambda: cluster.crash(0.5)
                )
                last = launcher.ask(
                    f"run {log} ingest {file} --agency {AGENCY} --batch {INGEST_BATCH} --json"
                )
                verified = launcher.ask(f"run {tmp_path / 'verify.log'} audit verify")
            finally:
                launcher.close()
            assert cut == 1, "the ingest finished before PostgreSQL went down: the test proves nothing"
            assert last == "0", log.read_text()[-2000:]
            assert verified == "0", (tmp_path / "verify.log").read_text()[-2000:]
            check_ledger(runtime, [item["agency_ref"] for item in items])
    finally:
        cluster.start()  # whatever happened: the others' PostgreSQL is up again
