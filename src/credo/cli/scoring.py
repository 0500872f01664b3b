"""``credo score``, ``credo rescore`` and ``credo export ledger``.

Register in ``credo.cli``::

    app.command("score")(scoring.score)
    app.command("rescore")(scoring.rescore)
    app.add_typer(scoring.export_app, name="export")
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select

from credo.cli.common import JsonOpt, console, err_console, fail, open_runtime, print_json
from credo.ids import IdentifierError, parse_subject_ref
from credo.ledger.export import export_ledger, ledger_tables
from credo.scoring.batch import DuckDBOptions, rescore_arrow, rescore_parquet, rescore_spark
from credo.scoring.online import ScoreReport, default_schemes, score_subject
from credo.scoring.relations import ask, catalog_relations
from credo.store.tables import subjects

export_app = typer.Typer(help="Export the registry's data.", no_args_is_help=True)


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option}: not a date (YYYY-MM-DD): {value!r}")


def _instant(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 instant; without an offset it is taken as UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: not a timestamp (e.g. 2026-03-01T12:00:00Z): {value!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _print_report(report: ScoreReport, subject: str, explain: bool) -> None:
    rank = "-" if report.rank is None else f"{report.rank:.1%} of scored subjects score lower"
    console.print(
        f"[bold]{subject}[/bold] in [bold]{report.scheme}[/bold] on {report.as_of} "
        f"(known at {report.known_at:%Y-%m-%d %H:%M:%S}Z): "
        f"score [bold]{report.score}[/bold], grade [bold]{report.grade}[/bold], rank {rank}"
        + ("" if report.scored else " [dim](not scored: no standing record in this scheme)[/dim]")
    )
    if explain:
        table = Table("record", "rule", "act", "points", "counts", "status")
        for r in report.records:
            table.add_row(
                str(r.seq), f"{r.rule} v{r.rule_version}", r.occurred_on.isoformat(), f"{r.points:+d}",
                f"{r.counted_points:+d}", r.reason(report.policy),
            )
        console.print(table)
        p = report.policy
        console.print(
            f"policy: base {p['base_score']}, bounds [{p['floor']}, {p['ceiling']}], "
            f"rectification {p['rectification_period_days']} days, default expiry "
            f"{p['default_expiry_days']} days, reward cap {p['positive_cap_per_year']} a year, "
            "bands " + ", ".join(f"{b['grade']}>={b['min']}" for b in p["grade_bands"])
        )
    for change in report.forecast:
        console.print(f"  next: {change.sentence()} (score {change.score_before} -> {change.score_after})")


def score(
    subject: Annotated[str, typer.Argument(help="kind:identifier or a bare identifier.")],
    scheme: Annotated[str | None, typer.Option(help="Scheme (jurisdiction) code; default: the "
                                              "schemes that judge the subject's file.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Valid date t (YYYY-MM-DD); default "
                                              "today in the scheme's timezone.")] = None,
    known_at: Annotated[str | None, typer.Option("--known-at", help="Knowledge time k (ISO 8601, "
                                                 "UTC unless an offset is given); default now.")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="List every record, its status and "
                                          "the policy values used.")] = False,
    as_json: bool = JsonOpt,
) -> None:
    """A subject's score, grade and rank, exactly as known at a time (and why, with --explain)."""
    try:
        sid = parse_subject_ref(subject)
    except IdentifierError as exc:
        fail(f"SUBJECT: {exc}")
    t, k = _date(as_of, "--as-of"), _instant(known_at, "--known-at")
    runtime = open_runtime()
    if scheme is not None and runtime.catalogs.jurisdiction(scheme) is None:
        fail(f"--scheme: unknown scheme {scheme!r}")
    with runtime.db.read() as conn:
        number = conn.execute(
            select(subjects.c.id).where(subjects.c.kind == sid.kind, subjects.c.identifier == sid.identifier)
        ).scalar()
        if number is None:
            fail(f"SUBJECT: no subject {sid} in the registry", 1)
        schemes = [scheme] if scheme else default_schemes(conn, runtime.catalogs, number)
        reports = [
            score_subject(conn, runtime.catalogs, number, s, as_of=t, known_at=k, ranks=runtime.ranks)
            for s in schemes
        ]
    if as_json:
        print_json({"subject": str(sid), "scores": [r.as_dict() for r in reports]})
        return
    for report in reports:
        _print_report(report, str(sid), explain)


def rescore(
    scheme: Annotated[list[str] | None, typer.Option(help="Scheme code (repeatable).")] = None,
    all_schemes: Annotated[bool, typer.Option("--all", help="Every scheme in the catalogs.")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Valid date t; default today in each "
                                              "scheme's timezone.")] = None,
    known_at: Annotated[str | None, typer.Option("--known-at", help="Knowledge time k; default now.")] = None,
    engine: Annotated[str, typer.Option(help="duckdb (embedded) or spark (local mode here; "
                                        "spark-submit on a cluster, see docs/scale.md).")] = "duckdb",
    ledger: Annotated[Path | None, typer.Option(help="A `credo export ledger` folder; default: "
                                                "the live database (read through Python: export "
                                                "large ledgers first).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the result here (Parquet; Spark writes a "
                                             "folder of that name).")] = None,
    memory_limit: Annotated[str | None, typer.Option("--memory-limit", help="e.g. 4GB: DuckDB spills "
                                                     "to disk beyond it.")] = None,
    threads: Annotated[int | None, typer.Option(help="Worker threads (default: every core).")] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Score every subject of the chosen schemes: subject, scheme, score, grade, rank, counts."""
    if engine not in ("duckdb", "spark"):
        fail(f"--engine: must be duckdb or spark, got {engine!r}")
    if bool(scheme) == all_schemes:
        fail("give --scheme CODE (repeatable) or --all")
    if out is not None and out.suffix != ".parquet":
        fail(f"--out: must be a .parquet path, got {out}")
    t, k = _date(as_of, "--as-of"), _instant(known_at, "--known-at")
    runtime = open_runtime()
    catalogs = runtime.catalogs
    codes = [j.code for j in catalogs.jurisdictions()] if all_schemes else list(scheme or [])
    unknown = [c for c in codes if catalogs.jurisdiction(c) is None]
    if unknown:
        fail(f"--scheme: unknown scheme {unknown[0]!r}")
    if ledger is not None and not (ledger / "manifest.json").is_file():
        fail(f"--ledger: {ledger} is not a ledger export (no manifest.json)")
    evals = ask(catalogs, codes, as_of=t, known_at=k)
    options = DuckDBOptions(memory_limit=memory_limit, threads=threads)
    start = time.perf_counter()
    try:
        if engine == "spark":
            result = _spark(runtime, ledger, evals, out, threads, memory_limit)
        elif ledger is not None:
            result = rescore_parquet(ledger, evals, options, out=out)
        else:
            with runtime.db.read() as conn:
                records, appeals = ledger_tables(conn)
            result = rescore_arrow(records, appeals, catalog_relations(catalogs), evals, options)
            if out is not None:
                import pyarrow.parquet as pq

                out.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(result, out)
    except (OSError, ValueError) as exc:
        fail(str(exc), 1)
    seconds = time.perf_counter() - start
    summary: dict[str, Any] = {
        "engine": engine,
        "schemes": codes,
        "as_of": sorted({e.as_of.isoformat() for e in evals}),
        "known_at": evals[0].known_at.isoformat(),
        "seconds": round(seconds, 3),
        "out": None if out is None else str(out),
    }
    if out is None:
        summary["subjects"] = result.to_pylist()
    else:
        import pyarrow.parquet as pq

        summary["rows"] = pq.ParquetFile(out).metadata.num_rows if out.is_file() else _spark_rows(out)
    if as_json:
        print_json(summary)
        return
    if out is None:
        table = Table(*result.column_names)
        for row in result.to_pylist():
            table.add_row(*("" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
                            for v in row.values()))
        console.print(table)
    else:
        console.print(f"{summary['rows']} subjects scored into {out}")
    err_console.print(f"{engine}: {len(codes)} scheme(s) in {seconds:.2f} s")


def _spark_rows(path: Path) -> int:
    import pyarrow.dataset as ds

    return int(ds.dataset(path, format="parquet").count_rows())


@contextmanager
def spark_session(name: str, threads: int | None, memory_limit: str | None) -> Iterator[Any]:
    """A local Spark session (``CREDO_SPARK_MASTER`` overrides the master)."""
    from pyspark.sql import SparkSession

    # A session already running in this process (an embedding program, the
    # tests) is used and left running; one started here is stopped here.
    existing = SparkSession.getActiveSession()
    builder = (
        SparkSession.builder.appName(name)
        .master(os.environ.get("CREDO_SPARK_MASTER", f"local[{threads or os.cpu_count() or 1}]"))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if memory_limit:
        builder = builder.config("spark.driver.memory", memory_limit.lower().replace("b", ""))
    spark = builder.getOrCreate()
    try:
        yield spark
    finally:
        if existing is None:
            spark.stop()


def _spark(runtime: Any, ledger: Path | None, evals: Any, out: Path | None, threads: int | None,
           memory_limit: str | None) -> Any:
    with spark_session("credo-rescore", threads, memory_limit) as spark:
        if ledger is None:
            # Spark reads only Parquet: export the live ledger to a temporary folder first.
            with tempfile.TemporaryDirectory(prefix="credo-export-") as tmp:
                with runtime.db.read() as conn:
                    export_ledger(conn, runtime.catalogs, Path(tmp) / "ledger")
                return rescore_spark(spark, Path(tmp) / "ledger", evals, out=out)
        return rescore_spark(spark, ledger, evals, out=out)


@export_app.command("ledger")
def export_ledger_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to write (replaced if it holds an "
                                      "earlier export).")],
    buckets: Annotated[int, typer.Option(help="Partitions by subject (subject_id % buckets).",
                                         min=1, max=65536)] = 64,
    as_json: bool = JsonOpt,
) -> None:
    """The ledger, its appeals and the catalog relations as partitioned Parquet."""
    runtime = open_runtime()
    start = time.perf_counter()
    try:
        with runtime.db.read() as conn:
            manifest = export_ledger(conn, runtime.catalogs, out, buckets=buckets)
    except FileExistsError as exc:
        fail(str(exc), 2)
    seconds = time.perf_counter() - start
    if as_json:
        print_json({**manifest, "out": str(out), "seconds": round(seconds, 3)})
        return
    console.print(
        f"{manifest['records']} records and {manifest['appeals']} appeals in {manifest['buckets']} "
        f"buckets written to {out} in {seconds:.1f} s"
    )
