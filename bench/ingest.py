"""Benchmark: durable ingest over the HTTP API, beside a bare executemany.

    .venv/bin/python bench/ingest.py                         # SQLite and PostgreSQL, 50,000 records
    .venv/bin/python bench/ingest.py --db sqlite --records 500_000 --connections 4
    .venv/bin/python bench/ingest.py --write-results         # also update bench/RESULTS.md, "Ingest"

For each database it starts a real ``credo serve`` on a loopback port (a
fresh SQLite file, or a fresh PostgreSQL database dropped afterwards), makes
an agency token with ``credo token create``, and sends the records as JSON
batches of ``--batch`` (1,000) to ``POST /api/v1/records`` over
``--connections`` concurrent HTTP connections (httpx). Every batch must come
back 200 with every record accepted; the rate is records over the wall time
from the first request to the last answer. Each answer is sent only after
its batch committed durably (SQLite: WAL, synchronous=FULL; PostgreSQL:
synchronous_commit on).

The ceiling: the very rows the API stored, read back and inserted with the
driver's plain ``executemany``, one transaction (and fsync) per batch of
``--batch``, into a table of the same database with the same columns,
primary key, unique constraint, foreign keys and indexes as ``records``.

To split the cost, ``--in-process`` records (20,000) then go through the
services in the benchmark's own process, without HTTP: the intake the API
runs (records, their notices, listing moves) and the ledger ingest alone.

The records: a seeded synthetic stream from the Hangzhou traffic police --
subjects drawn from a pool of ``--subjects`` (9 in 10 persons, 1 in 10
organisations), every rule that agency may report, acts over three years,
a unique agency reference each. Prints the command, data size, machine,
and the results; ``--write-results`` records them in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from credo.catalog.registry import Registry, load_catalogs  # noqa: E402
from credo.ids import IdentifierError, make_ric, make_uscc, parse_subject_ref  # noqa: E402

AGENCY = "CN-ZJ-HZ-TP"
POSTGRES_ADMIN = os.environ.get("CREDO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CREDO = Path(sys.executable).with_name("credo")
RESULTS = ROOT / "bench" / "RESULTS.md"


# -- the records ----------------------------------------------------------------------------------


def agency_rules(registry: Registry) -> list[str]:
    home = registry.agency_jurisdiction(AGENCY)
    return sorted(
        {r.code for r in registry.rules_for_scheme(home) if AGENCY in r.agencies},
    )


def subject_pool(rng: random.Random, size: int) -> list[str]:
    """Valid identifiers: persons born 1950-2005 in Hangzhou districts, and organisations."""
    regions = ["330102", "330105", "330106", "330108", "330109", "330110"]
    pool: list[str] = []
    while len(pool) < size:
        if rng.random() < 0.9:
            born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
            ident = make_ric(rng.choice(regions), born, rng.randrange(1000))
        else:
            alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
            ident = make_uscc("9", "1", "330100", "".join(rng.choice(alphabet) for _ in range(9)))
        try:
            parse_subject_ref(ident)
        except IdentifierError:
            continue  # a district code not yet in use in that birth year
        pool.append(ident)
    return pool


def make_batches(
    registry: Registry, records: int, batch: int, subjects: int, seed: int
) -> tuple[list[bytes], str]:
    rng = random.Random(seed)
    run = secrets.token_hex(4)
    rules = agency_rules(registry)
    pool = subject_pool(rng, subjects)
    first = date(2023, 1, 1)
    bodies = []
    for start in range(0, records, batch):
        items = []
        for i in range(start, min(start + batch, records)):
            rule = rng.choice(rules)
            day = first + timedelta(days=rng.randrange(365 * 3))
            while registry.rule(rule, day) is None:
                day += timedelta(days=1)
            items.append(
                {
                    "agency_ref": f"{run}-{i:09d}",
                    "subject": rng.choice(pool),
                    "rule": rule,
                    "occurred_on": day.isoformat(),
                    "evidence": f"https://evidence.example/hz-tp/{run}/{i}",
                }
            )
        bodies.append(orjson.dumps(items))
    return bodies, run


# -- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    import psycopg

    name = f"credo_bench_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    base = POSTGRES_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def credo(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(CREDO), *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"credo {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children (the workers)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


@contextmanager
def server(env: dict[str, str], workers: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [str(CREDO), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"credo serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("credo serve did not answer within 60 s")
            time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def send_all(
    base: str, token: str, bodies: list[bytes], connections: int, pid: int | None = None
) -> tuple[float, float]:
    """Send every batch; (wall seconds, server CPU seconds) of all but the warm-up batch."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    busy = [0]
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=120) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                while True:
                    res = await client.post("/api/v1/records", content=body)
                    if res.status_code not in (429, 503):
                        break
                    busy[0] += 1  # the server sheds load: wait as it asks, send again
                    await asyncio.sleep(float(res.headers.get("retry-after", "1")))
                if res.status_code != 200:
                    raise SystemExit(f"HTTP {res.status_code}: {res.text[:500]}")
                out = orjson.loads(res.content)
                if out["rejected"] or out["duplicate"]:
                    raise SystemExit(f"not all accepted: {out['items'][:3]}")

        # One warm-up batch outside the clock: the first request pays for imports and caches.
        await client.post("/api/v1/records", content=bodies[0])
        queue.get_nowait()
        cpu = cpu_seconds(pid) if pid else 0.0
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
        if busy[0]:
            print(f"  (the server answered 'busy' {busy[0]} times; those batches were sent again)")
        return elapsed, (cpu_seconds(pid) - cpu) if pid else 0.0


# -- the ceiling ----------------------------------------------------------------------------------

COLUMNS = (
    "seq, agency, agency_ref, kind, subject_id, rule, rule_version, jurisdiction, "
    "occurred_on, recorded_at, evidence, target_seq, content_hash, leaf_hash"
)
CEILING_DDL = {
    "sqlite": """CREATE TABLE bench_ceiling (
        seq BIGINT NOT NULL PRIMARY KEY,
        agency VARCHAR(64) NOT NULL REFERENCES agencies (code),
        agency_ref VARCHAR(128) NOT NULL,
        kind VARCHAR(16) NOT NULL,
        subject_id INTEGER NOT NULL REFERENCES subjects (id),
        rule VARCHAR(96) NOT NULL,
        rule_version INTEGER NOT NULL,
        jurisdiction VARCHAR(32) NOT NULL,
        occurred_on DATE NOT NULL,
        recorded_at DATETIME NOT NULL,
        evidence TEXT NOT NULL,
        target_seq BIGINT REFERENCES bench_ceiling (seq),
        content_hash BLOB NOT NULL,
        leaf_hash BLOB NOT NULL,
        UNIQUE (agency, agency_ref))""",
    "postgresql": """CREATE TABLE bench_ceiling (
        seq BIGINT NOT NULL PRIMARY KEY,
        agency VARCHAR(64) NOT NULL REFERENCES agencies (code),
        agency_ref VARCHAR(128) NOT NULL,
        kind VARCHAR(16) NOT NULL,
        subject_id INTEGER NOT NULL REFERENCES subjects (id),
        rule VARCHAR(96) NOT NULL,
        rule_version INTEGER NOT NULL,
        jurisdiction VARCHAR(32) NOT NULL,
        occurred_on DATE NOT NULL,
        recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
        evidence TEXT NOT NULL,
        target_seq BIGINT REFERENCES bench_ceiling (seq),
        content_hash BYTEA NOT NULL,
        leaf_hash BYTEA NOT NULL,
        UNIQUE (agency, agency_ref))""",
}


def ceiling(kind: str, url: str, batch: int) -> tuple[int, float]:
    """Insert the stored records again with a bare executemany; (rows, seconds)."""
    if kind == "sqlite":
        import sqlite3

        conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        for pragma in ("journal_mode=wal", "synchronous=FULL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        mark, begin = "?", "BEGIN IMMEDIATE"
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        mark, begin = "%s", "BEGIN"
    conn.execute(CEILING_DDL[kind])
    conn.execute("CREATE INDEX ix_bench_ceiling_subject_id ON bench_ceiling (subject_id)")
    conn.execute("CREATE INDEX ix_bench_ceiling_target_seq ON bench_ceiling (target_seq)")
    rows = conn.execute(f"SELECT {COLUMNS} FROM records ORDER BY seq").fetchall()
    sql = f"INSERT INTO bench_ceiling ({COLUMNS}) VALUES ({', '.join([mark] * 14)})"
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute(begin)
        cur = conn.cursor()
        cur.executemany(sql, rows[i : i + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows), elapsed


# -- the run --------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {ram:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average at start {load}"
    )


def run_one(
    kind: str, bodies: list[bytes], args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    records = sum(len(orjson.loads(b)) for b in bodies)
    with database(kind, workdir) as url:
        env = {
            **os.environ,
            "CREDO_DATABASE_URL": url,
            "CREDO_SIGNING_KEY_PATH": str(workdir / f"{kind}.key"),
        }
        credo(env, "db", "upgrade")
        token = orjson.loads(credo(env, "token", "create", "--role", "agency", "--agency", AGENCY, "--json"))[
            "token"
        ]
        with server(env, args.workers) as (base, pid):
            client_cpu = time.process_time()
            seconds, server_cpu = asyncio.run(send_all(base, token, bodies, args.connections, pid))
            client_cpu = time.process_time() - client_cpu
        sent = records - len(orjson.loads(bodies[0]))  # the warm-up batch is not timed
        rows, ceiling_seconds = ceiling(kind, url, args.batch)
        if rows != records:
            raise SystemExit(f"{kind}: the ledger holds {rows} records, {records} were sent")
        parts = in_process(env, args) if args.in_process else {}
    return {
        "db": kind,
        "api": sent / seconds,
        "api_seconds": seconds,
        "server_cpu_us": server_cpu / sent * 1e6,
        "client_cpu_us": client_cpu / sent * 1e6,
        "ceiling": rows / ceiling_seconds,
        "ceiling_seconds": ceiling_seconds,
        **parts,
    }


def in_process(env: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    """The same kind of batches through the services themselves, in this process (no HTTP):
    ``credo.process.intake.ingest_and_notify`` (what the API runs: records, notices, listings)
    and ``credo.ledger.services.ingest`` (the ledger alone). Records per second."""
    from credo.ledger.services import ingest
    from credo.process.intake import ingest_and_notify
    from credo.runtime import Runtime
    from credo.settings import load_settings

    runtime = Runtime.open(load_settings(env))
    out = {}
    for name, step in (("intake", ingest_and_notify), ("ledger", ingest)):
        bodies, _ = make_batches(runtime.catalogs, args.in_process, args.batch, args.subjects, args.seed + 1)
        batches = [orjson.loads(b) for b in bodies]
        start = time.perf_counter()
        for items in batches:
            with runtime.db.begin() as conn:
                step(conn, runtime.catalogs, runtime.log, AGENCY, items, source="bench")
        out[name] = args.in_process / (time.perf_counter() - start)
    runtime.db.dispose()
    return out


def write_results(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Ingest"), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "".join(lines[:start]) + text + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--records", type=lambda s: int(s.replace("_", "")), default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--subjects", type=lambda s: int(s.replace("_", "")), default=100_000)
    parser.add_argument("--connections", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="credo serve --workers")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument(
        "--in-process",
        type=lambda s: int(s.replace("_", "")),
        default=20_000,
        help="records also sent through the services in this process, to split the cost (0: skip)",
    )
    parser.add_argument("--write-results", action="store_true", help="record them in bench/RESULTS.md")
    args = parser.parse_args()

    command = "python bench/ingest.py " + " ".join(sys.argv[1:])
    registry, errors = load_catalogs([ROOT / "catalogs"])
    if registry is None:
        raise SystemExit(f"catalogs refused: {errors}")
    bodies, _ = make_batches(registry, args.records, args.batch, args.subjects, args.seed)
    size = sum(len(b) for b in bodies)
    header = [
        f"command: {command}",
        f"data: {args.records:,} records in batches of {args.batch:,} ({size / 2**20:.1f} MiB of JSON), "
        f"{args.subjects:,} subjects, {args.connections} connections, {args.workers} server worker(s)",
        f"machine: {machine()}",
    ]
    for line in header:
        print(line, flush=True)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = []
    workdir = Path(tempfile.mkdtemp(prefix="credo-bench-"))
    try:
        for kind in kinds:
            r = run_one(kind, bodies, args, workdir)
            results.append(r)
            print(
                f"{kind:<10} API {r['api']:>9,.0f} records/s ({r['api_seconds']:.1f} s; server CPU "
                f"{r['server_cpu_us']:.0f} us/record, client {r['client_cpu_us']:.0f})   "
                f"bare executemany {r['ceiling']:>9,.0f} rows/s ({r['ceiling_seconds']:.1f} s)   "
                f"API/ceiling {r['api'] / r['ceiling']:.2f}",
                flush=True,
            )
            if "ledger" in r:
                print(
                    f"{'':<10} in-process: intake (records + notices) {r['intake']:,.0f} records/s, "
                    f"ledger ingest alone {r['ledger']:,.0f} records/s",
                    flush=True,
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.write_results:
        table = [
            "| database | API (records/s) | server CPU (us/record) | bare executemany (rows/s) | API / bare "
            "| in-process intake (records/s) | in-process ledger ingest (records/s) |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {r['db']} | {r['api']:,.0f} | {r['server_cpu_us']:.0f} | {r['ceiling']:,.0f} "
                f"| {r['api'] / r['ceiling']:.2f} | {r.get('intake', 0):,.0f} | {r.get('ledger', 0):,.0f} |"
                for r in results
            ),
        ]
        listed = "\n".join(f"- {line}" for line in header)
        write_results(f"## Ingest\n\n{listed}\n\n" + "\n".join(table) + "\n")


if __name__ == "__main__":
    main()
