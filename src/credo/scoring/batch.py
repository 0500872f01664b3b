"""Batch engines: the definition executed by DuckDB (embedded) or Apache Spark.

Both read the same Parquet export of the ledger (``credo export ledger``,
:mod:`credo.ledger.export`): ``records/`` and ``appeals/`` partitioned by
``bucket = subject_id % buckets`` (Hive style) and the catalog relations in
``catalog/``. DuckDB can also take the ledger as Arrow tables pulled from the
live database. Neither engine restates a rule: each registers the inputs
under the names of :data:`credo.scoring.definition.INPUTS` and runs
:func:`credo.scoring.definition.render` for its dialect.

DuckDB runs out of core: ``memory_limit`` and a ``temp_directory`` bound its
memory, and when the ledger is larger than one pass should hold it scores
the buckets in passes (every rule is per subject, and a subject lives in one
bucket) and ranks the union of the passes at the end.

The result has one row per scored subject and scheme: ``subject_id, scheme,
score, grade, rank, counted, capped, expired, rectified, void`` (and
``eval_id`` first with ``with_eval=True``, when one run asks several
questions of one scheme).

>>> evals = ask(registry, ["CN-SD-RC"])  # doctest: +SKIP
>>> rescore_parquet("export", evals).column_names[:5]  # doctest: +SKIP
['subject_id', 'scheme', 'score', 'grade', 'rank']
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa

from credo.scoring.definition import Dialect, appeals_adapter, literal, records_adapter, render
from credo.scoring.relations import Evaluation, Relation, evaluations

if TYPE_CHECKING:
    # Imported where used: a Spark driver (spark_job) needs no DuckDB.
    import duckdb

#: Columns of a rescore result, in order.
RESULT_COLUMNS: Final[tuple[str, ...]] = (
    "subject_id",
    "scheme",
    "score",
    "grade",
    "rank",
    "counted",
    "capped",
    "expired",
    "rectified",
    "void",
)
CATALOG_FILES: Final[tuple[str, ...]] = (
    "catalog_rules",
    "catalog_visibility",
    "catalog_policies",
    "catalog_bands",
)
#: Records one DuckDB pass may hold per GB of memory limit. A single pass
#: over 100 million benchmark records peaked at 15 GB (bench/RESULTS.md),
#: about 7 million records per GB; a pass sized at a third of that density
#: never spills.
RECORDS_PER_GB: Final = 2_500_000
#: Records one pass aims at, with or without a memory limit. Smaller passes
#: are faster, down to a point: at 100 M records (bench/RESULTS.md "Rescore",
#: 2026-11-27) passes of ~5 M took 51-56 s against 60-64 s for ~10 M and
#: 57 s for ~3 M, while ~1.6 M took 169 s (a fixed cost per pass dominates).
RECORDS_PER_PASS: Final = 5_000_000
#: The DuckDB optimizer a bucket pass runs without when it would plan badly (see :func:`guard_pass_plan`).
JOIN_ORDER_OPTIMIZER: Final = "join_order"
#: DuckDB optimizers the definition always runs without. ``cte_filter_pusher``
#: ORs the filters of a CTE's consumers into the CTE: ``judged``'s consumers
#: take lanes 1, 2 and 0, so it filtered every candidate on an always-true
#: ``lane = 1 OR lane = 2 OR ...``, ~10 % of a pass's CPU with the materialising
#: it slowed (bench/RESULTS.md "Rescore", session 16).
DISABLED_OPTIMIZERS: Final[tuple[str, ...]] = ("cte_filter_pusher",)
#: Share of ``memory_limit`` given to DuckDB's buffer manager: the rest is
#: for Python, Arrow and the allocator, so the process stays within it.
DUCKDB_SHARE: Final = 0.8


def _final_select(with_eval: bool) -> str:
    """Scored subjects only, typed the same way by every engine."""
    first = "CAST(eval_id AS INTEGER) AS eval_id, " if with_eval else ""
    # Fixed text: no caller value reaches it.
    return (
        f"SELECT {first}CAST(subject_id AS BIGINT) AS subject_id, scheme, "  # noqa: S608
        "CAST(score AS INTEGER) AS score, "
        "grade, CAST(rank AS DOUBLE) AS rank, CAST(counted AS BIGINT) AS counted, "
        "CAST(capped AS BIGINT) AS capped, CAST(expired AS BIGINT) AS expired, "
        "CAST(rectified AS BIGINT) AS rectified, CAST(void AS BIGINT) AS void "
        "FROM result WHERE scored = 1"
    )


# ---------------------------------------------------------------------------
# DuckDB
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DuckDBOptions:
    #: e.g. "4GB": beyond it DuckDB spills to ``temp_directory``
    memory_limit: str | None = None
    threads: int | None = None
    temp_directory: str | None = None
    #: force this many passes over the buckets (None: decide from size and limit)
    passes: int | None = None


def parse_size(text: str) -> int:
    """Bytes in a size such as ``4GB``, ``512MB`` or ``2GiB``.

    >>> parse_size("4GB"), parse_size("512MiB")
    (4000000000, 536870912)
    """
    units = {
        "": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
        "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
    }
    s = text.strip().upper().replace(" ", "")
    number = s.rstrip("KMGTIB")
    unit = s[len(number):]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if value <= 0 or unit not in units:
        raise ValueError(f"not a size: {text!r} (e.g. 4GB, 512MB)")
    return int(value * units[unit])


@contextmanager
def duckdb_connection(options: DuckDBOptions = DuckDBOptions()) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB set up to spill to disk instead of failing."""
    import duckdb

    con = duckdb.connect(":memory:")
    temp = options.temp_directory or tempfile.mkdtemp(prefix="credo-duckdb-")
    try:
        con.execute("SET temp_directory = '" + str(temp).replace("'", "''") + "'")
        # Row order is irrelevant to a set of scores; not keeping it lets
        # DuckDB stream and spill freely.
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"SET threads = {int(options.threads or os.cpu_count() or 1)}")
        _disable_optimizers(con)
        if options.memory_limit:
            limit = int(parse_size(options.memory_limit) * DUCKDB_SHARE)
            con.execute(f"SET memory_limit = '{limit}B'")
        yield con
    finally:
        con.close()
        if options.temp_directory is None:
            shutil.rmtree(temp, ignore_errors=True)


def _disable_optimizers(con: duckdb.DuckDBPyConnection, *more: str) -> None:
    """Run without :data:`DISABLED_OPTIMIZERS` and ``more`` (fixed names, never caller text)."""
    con.execute(f"SET disabled_optimizers = '{','.join(DISABLED_OPTIMIZERS + more)}'")


def _register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register(f"{name}_arrow", table)
    # ``name`` is one of the definition's input names, never caller text.
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_arrow")  # noqa: S608


def _install_catalog(con: duckdb.DuckDBPyConnection, catalog: Sequence[Relation] | Path) -> None:
    if isinstance(catalog, Path):
        for name in CATALOG_FILES:
            source = _parquet(catalog / f"{name}.parquet")
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {source}")  # noqa: S608
    else:
        for rel in catalog:
            _register(con, rel.name, rel.to_arrow())


def _collect(
    con: duckdb.DuckDBPyConnection, with_eval: bool, out: Path | None
) -> pa.Table:
    query = _final_select(with_eval)
    if out is None:
        return con.sql(query + " ORDER BY scheme, subject_id").to_arrow_table()
    out.parent.mkdir(parents=True, exist_ok=True)
    target = "'" + str(out).replace("'", "''") + "'"
    con.execute(f"COPY ({query}) TO {target} (FORMAT parquet)")
    return pa.table({})


def rescore_arrow(
    records: pa.Table,
    appeals: pa.Table,
    catalog: Sequence[Relation],
    evals: Sequence[Evaluation],
    options: DuckDBOptions = DuckDBOptions(),
    *,
    with_eval: bool = False,
    out: Path | None = None,
) -> pa.Table:
    """Every scored subject of the evaluated schemes, from the ledger as Arrow tables.

    ``records`` and ``appeals`` have the columns of the ``records`` and
    ``appeals`` tables (``occurred_on`` a date, timestamps UTC), as
    :func:`credo.ledger.export.ledger_tables` returns them.
    """
    with duckdb_connection(options) as con:
        _install_arrow(con, records, appeals, catalog, evals)
        con.execute(f"CREATE TEMP VIEW result AS {render('ranked', 'duckdb')}")
        return _collect(con, with_eval, out)


def _install_arrow(
    con: duckdb.DuckDBPyConnection,
    records: pa.Table,
    appeals: pa.Table,
    catalog: Sequence[Relation],
    evals: Sequence[Evaluation],
) -> None:
    """Every input of the definition, from the ledger as Arrow tables."""
    con.register("records_raw", records)
    con.register("appeals_raw", appeals)
    con.execute(f"CREATE TEMP VIEW ledger_records AS {records_adapter('duckdb', 'records_raw')}")
    con.execute(f"CREATE TEMP VIEW ledger_appeals AS {appeals_adapter('duckdb', 'appeals_raw')}")
    _install_catalog(con, catalog)
    _register(con, "evaluations", evaluations(evals).to_arrow())


@dataclass(frozen=True)
class Outcome:
    """What one catalog makes of a ledger: what listing needs besides the scores.

    ``scores`` has :data:`RESULT_COLUMNS` (scored subjects only);
    ``statuses`` has :data:`STATUS_COLUMNS`, one row per candidate record of
    the rules asked about (the rules that place on a list) and evaluation.
    """

    scores: pa.Table
    statuses: pa.Table


#: Columns of :attr:`Outcome.statuses`.
STATUS_COLUMNS: Final[tuple[str, ...]] = ("scheme", "seq", "subject_id", "rule", "occurred_day", "status")


def _statuses_select(rules: Sequence[str], dialect: Dialect) -> str:
    """The statuses of records of ``rules``, from an already materialised ``statuses``."""
    where = "rule IN (" + ", ".join(literal(r, "duckdb") for r in sorted(rules)) + ")" if rules else "1 = 0"
    explained = render("explained", dialect, provided=["statuses"], where=where)
    # ``explained`` is the definition's own text; the columns are fixed names.
    return f"SELECT {', '.join(STATUS_COLUMNS)} FROM ({explained}) AS x"  # noqa: S608


def outcome_arrow(
    records: pa.Table,
    appeals: pa.Table,
    catalog: Sequence[Relation],
    evals: Sequence[Evaluation],
    rules: Sequence[str],
    options: DuckDBOptions = DuckDBOptions(),
) -> Outcome:
    """:func:`rescore_arrow`'s scores and the statuses of the records of ``rules``.

    The statuses are computed once and both results read them (a policy
    what-if asks this once per catalog, see :mod:`credo.lists.whatif`).
    """
    with duckdb_connection(options) as con:
        _install_arrow(con, records, appeals, catalog, evals)
        con.execute(f"CREATE TEMP TABLE statuses AS {render('statuses', 'duckdb')}")
        con.execute(f"CREATE TEMP VIEW result AS {render('ranked', 'duckdb', provided=['statuses'])}")
        scores = _collect(con, False, None)
        return Outcome(scores, con.sql(_statuses_select(rules, "duckdb")).to_arrow_table())


def _manifest(root: Path) -> dict[str, Any]:
    path = root / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{root}: not a ledger export (no manifest.json; run `credo export ledger`)")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def plan_passes(records: int, memory_limit: str | None, forced: int | None, buckets: int) -> int:
    """How many passes over the buckets: each pass at most :data:`RECORDS_PER_PASS`
    records and within the memory limit (at :data:`RECORDS_PER_GB`).

    The buckets are shared out evenly (each pass takes the same whole number
    of buckets, give or take one), so no pass is larger than planned; the
    bucket count bounds the passes.

    >>> plan_passes(100_000_000, None, None, 64), plan_passes(100_000_000, "4GB", None, 64)
    (22, 22)
    >>> plan_passes(1_000_000_000, "4GB", None, 64), plan_passes(1_000_000_000, "4GB", None, 256)
    (64, 256)
    >>> plan_passes(100_000_000, "1GB", None, 64), plan_passes(10_000, "4GB", None, 64)
    (64, 1)
    """
    if forced is not None:
        return max(1, min(forced, buckets))
    per_pass = RECORDS_PER_PASS
    if memory_limit is not None:
        per_pass = min(per_pass, max(1, int(parse_size(memory_limit) / 1e9 * RECORDS_PER_GB)))
    wanted = -(-records // per_pass)
    if wanted <= 1:
        return 1
    if wanted >= buckets:
        return buckets
    # Whole buckets per pass, rounded down so that a pass stays within per_pass.
    per = buckets // wanted
    return -(-buckets // per)


def _parquet(path: Path, hive: bool = False) -> str:
    """``read_parquet`` of a path or glob, quoted as a SQL string literal."""
    literal = "'" + str(path).replace("'", "''") + "'"
    return f"read_parquet({literal}{', hive_partitioning = true' if hive else ''})"


def _source(root: Path, name: str) -> str:
    return _parquet(root / name / "**" / "*.parquet", hive=True)


def _bucket_files(root: Path, name: str, buckets: Iterable[int]) -> list[str]:
    """The Parquet files of ``buckets`` under ``root/name`` (Hive layout ``bucket=N/...``)."""
    files: list[str] = []
    for b in buckets:
        files.extend(sorted(str(f) for f in (root / name / f"bucket={b}").rglob("*.parquet")))
    return files


def _parquet_list(files: Sequence[str]) -> str:
    quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"read_parquet([{quoted}], hive_partitioning = true)"


def install_pass(con: duckdb.DuckDBPyConnection, root: Path, buckets: Iterable[int]) -> bool:
    """Point ``ledger_records`` and ``ledger_appeals`` at the files of ``buckets`` only.

    The files are named, not found by a ``bucket IN (...)`` filter over the
    whole export: DuckDB estimates a Hive-filtered scan from the first file
    of the glob, so every pass without bucket 0 was planned for one row
    (nested-loop joins, hash tables built on the 10-million-row side:
    twice the time, bench/RESULTS.md "Rescore"). False when the buckets hold
    no records (nothing to score in this pass).
    """
    chosen = list(buckets)
    records = _bucket_files(root, "records", chosen)
    if not records:
        return False
    appeal_files = _bucket_files(root, "appeals", chosen)
    # Without appeal files: the export's appeals, none chosen (empty, typed).
    appeals = (
        appeals_adapter("duckdb", _parquet_list(appeal_files))
        if appeal_files
        else appeals_adapter("duckdb", _source(root, "appeals"), "1 = 0")
    )
    records_sql = records_adapter("duckdb", _parquet_list(records))
    con.execute(f"CREATE OR REPLACE TEMP VIEW ledger_records AS {records_sql}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW ledger_appeals AS {appeals}")
    return True


def _incident_builds(node: dict[str, Any], build_side: bool = False) -> int:
    """Scans of incident records on the build side of a hash join, in a JSON plan node."""
    scan = node.get("name") == "READ_PARQUET"
    found = int(build_side and scan and "incident" in json.dumps(node.get("extra_info", {})))
    for i, child in enumerate(node.get("children", [])):
        found += _incident_builds(child, build_side or (node.get("name") == "HASH_JOIN" and i == 1))
    return found


def guard_pass_plan(con: duckdb.DuckDBPyConnection, query: str) -> bool:
    """Plan ``query`` (a bucket pass) in the definition's written join order
    when DuckDB's optimizer would build a hash table on the incidents. True then.

    For a pass of one bucket DuckDB's join-order optimizer estimated the
    incidents, after their inequality join with ``questions``, at ~100 rows
    of millions, and built three hash tables on them instead of on the
    catalog: 4.0 s instead of 1.3 s for one bucket of 3.9 M records (every
    pass at 1 B records, bench/RESULTS.md "Rescore"). Passes it plans well
    (several buckets at 100 M) keep its plan, ~12% faster than the written
    order. Either plan gives the same answers. :func:`end_passes` restores
    the optimizer. :data:`DISABLED_OPTIMIZERS` stay off either way.
    """
    _disable_optimizers(con)
    plan = json.loads(str(con.execute("EXPLAIN (FORMAT JSON) " + query).fetchall()[0][1]))
    if not sum(_incident_builds(node) for node in plan):
        return False
    _disable_optimizers(con, JOIN_ORDER_OPTIMIZER)
    return True


def end_passes(con: duckdb.DuckDBPyConnection) -> None:
    """Plan what follows the bucket passes with the join-order optimizer again."""
    _disable_optimizers(con)


def rescore_parquet(
    root: Path | str,
    evals: Sequence[Evaluation],
    options: DuckDBOptions = DuckDBOptions(),
    *,
    with_eval: bool = False,
    out: Path | None = None,
) -> pa.Table:
    """Every scored subject of the evaluated schemes, from a Parquet ledger export.

    With ``out`` the result is written there as one Parquet file (and an
    empty table is returned, so a billion rows never pass through Python).
    """
    root = Path(root)
    manifest = _manifest(root)
    buckets = int(manifest["buckets"])
    passes = plan_passes(int(manifest["records"]), options.memory_limit, options.passes, buckets)
    records, appeals = _source(root, "records"), _source(root, "appeals")
    with duckdb_connection(options) as con:
        _install_catalog(con, root / "catalog")
        _register(con, "evaluations", evaluations(evals).to_arrow())
        if passes > 1:
            # One pass per group of buckets, each writing its subjects' scores to
            # a scratch Parquet file; then one statement ranks them all.
            scratch = Path(tempfile.mkdtemp(prefix="credo-passes-", dir=options.temp_directory))
            try:
                for i in range(passes):
                    if install_pass(con, root, range(i, buckets, passes)):
                        part = str(scratch / f"pass-{i:05d}.parquet").replace("'", "''")
                        guard_pass_plan(con, render("scores", "duckdb"))
                        con.execute(f"COPY ({render('scores', 'duckdb')}) TO '{part}' (FORMAT parquet)")
                end_passes(con)
                if any(scratch.glob("*.parquet")):
                    union = _parquet(scratch / "*.parquet")
                    con.execute(f"CREATE TEMP VIEW scores AS SELECT * FROM {union}")  # noqa: S608
                    ranked = render("ranked", "duckdb", provided=["scores"])
                    con.execute(f"CREATE TEMP VIEW result AS {ranked}")
                    return _collect(con, with_eval, out)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        # One pass (or passes that found no records: the same statement gives the empty result, typed).
        con.execute(f"CREATE OR REPLACE TEMP VIEW ledger_records AS {records_adapter('duckdb', records)}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW ledger_appeals AS {appeals_adapter('duckdb', appeals)}")
        con.execute(f"CREATE TEMP VIEW result AS {render('ranked', 'duckdb')}")
        return _collect(con, with_eval, out)


# ---------------------------------------------------------------------------
# Spark
# ---------------------------------------------------------------------------


def _spark_relation(spark: Any, rel: Relation) -> Any:
    """A Spark DataFrame of a small relation, typed as the definition declares it."""
    from pyspark.sql import types as T

    kinds = {"VARCHAR": T.StringType(), "INTEGER": T.IntegerType(), "BIGINT": T.LongType()}
    schema = T.StructType([T.StructField(c, kinds[t], True) for c, t in rel.columns])
    return spark.createDataFrame([list(r) for r in rel.rows], schema)


def spark_register(
    spark: Any, root: Path | str, evals: Sequence[Evaluation], catalog: Sequence[Relation] | None = None
) -> None:
    """Temp views of the definition's inputs over a Parquet export, in ``spark``.

    ``root`` may be any path Spark reads (``hdfs://``, ``s3a://``, local).
    ``catalog`` replaces the export's own catalog relations (a draft catalog).
    """
    base = str(root).rstrip("/")
    spark.read.parquet(f"{base}/records").createOrReplaceTempView("records_raw")
    spark.sql(records_adapter("spark", "records_raw")).createOrReplaceTempView("ledger_records")
    spark.read.parquet(f"{base}/appeals").createOrReplaceTempView("appeals_raw")
    spark.sql(appeals_adapter("spark", "appeals_raw")).createOrReplaceTempView("ledger_appeals")
    if catalog is None:
        for name in CATALOG_FILES:
            spark.read.parquet(f"{base}/catalog/{name}.parquet").createOrReplaceTempView(name)
    else:
        for rel in catalog:
            _spark_relation(spark, rel).createOrReplaceTempView(rel.name)
    _spark_relation(spark, evaluations(evals)).createOrReplaceTempView("evaluations")


def rescore_spark(
    spark: Any,
    root: Path | str,
    evals: Sequence[Evaluation],
    *,
    with_eval: bool = False,
    out: Path | str | None = None,
) -> pa.Table:
    """The same result as :func:`rescore_parquet`, computed by Spark SQL.

    ``spark`` is a SparkSession (local mode here; on a cluster the same
    call runs under spark-submit, see docs/scale.md). With ``out`` the result
    is written there as a Parquet folder and an empty table is returned.
    """
    spark_register(spark, root, evals)
    spark.sql(render("ranked", "spark")).createOrReplaceTempView("result")
    df = spark.sql(_final_select(with_eval))
    if out is not None:
        df.write.mode("overwrite").parquet(str(out))
        return pa.table({})
    return _nullable(df.orderBy("scheme", "subject_id").toArrow())


def _nullable(table: pa.Table) -> pa.Table:
    """``table`` with every column nullable, as DuckDB's results are.

    Spark knows a ``COUNT`` is never NULL and says so in the Arrow schema;
    the same result should have the same schema whichever engine made it.
    """
    return table.cast(pa.schema([field.with_nullable(True) for field in table.schema]))


def outcome_spark(
    spark: Any,
    root: Path | str,
    catalog: Sequence[Relation],
    evals: Sequence[Evaluation],
    rules: Sequence[str],
) -> Outcome:
    """:func:`outcome_arrow` computed by Spark SQL over a Parquet export, under ``catalog``."""
    spark_register(spark, root, evals, catalog)
    statuses = spark.sql(render("statuses", "spark")).cache()
    try:
        statuses.createOrReplaceTempView("statuses")
        spark.sql(render("ranked", "spark", provided=["statuses"])).createOrReplaceTempView("result")
        scores = _nullable(spark.sql(_final_select(False)).orderBy("scheme", "subject_id").toArrow())
        listed: pa.Table = spark.sql(_statuses_select(rules, "spark")).toArrow()
    finally:
        statuses.unpersist()
    return Outcome(scores, listed)
