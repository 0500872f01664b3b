"""Benchmark: full rescoring of a synthetic ledger beside a bare DuckDB group-by.

    .venv/bin/python bench/rescore.py --records 100_000_000 --subjects 10_000_000
    .venv/bin/python bench/rescore.py --records 10_000_000 --subjects 1_000_000 --engines duckdb,spark

Generates (with DuckDB itself) a synthetic ledger in the layout of
``credo export ledger`` -- records partitioned by subject bucket and kind and
wholly sorted by subject, act date and seq, one bucket at a time (see ``generate``); appeals
partitioned by subject bucket;
the catalog relations of a synthetic 20-rule catalog built through the real
catalog loader -- then times, each in a fresh child process so peak memory
is its own:

* ``floor``: ``SELECT subject_id, SUM(points) ... GROUP BY subject_id`` over
  the same records file (the file carries a ``points`` column for this only;
  scoring takes points from the catalog, as it must);
* ``duckdb``: ``credo.scoring.batch.rescore_parquet`` (every rule: retractions,
  appeals, restorations, expiry, clean periods, yearly caps, grades, ranks);
* ``spark``: ``rescore_spark`` in local[N] mode on the same files.

The ledger: ~1% retractions, ~1% restorations, one appeal per 500 records
(a third undecided past the deadline, a third upheld, a third overturned),
acts spread over 2016-2025, 20% reward rules. Prints the command, data size,
machine and a table of results; ``--markdown`` prints a RESULTS.md row set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from credo.catalog.models import CatalogFile  # noqa: E402
from credo.catalog.registry import Registry, build_registry  # noqa: E402
from credo.ledger.export import write_manifest  # noqa: E402
from credo.scoring.relations import Evaluation, catalog_relations  # noqa: E402

AS_OF = date(2026, 1, 1)
KNOWN_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RULES = 20
BUCKETS = 64


def synthetic_catalog() -> Registry:
    """One jurisdiction, 16 adverse rules (half rectifiable) and 4 reward rules."""
    rules = []
    for r in range(RULES):
        adverse = r < 16
        rules.append(
            {
                "code": f"XB.R{r:02d}",
                "version": 1,
                "title_en": f"Synthetic rule {r}",
                "title_zh": f"合成规则{r}",
                "category": "contract",
                "points": -(5 + 5 * (r % 10)) if adverse else (10, 20, 30, 5)[r - 16],
                "legal_basis": "Synthetic benchmark rule",
                "agencies": ["XB-AGENCY"],
                "expiry_days": (None if r % 4 == 0 else 365 * (1 + r % 3)) if adverse else 365,
                "severity": "moderate",
                "rectifiable": adverse and r % 2 == 0,
                "effective_from": date(2010, 1, 1),
            }
        )
    catalog = CatalogFile.model_validate(
        {
            "jurisdiction": {"code": "XB", "name_en": "Bench", "name_zh": "基准"},
            "policy": {
                "base_score": 1000, "floor": 0, "ceiling": 1500,
                "grade_bands": [
                    {"grade": g, "min": m}
                    for g, m in [("AAA", 1050), ("AA", 1030), ("A", 960), ("B", 850), ("C", 600), ("D", 0)]
                ],
                "appeal_window_days": 30, "decision_deadline_days": 30,
                "rectification_period_days": 730, "default_expiry_days": 1825,
                "enforcement_grace_days": 10, "positive_cap_per_year": 100,
                "warning_period_days": 30, "timezone": "Asia/Shanghai",
            },
            "agencies": [
                {"code": "XB-AGENCY", "name_en": "Bench agency", "name_zh": "基准机构", "kind": "bureau"}
            ],
            "rules": rules,
        }
    )
    registry, errors = build_registry([("xb.toml", catalog)])
    if registry is None:
        raise SystemExit(f"synthetic catalog refused: {errors}")
    return registry


def default_buckets(records: int) -> int:
    """64 subject buckets, or more (a power of two) so a bucket holds at most ~4 M records.

    A bucket pass holds whole buckets: at 1 B records 64 buckets would force
    passes of ~15.6 M, three times the ~5 M that plan_passes aims at.
    """
    buckets = BUCKETS
    while records > buckets * 4_000_000:
        buckets *= 2
    return buckets


def generate(out: Path, records: int, subjects: int, threads: int, buckets: int = BUCKETS) -> None:
    """Write the synthetic export under ``out`` (replacing it), one bucket at a time.

    Each bucket's rows are made where they belong: row ``k`` of bucket ``b``
    is the ledger's row ``g = k * buckets + b`` (so ``seq = g + 1`` is unique
    over the ledger), its subject one of the bucket's subjects
    (``subject_id % buckets = b``) drawn by hashing ``g``. Every ``k % 100 = 50``
    retracts and every ``k % 100 = 80`` restores row ``k - 1`` of the same bucket
    (so the same subject and rule); one appeal per 500 rows (``k % 500 = 0``,
    an incident). A bucket is sorted in memory by subject, act date and seq
    and written one file per kind, wholly in that order, as ``credo export
    ledger`` writes it: no global sort, no staging, memory bounded by a bucket.
    """
    import duckdb
    import pyarrow.parquet as pq

    if out.exists():
        shutil.rmtree(out)
    (out / "catalog").mkdir(parents=True)
    registry = synthetic_catalog()
    for rel in catalog_relations(registry):
        pq.write_table(rel.to_arrow(), out / "catalog" / f"{rel.name}.parquet")
    con = duckdb.connect()
    # Insertion order kept: a COPY of the sorted bucket table writes its rows in order.
    con.execute(f"SET threads = {threads}; SET preserve_insertion_order = true")
    con.execute(f"SET memory_limit = '8GB'; SET temp_directory = '{out}.spill'")
    # Rule number r is rule XB.Rrr; its points as the catalog defines them.
    points = dict(con.execute(
        f"SELECT rule, points FROM read_parquet('{out}/catalog/catalog_rules.parquet')"
    ).fetchall())
    names = [f"XB.R{r:02d}" for r in range(RULES)]
    rule_names = "[" + ", ".join(f"'{n}'" for n in names) + "]"
    rule_points = "[" + ", ".join(str(int(points[n])) for n in names) + "]"
    total_appeals = 0
    start = last = time.perf_counter()
    for b in range(buckets):
        rows = records // buckets + (1 if b < records % buckets else 0)
        first = b if b > 0 else buckets  # the bucket's smallest subject id (ids start at 1)
        own = 0 if first > subjects else (subjects - first) // buckets + 1
        if rows == 0 or own == 0:
            continue
        # g: this row's place in the ledger; t: the place of the incident the row is about.
        # Only narrow columns are sorted (m: kind, ri: rule number); the text columns,
        # points and recorded_at are made while writing.
        con.execute(
            f"""
            CREATE OR REPLACE TABLE bucket AS
            WITH base AS (
                SELECT k * {buckets} + {b} AS g, CAST(k % 100 AS TINYINT) AS m,
                       CASE WHEN k % 100 IN (50, 80) THEN k - 1 ELSE k END * {buckets} + {b} AS t
                FROM range({rows}) AS r(k)
            )
            SELECT g + 1 AS seq, m,
                   CAST({first} + {buckets} * (hash(t) % {own}) AS BIGINT) AS subject_id,
                   CAST(hash(t * 31 + 7) % {RULES} AS TINYINT) AS ri,
                   CAST(DATE '2016-01-01' + CAST(hash(t * 17 + 3) % 3650 AS INTEGER)
                        + CASE WHEN m = 80 THEN CAST(hash(g) % 200 AS INTEGER) ELSE 0 END AS DATE)
                     AS occurred_on,
                   CASE WHEN m IN (50, 80) THEN t + 1 END AS target_seq
            FROM base
            ORDER BY subject_id, occurred_on, seq
            """
        )
        kinds = (("incident", "m NOT IN (50, 80)"), ("retraction", "m = 50"), ("restoration", "m = 80"))
        for kind, where in kinds:
            folder = out / "records" / f"bucket={b}" / f"kind={kind}"
            folder.mkdir(parents=True)
            con.execute(
                f"""
                COPY (
                    SELECT seq, 'XB-AGENCY' AS agency, subject_id, {rule_names}[ri + 1] AS rule,
                           CAST(1 AS INTEGER) AS rule_version, 'XB' AS jurisdiction, occurred_on,
                           CAST(occurred_on AS TIMESTAMPTZ) + INTERVAL 1 DAY
                             + to_seconds(CAST((seq - 1) % 86400 AS BIGINT)) AS recorded_at,
                           target_seq, {rule_points}[ri + 1] AS points
                    FROM bucket WHERE {where}
                ) TO '{folder}/data_0.parquet' (FORMAT parquet)
                """
            )
        appeals = -(-rows // 500)
        total_appeals += appeals
        folder = out / "appeals" / f"bucket={b}"
        folder.mkdir(parents=True)
        con.execute(
            f"""
            COPY (
                WITH a AS (
                    SELECT j, j * 500 * {buckets} + {b} AS g,
                           CAST(DATE '2016-01-01' + CAST(hash((j * 500 * {buckets} + {b}) * 17 + 3) % 3650
                                AS INTEGER) AS TIMESTAMPTZ) + INTERVAL 6 DAY AS filed_at
                    FROM range({appeals}) AS r(j)
                )
                SELECT j * {buckets} + {b} + 1 AS id, g + 1 AS record_seq,
                       CAST({first} + {buckets} * (hash(g) % {own}) AS BIGINT) AS subject_id,
                       filed_at, filed_at + INTERVAL 30 DAY AS deadline_at,
                       CASE WHEN j % 3 = 0 THEN NULL ELSE filed_at + INTERVAL 10 DAY END AS decided_at,
                       CASE j % 3 WHEN 1 THEN 'upheld' WHEN 2 THEN 'overturned' END AS outcome
                FROM a
            ) TO '{folder}/data_0.parquet' (FORMAT parquet)
            """
        )
        now = time.perf_counter()
        if now - last >= 10 or b == buckets - 1:
            last = now
            done = b + 1
            eta = (now - start) / done * (buckets - done)
            print(f"  generated bucket {done}/{buckets} in {now - start:.0f} s, ~{eta:.0f} s to go",
                  flush=True)
    con.close()
    shutil.rmtree(f"{out}.spill", ignore_errors=True)
    write_manifest(
        out, records=records, appeals=total_appeals, buckets=buckets, digest=registry.digest,
        timezones={j.code: registry.policy(j.code).timezone for j in registry.jurisdictions()},
    )


# -- timed steps, each run in its own child process ---------------------------


def step_floor(root: Path, threads: int, memory_limit: str | None) -> dict[str, object]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}; SET preserve_insertion_order = false")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    start = time.perf_counter()
    n = con.execute(
        f"SELECT count(*) FROM (SELECT subject_id, SUM(points) AS s "
        f"FROM read_parquet('{root}/records/**/*.parquet') GROUP BY subject_id)"
    ).fetchone()
    return {"seconds": time.perf_counter() - start, "subjects": n[0] if n else 0}


def step_duckdb(root: Path, threads: int, memory_limit: str | None, out: Path) -> dict[str, object]:
    from credo.scoring.batch import DuckDBOptions, rescore_parquet

    evals = [Evaluation(1, "XB", AS_OF, KNOWN_AT)]
    start = time.perf_counter()
    rescore_parquet(root, evals, DuckDBOptions(memory_limit=memory_limit, threads=threads), out=out)
    seconds = time.perf_counter() - start
    import pyarrow.parquet as pq

    return {"seconds": seconds, "subjects": pq.ParquetFile(out).metadata.num_rows}


def step_spark(root: Path, threads: int, memory_limit: str | None, out: Path) -> dict[str, object]:
    from pyspark.sql import SparkSession

    from credo.scoring.batch import rescore_spark

    spark = (
        SparkSession.builder.master(f"local[{threads}]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", memory_limit.replace("GB", "g") if memory_limit else "4g")
        .config("spark.sql.shuffle.partitions", str(max(8, threads * 4)))
        .getOrCreate()
    )
    evals = [Evaluation(1, "XB", AS_OF, KNOWN_AT)]
    start = time.perf_counter()
    rescore_spark(spark, root, evals, out=out)
    seconds = time.perf_counter() - start
    n = spark.read.parquet(str(out)).count()
    spark.stop()
    return {"seconds": seconds, "subjects": n}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (Spark's JVM when stopped)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _own_peak() -> int:
    """Peak RSS of this program since it started (bytes).

    Linux's VmHWM belongs to the program's own address space; ru_maxrss also
    carries the high-water mark of the process it was forked from (the
    generator's, several GiB), which exec does not reset.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(args: argparse.Namespace) -> None:
    root, out = Path(args.data), Path(args.data) / f"result-{args.step}.parquet"
    cpu = _cpu()
    if args.step == "floor":
        res = step_floor(root, args.threads, args.memory_limit)
    elif args.step == "duckdb":
        res = step_duckdb(root, args.threads, args.memory_limit, out)
    else:
        res = step_spark(root, args.threads, args.memory_limit, out)
    # Peak resident memory of this process; Spark's JVM is a child of it,
    # counted through RUSAGE_CHILDREN.
    peak = _own_peak()
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({**res, "peak_bytes": peak, "peak_child_bytes": peak_children, "cpu": _cpu() - cpu}))


def run_step(step: str, args: argparse.Namespace) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", step, "--data", str(args.data),
           "--threads", str(args.threads)]
    if args.memory_limit:
        cmd += ["--memory-limit", args.memory_limit]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    ap.add_argument("--subjects", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    ap.add_argument("--data", type=Path, default=Path("/tmp/credo-bench/ledger"))
    ap.add_argument("--engines", default="floor,duckdb", help="comma list of floor, duckdb, spark")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--memory-limit", default=None,
                    help="e.g. 4GB (DuckDB memory_limit, Spark driver memory)")
    ap.add_argument("--buckets", type=int, default=None,
                    help="subject buckets of the generated export (default: 64, more above 256 M records "
                    "so a bucket holds at most ~4 M)")
    ap.add_argument("--reuse", action="store_true", help="reuse --data if it already holds this size")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.step = args.child
        child(args)
        return

    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(other work on this machine shares its 2 CPUs)")
    mem = psutil.virtual_memory().total
    print(f"machine: {platform.node()} {platform.machine()}, nproc={os.cpu_count()}, "
          f"RAM={mem / 2**30:.1f} GiB, "
          f"python {platform.python_version()}")
    marker = args.data / "manifest.json"
    reuse = args.reuse and marker.is_file() and json.loads(marker.read_text())["records"] == args.records
    if not reuse:
        start = time.perf_counter()
        generate(args.data, args.records, args.subjects, args.threads,
                 args.buckets or default_buckets(args.records))
        print(f"generated in {time.perf_counter() - start:.1f} s")
    size = du(args.data / "records")
    made = json.loads(marker.read_text())
    print(f"data: {args.records:,} records over {args.subjects:,} subjects, {made['appeals']:,} appeals, "
          f"{made['buckets']} buckets; "
          f"records Parquet {size / 2**30:.2f} GiB in {args.data}")
    results: dict[str, dict[str, object]] = {}
    for step in [s.strip() for s in args.engines.split(",") if s.strip()]:
        results[step] = run_step(step, args)
        r = results[step]
        if "error" in r:
            print(f"{step:7s} FAILED: {r['error']}")
            continue
        secs = float(r["seconds"])  # type: ignore[arg-type]
        peak = max(int(r["peak_bytes"]), int(r["peak_child_bytes"]))  # type: ignore[call-overload]
        print(f"{step:7s} {secs:8.2f} s  {args.records / secs / 1e6:8.2f} M records/s  "
              f"peak RSS {peak / 2**30:.2f} GiB  subjects out {r['subjects']:,}  "
              f"CPU {float(r['cpu']):.1f} s (incl. setup)")  # type: ignore[arg-type]
    if "floor" in results and "duckdb" in results and "seconds" in results["duckdb"]:
        ratio = float(results["floor"]["seconds"]) / float(results["duckdb"]["seconds"])  # type: ignore[arg-type]
        print(f"rescoring throughput = {ratio:.0%} of the bare group-by")
    if not args.keep:
        shutil.rmtree(args.data, ignore_errors=True)


if __name__ == "__main__":
    main()
