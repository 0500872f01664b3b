"""Benchmark: full rescoring of a synthetic ledger beside a bare DuckDB group-by.

    .venv/bin/python bench/rescore.py --records 100_000_000 --subjects 10_000_000
    .venv/bin/python bench/rescore.py --records 10_000_000 --subjects 1_000_000 --engines duckdb,spark

Generates (with DuckDB itself) a synthetic ledger in the layout of
``credo export ledger`` -- records partitioned by subject bucket and kind and
sorted by subject, act date and seq (in runs: see ``generate``); appeals partitioned by subject bucket;
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


def generate(out: Path, records: int, subjects: int, threads: int) -> None:
    """Write the synthetic export under ``out`` (replacing it)."""
    import duckdb
    import pyarrow.parquet as pq

    if out.exists():
        shutil.rmtree(out)
    (out / "catalog").mkdir(parents=True)
    registry = synthetic_catalog()
    for rel in catalog_relations(registry):
        pq.write_table(rel.to_arrow(), out / "catalog" / f"{rel.name}.parquet")
    con = duckdb.connect()
    # Insertion order kept, but a partitioned COPY interleaves its threads'
    # chunks: a bucket's file is sorted in runs of a few hundred rows (at 10 M,
    # 736 descents in subject order in one bucket's 153,639 incidents), not
    # wholly as `credo export ledger` writes it. Writing each bucket sorted on
    # its own (fully sorted) took 43 s at 10 M against 24 s here: kept as is.
    con.execute(f"SET threads = {threads}; SET preserve_insertion_order = true")
    # Sorting 100 M+ rows: spill beyond 8 GB rather than take the machine's memory.
    con.execute(f"SET memory_limit = '8GB'; SET temp_directory = '{out}.spill'")
    con.execute(f"CREATE TABLE rules AS SELECT * FROM read_parquet('{out}/catalog/catalog_rules.parquet')")
    # Row i is an incident unless i % 100 is 50 (it retracts row i-1) or 80
    # (it restores row i-1); b is the incident a row is about, so a
    # retraction or restoration carries its target's subject and rule.
    con.execute(
        f"""
        COPY (
            WITH base AS (
                SELECT i, i % 100 AS m,
                       CASE WHEN i % 100 IN (50, 80) THEN i - 1 ELSE i END AS b
                FROM range({records}) AS t(i)
            ), rows AS (
                SELECT i + 1 AS seq, 'XB-AGENCY' AS agency,
                       CASE m WHEN 50 THEN 'retraction' WHEN 80 THEN 'restoration'
                              ELSE 'incident' END AS kind,
                       CAST(hash(b) % {subjects} + 1 AS BIGINT) AS subject_id,
                       'XB.R' || lpad(CAST(hash(b * 31 + 7) % {RULES} AS VARCHAR), 2, '0') AS rule,
                       CAST(1 AS INTEGER) AS rule_version, 'XB' AS jurisdiction,
                       CAST(DATE '2016-01-01' + CAST(hash(b * 17 + 3) % 3650 AS INTEGER)
                            + CASE WHEN m = 80 THEN CAST(hash(i) % 200 AS INTEGER) ELSE 0 END AS DATE)
                         AS occurred_on,
                       CASE WHEN m IN (50, 80) THEN b + 1 END AS target_seq, i
                FROM base
            )
            SELECT r.seq, r.agency, r.kind, r.subject_id, r.rule, r.rule_version, r.jurisdiction,
                   r.occurred_on,
                   CAST(r.occurred_on AS TIMESTAMPTZ) + INTERVAL 1 DAY
                     + to_seconds(CAST(r.i % 86400 AS BIGINT))
                     AS recorded_at,
                   r.target_seq, c.points, CAST(r.subject_id % {BUCKETS} AS INTEGER) AS bucket
            FROM rows AS r JOIN rules AS c ON c.rule = r.rule
            ORDER BY r.subject_id, r.occurred_on, r.seq
        ) TO '{out}/records' (FORMAT parquet, PARTITION_BY (bucket, kind), OVERWRITE_OR_IGNORE)
        """
    )
    appeals = records // 500
    con.execute(
        f"""
        COPY (
            WITH a AS (
                SELECT j, j * 500 AS b,
                       CAST(DATE '2016-01-01' + CAST(hash(j * 500 * 17 + 3) % 3650 AS INTEGER) AS TIMESTAMPTZ)
                         + INTERVAL 6 DAY AS filed_at
                FROM range({appeals}) AS t(j)
            )
            SELECT j + 1 AS id, b + 1 AS record_seq, CAST(hash(b) % {subjects} + 1 AS BIGINT) AS subject_id,
                   filed_at, filed_at + INTERVAL 30 DAY AS deadline_at,
                   CASE WHEN j % 3 = 0 THEN NULL ELSE filed_at + INTERVAL 10 DAY END AS decided_at,
                   CASE j % 3 WHEN 1 THEN 'upheld' WHEN 2 THEN 'overturned' END AS outcome,
                   CAST((hash(b) % {subjects} + 1) % {BUCKETS} AS INTEGER) AS bucket
            FROM a
        ) TO '{out}/appeals' (FORMAT parquet, PARTITION_BY (bucket), OVERWRITE_OR_IGNORE)
        """
    )
    con.close()
    shutil.rmtree(f"{out}.spill", ignore_errors=True)
    write_manifest(
        out, records=records, appeals=appeals, buckets=BUCKETS, digest=registry.digest,
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
        generate(args.data, args.records, args.subjects, args.threads)
        print(f"generated in {time.perf_counter() - start:.1f} s")
    size = du(args.data / "records")
    print(f"data: {args.records:,} records over {args.subjects:,} subjects, {args.records // 500:,} appeals; "
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
