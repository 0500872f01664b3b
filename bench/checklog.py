"""Benchmark: the check log's commits on SQLite with its subject index filled inside them
(a trigger, migrations 0008 and 0012) and behind them (migration 0014), as the log grows.

    .venv/bin/python bench/checklog.py [--calls 40000] [--per-commit 4] [--round 1000]

Every check waits for the commit of its call (log before answer), so a commit's latency is
part of every check's. Both variants log the same calls, manifests of 300 fresh persons,
``--per-commit`` calls a commit (a group commit under load), through the real
``CheckLog.commit`` into a registry's check-log file (WAL checkpoints on a thread, as in a
server; their CPU is in the process's). "inside": the index the code had
before migration 0014 (an external-content FTS5 table that a trigger fills in the commit,
merging 16 segments at a time). "behind": the code's own, ``index_calls`` every ``--round``
calls, into the index's own file, timed apart from the commits. Reported: CPU a manifest
(commits, index rounds), each commit's wall time (p50, p99, p99.9, max) and each round's.
One process, nothing else running (the script takes ``/tmp/bench.lock`` itself).
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from credo.lists.checklog import Call, CheckLog, index_calls, index_database, log_database, prepare  # noqa: E402
from credo.store import migrate  # noqa: E402
from credo.store.db import Database  # noqa: E402

BEFORE_0014 = importlib.import_module("credo.migrations.versions.0014_check_index_behind")._BEFORE


def manifests(n: int, size: int) -> list[Call]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    return [
        Call(
            f"c{i}",
            "CA",
            "bench",
            now,
            [f"person:{rng.randrange(10**17):018d}" for _ in range(size)],
            ["air-travel"] * size,
            ["allowed"] * size,
        )
        for i in range(n)
    ]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


def run(variant: str, calls: list[Call], per_commit: int, round_calls: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="credo-checklog-"))
    try:
        registry = Database.from_url(f"sqlite:///{tmp / 'credo.db'}")
        with registry.begin() as conn:
            migrate.upgrade(conn)
        log = log_database(registry)
        prepare(registry, log)
        index = index_database(log)
        if variant == "inside":
            with log.begin() as conn:
                for statement in BEFORE_0014:
                    conn.exec_driver_sql(statement)
        writer = CheckLog(log)
        background = log.checkpoints(1.0)  # WAL checkpoints off the commits, as in a server
        background.__enter__()
        commits: list[float] = []
        rounds: list[float] = []
        commit_cpu = round_cpu = 0.0
        since = 0
        for start in range(0, len(calls), per_commit):
            cpu, wall = time.process_time(), time.perf_counter()
            writer.commit(calls[start : start + per_commit])
            commits.append(time.perf_counter() - wall)
            commit_cpu += time.process_time() - cpu
            since += per_commit
            if variant == "behind" and since >= round_calls:
                cpu, wall = time.process_time(), time.perf_counter()
                index_calls(log, index)
                rounds.append(time.perf_counter() - wall)
                round_cpu += time.process_time() - cpu
                since = 0
        background.__exit__(None, None, None)
        n = len(calls)
        registry.dispose()
        return {
            "variant": variant,
            "cpu_ms_per_manifest": round((commit_cpu + round_cpu) * 1e3 / n, 3),
            "commits_cpu_ms_per_manifest": round(commit_cpu * 1e3 / n, 3),
            "rounds_cpu_ms_per_manifest": round(round_cpu * 1e3 / n, 3),
            "commit_ms": {
                k: round(percentile(commits, p) * 1e3, 2)
                for k, p in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0))
            },
            "round_ms": {k: round(percentile(rounds, p) * 1e3, 1) for k, p in (("p50", 0.5), ("max", 1.0))},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=40_000)
    parser.add_argument("--size", type=int, default=300, help="subjects a call (a manifest)")
    parser.add_argument("--per-commit", type=int, default=4)
    parser.add_argument("--round", type=int, default=1000, help="calls between index rounds (behind)")
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {platform.machine()}, nproc={os.cpu_count()}, python {platform.python_version()}")
    print(f"data: {args.calls:,} calls of {args.size} fresh persons, {args.per_commit} a commit")
    calls = manifests(args.calls, args.size)
    with open("/tmp/bench.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # nothing else measured meanwhile
        results = [run(v, calls, args.per_commit, args.round) for v in ("inside", "behind")]
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
