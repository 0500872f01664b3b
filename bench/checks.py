"""Relying-party checks: the index at country scale in-process, then under load beside a bare endpoint.

    .venv/bin/python bench/checks.py [--seconds 8] [--subjects 20000] [--workers 2]
                                     [--listed 20000000] [--skip-server] [--write-results]

1. **Country scale, in-process** (no database): a check-index snapshot of
   ``--listed`` subjects (synthetic resident identity numbers: 3,000 regions,
   birth dates over 90 years, sequence numbers) for one measure, published
   to a folder as ``credo serve`` does (``lists/snapshots.py``). Reported:
   the files' size (what each worker maps), then two worker processes map
   it and read every page, and each one's resident and proportional memory
   of those mappings (``/proc/PID/smaps``: PSS charges a page shared by n
   processes 1/n to each). For comparison, a pyroaring bitmap of as many
   subject numbers below 1.4 billion (the former index), which each worker
   would copy. Then the look-up: ``CheckIndex.decide_many`` over manifests
   of 300 (and 1,000) fresh subjects, about 2 % of them listed, per
   subject; the single-subject path; and the whole ``answer`` (validation,
   look-up, answers, log rows) per subject.
2. **Under load**, per database (SQLite; PostgreSQL at ``--postgres``): a
   registry with a simulated population and its listings, a real ``credo
   serve`` with ``--workers`` workers (they share one snapshot folder), and
   a client on loopback (bench/load.py's HTTP/1.1 keep-alive client, bodies
   encoded before the run): for the bare ``/livez`` (a constant, no
   database: the ceiling), single checks, manifests of 300 of the registry's
   persons (200 bodies over its ~3,000 people, sent again and again: what runs
   before 2026-12-07 16:00 UTC reported), and manifests of 300 fresh
   passengers (6,000 bodies of 294 valid identity numbers the registry has
   never seen and 6 of its listed persons: the subject-checks a second), the capacity
   (closed loop, 32 connections, ``--seconds``) and an open loop at 70 % of
   it (sent on schedule, latency from the scheduled moment: no coordinated
   omission). Every check is logged (the check log, group-committed) and
   every request leaves its access-log row, as in production; only the
   per-request stdout log line is off.

Client and server share this machine's two cores, and other engineers'
work ran on them too: the load average is reported with each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil
import uvloop
from client_gc import no_full_collections
from load import Connection, database, request, server

ROOT = Path(__file__).resolve().parents[1]
CREDO = str(ROOT / ".venv" / "bin" / "credo")
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


# -- country scale, in-process ---------------------------------------------------------------


def county_codes() -> np.ndarray:
    """The six-digit region codes of stdnum's GB/T 2260 table."""
    from stdnum import numdb

    def walk(nodes: Any, prefix: str) -> Any:
        for _length, low, _high, _props, children in nodes:
            if len(prefix + low) == 6:
                yield int(prefix + low)
            if children:
                yield from walk(children, prefix + low)

    return np.array(sorted(set(walk(numdb.get("cn/loc").prefixes, ""))), np.int64)


def person_keys(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` synthetic resident identity numbers as index keys (their 17 digits)."""
    regions = county_codes()
    region = regions[rng.integers(0, len(regions), n)]
    born = np.datetime64("1950-01-01") + rng.integers(0, 365 * 55, n).astype("timedelta64[D]")
    year = born.astype("datetime64[Y]").astype(np.int64) + 1970
    month = born.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (born - born.astype("datetime64[M]")).astype(np.int64) + 1
    digits = region * 10**11 + year * 10**7 + month * 10**5 + day * 10**3 + rng.integers(0, 1000, n)
    return digits.astype(np.uint64)


def texts(keys: np.ndarray) -> list[str]:
    out = []
    for number in keys.tolist():
        body = f"{number:017d}"
        check = (12 - sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11) % 11
        out.append(f"person:{body}{'0123456789X'[check]}")
    return out


def _mapper(folder: str, pipe: Any) -> None:
    """A worker: map the snapshot, read every page, answer a few checks, then wait."""
    from credo.lists.index import CheckIndex
    from credo.lists.snapshots import SnapshotStore

    store = SnapshotStore(Path(folder), "bench")
    meta = store.latest()
    assert meta is not None
    snapshot = store.load(meta)
    touched = int(np.asarray(snapshot.table).sum() % 7) + int(np.asarray(snapshot.bits).sum() % 7)
    index = CheckIndex({"air-travel": "deny"}, snapshot)
    pipe.send((touched, index.decide("air-travel", "person:110105194912310021")))
    pipe.recv()


def _valid(identifier: str) -> bool:
    from credo.ids import IdentifierError, parse_subject_ref

    try:
        return parse_subject_ref(identifier).kind == "person"  # 18 digits may also be a USCC
    except IdentifierError:
        return False


def per_subject(fn: Any, manifests: list[Any], size: int) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for manifest in manifests:
        fn(manifest)
    n = len(manifests) * size
    return {
        "ns_per_subject_cpu": round((time.process_time() - cpu) / n * 1e9, 1),
        "ns_per_subject_wall": round((time.perf_counter() - wall) / n * 1e9, 1),
    }


def country_scale(listed: int) -> dict[str, Any]:
    from pyroaring import BitMap

    from credo.lists.checks import Party, answer
    from credo.lists.index import CheckIndex, Snapshot
    from credo.lists.snapshots import SnapshotStore

    rng = np.random.default_rng(1)
    started = time.perf_counter()
    keys = np.unique(person_keys(rng, int(listed * 1.02)))[:listed]
    rng.shuffle(keys)
    generated = time.perf_counter()
    snapshot = Snapshot.from_keys(keys, {"air-travel": np.arange(len(keys))}, {}, os.urandom(16))
    built = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="credo-checks-index-"))
    out: dict[str, Any] = {"listed": len(keys)}
    try:
        mapped = SnapshotStore(folder, "bench").publish(snapshot, anchor=None)
        published = time.perf_counter()
        sizes = snapshot.nbytes()
        out["build_s"] = round(built - generated, 1)
        out["publish_s"] = round(published - built, 1)
        out["files_mib"] = {k: round(v / 2**20, 1) for k, v in sizes.items()}
        out["mapped_mib_one_measure"] = round((snapshot.table.nbytes + snapshot.bits.nbytes) / 2**20, 1)
        # two workers map the same files
        spawn = multiprocessing.get_context("spawn")
        pipes, procs = [], []
        for _ in range(2):
            ours, theirs = spawn.Pipe()
            proc = spawn.Process(target=_mapper, args=(str(folder), theirs))
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        answers = [p.recv() for p in pipes]
        from credo.lists.snapshots import mapped_memory

        workers = [mapped_memory(int(proc.pid or 0), folder) for proc in procs]
        for p in pipes:
            p.send("done")
        for proc in procs:
            proc.join(30)
        assert len(set(answers)) == 1
        out["workers"] = [{k: round(v / 2**20, 1) for k, v in w.items()} for w in workers]
        # the former index: a pyroaring bitmap over subject numbers, copied into every worker
        numbers = np.unique(rng.integers(1, 1_400_000_000, listed, dtype=np.uint32))
        out["pyroaring_bitmap_mib_per_worker"] = round(len(BitMap(numbers).serialize()) / 2**20, 1)
        # look-ups: fresh manifests, ~2 % listed, as the API calls them (canonical texts)
        index = CheckIndex({"air-travel": "deny"}, mapped)  # as a worker has it
        del snapshot
        probes = person_keys(rng, 300 * 400)
        listed_probe = rng.integers(0, len(keys), 300 * 400)
        mix = np.where(rng.random(300 * 400) < 0.02, keys[listed_probe], probes)
        subjects = texts(mix)
        manifests = [subjects[i : i + 300] for i in range(0, len(subjects), 300)]
        measures = ["air-travel"] * 300
        for _ in range(2):  # warm the pages and the code
            for manifest in manifests[:50]:
                index.decide_many(manifest, measures, canonical=True)
        out["decide_many_300"] = per_subject(
            lambda m: index.decide_many(m, measures, canonical=True), manifests, 300
        )
        big = [subjects[i : i + 1000] for i in range(0, len(subjects), 1000)]
        thousand = ["air-travel"] * 1000
        out["decide_many_1000"] = per_subject(
            lambda m: index.decide_many(m, thousand, canonical=True), big, 1000
        )
        # with an overlay of 50,000 changed subjects (the keeper rebuilds past 100,000)
        changed = index.with_overlay({s: frozenset() for s in texts(person_keys(rng, 50_000))}, 1)
        out["decide_many_300_overlay_50k"] = per_subject(
            lambda m: changed.decide_many(m, measures, canonical=True), manifests, 300
        )
        singles = subjects[:20000]
        out["decide_one"] = per_subject(lambda s: index.decide("air-travel", s), singles, 1)
        party = Party("CA", "bench", frozenset({"air-travel"}))
        valid = [s for s in subjects if _valid(s[7:])]  # a region code out of use that year: 422
        items = [
            [{"subject": s[7:], "measure": "air-travel"} for s in valid[i : i + 300]]
            for i in range(0, len(valid) - 299, 300)
        ]
        now = datetime.now(UTC)
        out["answer_300"] = per_subject(lambda m: answer(index, party, m, now), items, 300)
        out["generate_s"] = round(generated - started, 1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


# -- under load --------------------------------------------------------------------------------


def run(env: dict[str, str], *args: str) -> str:
    return subprocess.run([CREDO, *args], env=env, check=True, capture_output=True, text=True).stdout


FRESH_MANIFESTS = 6000  # 1.8 M passengers: each comes back every ~10 s at 600 manifests/s


def passengers(listed: list[str], manifests: int, rng: random.Random) -> list[list[str]]:
    """Manifests as an airline sends them: bare resident identity numbers, 294 of people the
    registry has never seen (synthetic, each valid) and 6 of its listed persons (2 %)."""
    from credo.ids import canonical_persons

    fresh: list[str] = []
    keys = np.random.default_rng(11)
    while len(fresh) < manifests * 294:
        candidates = [t[7:] for t in texts(person_keys(keys, manifests * 294))]
        fresh += [t for t, ok in zip(candidates, canonical_persons(candidates), strict=True) if ok]
    out = []
    for i in range(manifests):
        manifest = fresh[i * 294 : (i + 1) * 294] + rng.choices(listed, k=6)
        rng.shuffle(manifest)
        out.append(manifest)
    return out


def prepare(env: dict[str, str], subjects: int) -> tuple[str, list[str], int, list[str]]:
    run(env, "db", "upgrade")
    run(
        env, "simulate", "population", "--subjects", str(subjects), "--years", "3", "--seed", "7", "--into-db"
    )
    run(env, "lists", "refresh")
    run(
        env,
        "party",
        "add",
        "CA",
        "--name",
        "Air China",
        "--sector",
        "aviation",
        "--purpose",
        "bench",
        "--measure",
        "air-travel",
    )
    token = json.loads(
        run(env, "token", "create", "--role", "relying_party", "--relying-party", "CA", "--json")
    )
    from sqlalchemy import create_engine, text

    url = env["CREDO_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = [
            str(i)
            for i in conn.execute(text("SELECT identifier FROM subjects WHERE kind = 'person'")).scalars()
        ]
        listed = int(conn.execute(text("SELECT count(DISTINCT subject_id) FROM listings")).scalar_one())
        listed_ids = [
            str(i)
            for i in conn.execute(
                text(
                    "SELECT DISTINCT s.identifier FROM subjects s JOIN listings l ON l.subject_id = s.id "
                    "WHERE s.kind = 'person'"
                )
            ).scalars()
        ]
    engine.dispose()
    return token["token"], ids, listed, listed_ids


class Sender:
    """One keep-alive connection of the client, reopened when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: Connection | None = None

    async def send(self, body: bytes) -> int:
        try:
            if self.conn is None:
                self.conn = Connection(*await asyncio.open_connection("127.0.0.1", self.port, limit=2**20))
            return await asyncio.wait_for(self.conn.exchange(body), 30)
        except EOFError as closing:  # answered, then closed
            self.close()
            return int(closing.args[0])
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            self.close()
            return 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


async def closed_loop(port: int, bodies: list[bytes], seconds: float, conns: int = 32) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal done
        sender, i = Sender(port), k
        while time.perf_counter() < stop:
            status = await sender.send(bodies[i % len(bodies)])  # (not "done += await ...": that
            done += status == 200  # reads done before the await and loses the others' counts)
            i += conns
        sender.close()

    await asyncio.gather(*(client(k) for k in range(conns)))
    return done / seconds


async def open_loop(
    port: int, bodies: list[bytes], rate: float, seconds: float, conns: int = 64
) -> dict[str, Any]:
    """Request i is due at start + i / rate, whatever became of the earlier ones; its latency
    counts from then. ``conns`` senders take the next due request when free (no task and no
    pool lock per request: the client must cost less than the server it measures)."""
    n = max(1, int(rate * seconds))
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.2
    due = iter(range(n))

    async def client() -> None:
        nonlocal errors
        sender = Sender(port)
        for i in due:
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if await sender.send(bodies[i % len(bodies)]) != 200:
                errors += 1
            latencies.append(time.perf_counter() - scheduled)
        sender.close()

    with no_full_collections():  # the client's pause would be the server's p99 (client_gc.py)
        await asyncio.gather(*(client() for _ in range(conns)))
    lat = sorted(latencies)
    return {
        "rate": round(rate, 1),
        "requests": n,
        "errors": errors,
        "p50_ms": round(1000 * lat[len(lat) // 2], 2),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time of the server's processes (the supervisor and its workers) so far."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(sum(p.cpu_times()[:2]) for p in procs)


async def measure(port: int, pid: int, bodies: list[bytes], seconds: float) -> dict[str, Any]:
    await closed_loop(port, bodies, min(2.0, seconds / 2))  # warm-up
    cpu = cpu_seconds(pid)
    capacity = await closed_loop(port, bodies, seconds)
    server_cpu_ms = (cpu_seconds(pid) - cpu) * 1000 / max(1.0, capacity * seconds)
    at70 = await open_loop(port, bodies, 0.7 * capacity, seconds)
    return {
        "capacity_rps": round(capacity, 1),
        "server_cpu_ms_per_request": round(server_cpu_ms, 2),
        "at_70pct": at70,
    }


def server_memory(pid: int, folder: Path) -> dict[str, Any]:
    from credo.lists.snapshots import mapped_memory

    workers = psutil.Process(pid).children(recursive=True) or [psutil.Process(pid)]
    return {
        "rss_mib": [round(w.memory_info().rss / 2**20, 1) for w in workers],
        "index_pss_kib": [round(mapped_memory(w.pid, folder)["pss"] / 1024, 1) for w in workers],
    }


def bench_database(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="credo-checks-"))
    env = {
        **os.environ,
        "CREDO_DATABASE_URL": url,
        "CREDO_SIGNING_KEY_PATH": str(tmp / "key"),
        "CREDO_LOG_REQUESTS": "0",
        "CREDO_RATE_PER_MINUTE": "100000000",
        "CREDO_MAX_IN_FLIGHT": "100000",
        "CREDO_SCHEDULER_INTERVAL": "0",
        "CREDO_WORKERS": str(args.workers),
        "CREDO_INDEX_DIR": str(tmp / "index"),
    }
    token, ids, listed, listed_ids = prepare(env, args.subjects)
    rng = random.Random(1)

    def body(items: list[dict[str, str]]) -> bytes:
        return request("POST", "/api/v1/checks", token, orjson.dumps(items))

    kinds = {
        "bare /livez": [request("GET", "/livez", token)],
        "single check": [body([{"subject": rng.choice(ids), "measure": "air-travel"}]) for _ in range(2000)],
        "manifest of 300": [
            body([{"subject": s, "measure": "air-travel"} for s in rng.sample(ids, min(300, len(ids)))])
            for _ in range(200)
        ],
        "manifest of 300 fresh passengers": [
            body([{"subject": s, "measure": "air-travel"} for s in manifest])
            for manifest in passengers(listed_ids, FRESH_MANIFESTS, rng)
        ],
    }
    out: dict[str, Any] = {
        "database": label,
        "persons_in_db": len(ids),
        "listed": listed,
        "workers": args.workers,
    }
    try:
        with server(env, tmp / "serve.log") as (port, pid):
            out["load_avg_start"] = [round(x, 2) for x in os.getloadavg()]
            for name, bodies in kinds.items():
                # uvloop: the client's event loop costs the CPUs it shares with the server less
                out[name] = uvloop.run(measure(port, pid, bodies, args.seconds))
            out["subject_checks_per_s"] = round(out["manifest of 300 fresh passengers"]["capacity_rps"] * 300)
            out["subject_checks_per_s_registry_persons"] = round(out["manifest of 300"]["capacity_rps"] * 300)
            out["single_vs_bare"] = round(
                out["single check"]["capacity_rps"] / max(out["bare /livez"]["capacity_rps"], 1e-9), 2
            )
            out["server"] = server_memory(pid, tmp / "index")
            out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--listed", type=int, default=20_000_000)
    parser.add_argument("--skip-server", action="store_true", help="only the in-process part")
    parser.add_argument("--skip-country", action="store_true", help="only the server part")
    parser.add_argument("--databases", default="sqlite,postgresql", help="which, comma-separated")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.now(UTC).date().isoformat(),
        "machine": {
            "nproc": os.cpu_count(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
    }
    if not args.skip_country:
        results["country"] = country_scale(args.listed)
        print(json.dumps(results["country"], indent=2), flush=True)
    if not args.skip_server:
        for kind in args.databases.split(","):
            with (
                tempfile.TemporaryDirectory(prefix="credo-checks-db-") as folder,
                database(kind, Path(folder)) as url,
            ):
                results[kind] = bench_database(kind, url, args)
            print(json.dumps(results[kind], indent=2), flush=True)
    if args.write_results:
        write_results(results)


def write_results(results: dict[str, Any]) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text()
    head = "## Checks: last raw run"  # the curated "## Checks" section above it stays as written
    body = [
        head,
        "",
        f"- command: `{results['command']}` ({results['date']})",
        f"- machine: {results['machine']}",
    ]
    if "country" in results:
        body.append(f"- country scale, in-process: {results['country']}")
    for db in ("sqlite", "postgresql"):
        if db in results:
            r = results[db]
            body.append(f"- {db}: " + ", ".join(f"{k}: {v}" for k, v in r.items() if not isinstance(v, dict)))
            for name in (
                "bare /livez",
                "single check",
                "manifest of 300",
                "manifest of 300 fresh passengers",
                "server",
            ):
                body.append(f"  - {name}: {r[name]}")
    section = "\n".join(body) + "\n"
    if head in text:
        before, _, rest = text.partition(head)
        after = rest.split("\n## ", 1)
        text = before + section + (("\n## " + after[1]) if len(after) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()
