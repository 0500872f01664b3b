"""Relying-party checks under load: single checks, 300-item manifests, beside a bare endpoint.

    .venv/bin/python bench/checks.py [--seconds 8] [--subjects 20000] [--postgres URL] [--write-results]

For each database (SQLite; PostgreSQL with --postgres): a registry with a
simulated population and its listings, a real `credo serve` (uvicorn, one
worker, access log and check log on), and a client on loopback.

1. capacity: closed loop, 32 connections, for --seconds (requests/s);
2. open loop at 70 % of that capacity: requests are sent on a fixed
   schedule and latency is measured from the *scheduled* send time, so a
   slow server cannot hide queueing (no coordinated omission);
3. the same for `/livez` (returns a constant, no database): the ceiling.

Then, in-process: CheckIndex lookups per subject of a manifest, and the
index size for a whole country (20 million listed among 1.4 billion).
Client and server share this machine's cores; the numbers say so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
CREDO = str(ROOT / ".venv" / "bin" / "credo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(env: dict[str, str], *args: str) -> str:
    return subprocess.run([CREDO, *args], env=env, check=True, capture_output=True, text=True).stdout


def prepare(env: dict[str, str], subjects: int) -> tuple[str, list[str]]:
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
        ids = [f"{k}:{i}" for k, i in conn.execute(text("SELECT kind, identifier FROM subjects"))]
    engine.dispose()
    return token["token"], ids


async def closed_loop(url: str, make: Any, headers: dict[str, str], seconds: float, conns: int = 32) -> float:
    done = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(headers=headers, limits=httpx.Limits(max_connections=conns)) as client:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                method, path, body = make()
                try:
                    r = await client.request(method, url + path, json=body)
                except httpx.HTTPError:
                    continue  # counted by the open-loop run as an error; capacity counts successes
                if r.status_code == 200:
                    done += 1

        await asyncio.gather(*(worker() for _ in range(conns)))
    return done / seconds


async def open_loop(
    url: str, make: Any, headers: dict[str, str], rate: float, seconds: float
) -> dict[str, Any]:
    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(
        headers=headers, limits=httpx.Limits(max_connections=256), timeout=30
    ) as client:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            method, path, body = make()
            try:
                r = await client.request(method, url + path, json=body)
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - scheduled)

        await asyncio.gather(*(one(i) for i in range(n)))
    lat = sorted(latencies)
    return {
        "rate": round(rate, 1),
        "requests": n,
        "errors": errors,
        "p50_ms": round(1000 * lat[len(lat) // 2], 2),
        "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 2),
    }


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(Path(tempfile.gettempdir()) / f"credo-checks-serve-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([CREDO, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/livez", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def bench_database(label: str, database_url: str, subjects: int, seconds: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="credo-checks-"))
    env = {
        **os.environ,
        "CREDO_DATABASE_URL": database_url,
        "CREDO_SIGNING_KEY_PATH": str(tmp / "key"),
        "CREDO_LOG_REQUESTS": "0",
        "CREDO_RATE_PER_MINUTE": "100000000",
        "CREDO_MAX_IN_FLIGHT": "100000",
        "CREDO_SCHEDULER_INTERVAL": "0",
    }
    token, ids = prepare(env, subjects)
    proc, url = serve(env)
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(1)

    def single() -> tuple[str, str, Any]:
        return "POST", "/api/v1/checks", [{"subject": rng.choice(ids), "measure": "air-travel"}]

    def manifest() -> tuple[str, str, Any]:
        return (
            "POST",
            "/api/v1/checks",
            [{"subject": s, "measure": "air-travel"} for s in rng.sample(ids, 300)],
        )

    def bare() -> tuple[str, str, Any]:
        return "GET", "/livez", None

    out: dict[str, Any] = {"database": label, "subjects_in_db": len(ids)}
    try:
        rss0 = psutil.Process(proc.pid).memory_info().rss
        for name, make in (("bare /livez", bare), ("single check", single), ("manifest of 300", manifest)):
            capacity = asyncio.run(closed_loop(url, make, headers, seconds))
            at70 = asyncio.run(open_loop(url, make, headers, 0.7 * capacity, seconds))
            out[name] = {"capacity_rps": round(capacity, 1), "at_70pct": at70}
            if name == "manifest of 300":
                out[name]["subject_checks_per_s"] = round(capacity * 300)
        out["server_rss_mib"] = round(psutil.Process(proc.pid).memory_info().rss / 2**20, 1)
        out["server_rss_start_mib"] = round(rss0 / 2**20, 1)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def in_process() -> dict[str, Any]:
    from credo.lists.index import CheckIndex

    rng = np.random.default_rng(1)
    listed = np.unique(rng.integers(1, 1_400_000_000, 20_000_000, dtype=np.uint32))
    index = CheckIndex.from_enforceable({"air-travel": "deny"}, {"air-travel": listed.tolist()}, {})
    bitmap = index.bitmaps["air-travel"]
    probe = rng.integers(1, 1_400_000_000, 300, dtype=np.uint32).tolist()
    t = time.perf_counter()
    rounds = 2000
    for _ in range(rounds):
        for s in probe:
            s in bitmap  # noqa: B015 - the membership test is what is timed
    per = (time.perf_counter() - t) / (rounds * len(probe))
    # The whole decide() path for a manifest: identifier -> number -> bitmap.
    numbers = {f"person:{i}": int(n) for i, n in enumerate(listed[:300].tolist())}
    index.numbers.update(numbers)
    names = list(numbers)
    t = time.perf_counter()
    for _ in range(rounds):
        for name in names:
            index.decide("air-travel", name)
    per_decide = (time.perf_counter() - t) / (rounds * len(names))
    return {
        "listed": int(listed.size),
        "universe": 1_400_000_000,
        "bitmap_mib": round(len(bitmap.serialize()) / 2**20, 1),
        "membership_ns": round(per * 1e9, 1),
        "decide_ns_per_subject": round(per_decide * 1e9, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    machine = {
        "nproc": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine,
        "in_process": in_process(),
    }
    tmp = Path(tempfile.mkdtemp(prefix="credo-checks-db-"))
    results["sqlite"] = bench_database("sqlite", f"sqlite:///{tmp / 'bench.db'}", args.subjects, args.seconds)
    schema = f"bench_checks_{secrets.token_hex(3)}"
    from sqlalchemy import create_engine, text

    admin = create_engine(args.postgres.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        results["postgresql"] = bench_database(
            "postgresql", f"{args.postgres}?options=-csearch_path%3D{schema}", args.subjects, args.seconds
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    print(json.dumps(results, indent=2))
    if args.write_results:
        write_results(results)


def write_results(results: dict[str, Any]) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    head = "## Checks"
    body = [
        head,
        "",
        f"- command: `{results['command']}`",
        f"- machine: {results['machine']}",
        f"- in-process: {results['in_process']}",
    ]
    for db in ("sqlite", "postgresql"):
        r = results[db]
        body.append(
            f"- {db} ({r['subjects_in_db']} subjects in the database; server RSS "
            f"{r['server_rss_start_mib']} -> {r['server_rss_mib']} MiB):"
        )
        for name in ("bare /livez", "single check", "manifest of 300"):
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
