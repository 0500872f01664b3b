"""The ledger as partitioned Parquet, for batch scoring and research.

``credo export ledger --out DIR`` writes::

    DIR/manifest.json                    what, when, how much, which catalogs
    DIR/records/bucket=N/kind=K/*.parquet  every ledger entry, N = subject_id % buckets,
                                         K its kind; sorted by subject, act date, seq
    DIR/appeals/bucket=N/*.parquet       every appeal, by its subject's bucket
    DIR/catalog/catalog_*.parquet        the catalog relations scoring reads

Records keep the ledger's own columns (``occurred_on`` a DATE,
``recorded_at`` a UTC TIMESTAMP in microseconds); a batch engine needs
nothing but this folder, so the same job runs on a laptop (DuckDB) or a
cluster (Spark). Bucketing by subject keeps every record of a subject,
its retractions, restorations and appeals in one partition, which is what
lets DuckDB score a ledger larger than memory one group of buckets at a time.
Within a bucket the kinds are apart (a scan for the few retractions and
restorations reads only their files) and rows come by subject, act date and
sequence number, so the rows a per-subject step groups or orders together
are already together (bench/RESULTS.md "Rescore": a third less CPU than the
ledger in sequence order).

The folder is written beside ``DIR`` and moved into place at the end, so a
reader never sees half an export.

>>> # with db.read() as conn: export_ledger(conn, registry, Path("export"))
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import Connection, func, select

from credo.catalog.registry import Registry
from credo.scoring.relations import catalog_relations
from credo.store.tables import appeals, records

FORMAT: Final = "credo-ledger-export"
#: 2: records partitioned by bucket and kind, sorted by subject, act date, seq (1: by bucket, in seq order)
VERSION: Final = 2
DEFAULT_BUCKETS: Final = 64

_UTC_US = pa.timestamp("us", tz="UTC")

RECORD_SCHEMA: Final = pa.schema(
    [
        ("seq", pa.int64()),
        ("agency", pa.string()),
        ("kind", pa.string()),
        ("subject_id", pa.int64()),
        ("rule", pa.string()),
        ("rule_version", pa.int32()),
        ("jurisdiction", pa.string()),
        ("occurred_on", pa.date32()),
        ("recorded_at", _UTC_US),
        ("target_seq", pa.int64()),
        ("bucket", pa.int32()),
    ]
)
APPEAL_SCHEMA: Final = pa.schema(
    [
        ("id", pa.int64()),
        ("record_seq", pa.int64()),
        ("subject_id", pa.int64()),
        ("filed_at", _UTC_US),
        ("deadline_at", _UTC_US),
        ("decided_at", _UTC_US),
        ("outcome", pa.string()),
        ("bucket", pa.int32()),
    ]
)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; the registry stores UTC only.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


#: Hive partition columns of the export's records and appeals.
RECORD_PARTITIONS: Final = pa.schema([("bucket", pa.int32()), ("kind", pa.string())])
APPEAL_PARTITIONS: Final = pa.schema([("bucket", pa.int32())])


def _batches(
    conn: Connection, query: Any, schema: pa.Schema, buckets: int, size: int
) -> Iterator[pa.RecordBatch]:
    names = [f.name for f in schema if f.name != "bucket"]
    # Options on the statement, not the connection: on a connection they
    # would stick and turn later statements into server-side cursors.
    result = conn.execute(query, execution_options={"stream_results": True, "yield_per": size})
    for chunk in result.partitions(size):
        columns: dict[str, list[Any]] = {n: [] for n in names}
        for row in chunk:
            for n, v in zip(names, row, strict=True):
                columns[n].append(_utc(v) if isinstance(v, datetime) else v)
        columns["bucket"] = [int(s) % buckets for s in columns["subject_id"]]
        yield pa.RecordBatch.from_pydict(columns, schema=schema)


def read_records(
    conn: Connection, buckets: int = 1, size: int = 100_000, *, by_subject: bool = False
) -> Iterator[pa.RecordBatch]:
    """Every ledger entry as Arrow batches of :data:`RECORD_SCHEMA`, in sequence
    order (or, ``by_subject``, by subject, act date and sequence number)."""
    cols = [records.c[f.name] for f in RECORD_SCHEMA if f.name != "bucket"]
    order = (records.c.subject_id, records.c.occurred_on, records.c.seq) if by_subject else (records.c.seq,)
    return _batches(conn, select(*cols).order_by(*order), RECORD_SCHEMA, buckets, size)


def read_appeals(conn: Connection, buckets: int = 1, size: int = 100_000) -> Iterator[pa.RecordBatch]:
    """Every appeal, as Arrow batches of :data:`APPEAL_SCHEMA`."""
    cols = [appeals.c[f.name] for f in APPEAL_SCHEMA if f.name != "bucket"]
    return _batches(conn, select(*cols).order_by(appeals.c.id), APPEAL_SCHEMA, buckets, size)


def ledger_tables(conn: Connection) -> tuple[pa.Table, pa.Table]:
    """The live ledger and its appeals as two Arrow tables (what DuckDB scores in memory)."""
    rec = pa.Table.from_batches(list(read_records(conn)), schema=RECORD_SCHEMA).drop_columns(["bucket"])
    app = pa.Table.from_batches(list(read_appeals(conn)), schema=APPEAL_SCHEMA).drop_columns(["bucket"])
    return rec, app


def _write(root: Path, batches: Iterator[pa.RecordBatch], schema: pa.Schema, partitions: pa.Schema) -> None:
    _write_batches(root, batches, schema, partitions)
    if not any(root.rglob("*.parquet")):
        # An empty ledger is still a ledger: one empty file keeps the schema,
        # so readers need no special case.
        folder = root.joinpath(*(f"{f.name}={0 if f.name == 'bucket' else 'incident'}" for f in partitions))
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(schema.empty_table().drop_columns(partitions.names), folder / "empty.parquet")


def _write_batches(
    root: Path, batches: Iterator[pa.RecordBatch], schema: pa.Schema, partitions: pa.Schema
) -> None:
    ds.write_dataset(
        pa.RecordBatchReader.from_batches(schema, batches),
        root,
        format="parquet",
        partitioning=ds.partitioning(partitions, flavor="hive"),
        existing_data_behavior="overwrite_or_ignore",
        # Rows keep the order they are read in (by subject within a bucket).
        preserve_order=True,
        max_rows_per_group=1 << 20,
        min_rows_per_group=1 << 16,
    )


def export_ledger(
    conn: Connection,
    catalogs: Registry,
    out: Path,
    *,
    buckets: int = DEFAULT_BUCKETS,
    batch_size: int = 100_000,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write the whole ledger, its appeals and the catalog relations under ``out``.

    Returns the manifest. ``out`` is replaced if it holds an earlier export;
    a folder that holds anything else is refused (``FileExistsError``).
    """
    if buckets < 1:
        raise ValueError("buckets: must be at least 1")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise FileExistsError(f"{out}: exists and is not a ledger export; choose an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write(
            staging / "records", read_records(conn, buckets, batch_size, by_subject=True), RECORD_SCHEMA,
            RECORD_PARTITIONS,
        )
        _write(staging / "appeals", read_appeals(conn, buckets, batch_size), APPEAL_SCHEMA, APPEAL_PARTITIONS)
        (staging / "catalog").mkdir()
        for rel in catalog_relations(catalogs):
            pq.write_table(rel.to_arrow(), staging / "catalog" / f"{rel.name}.parquet")
        counts = conn.execute(
            select(func.count(), func.max(records.c.seq), func.max(records.c.recorded_at))
        ).one()
        n_appeals = conn.execute(select(func.count()).select_from(appeals)).scalar_one()
        last = _utc(counts[2])
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "exported_at": (now or datetime.now(UTC)).isoformat(),
            "records": int(counts[0]),
            "max_seq": counts[1],
            "last_recorded_at": last.isoformat() if last else None,
            "appeals": int(n_appeals),
            "buckets": buckets,
            "catalog_digest": catalogs.digest,
            "jurisdictions": [j.code for j in catalogs.jurisdictions()],
            # A scheme's "today" is a local date: batch jobs need each zone.
            "timezones": {j.code: catalogs.policy(j.code).timezone for j in catalogs.jurisdictions()},
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def write_manifest(
    out: Path, *, records: int, appeals: int, buckets: int, digest: str, timezones: Mapping[str, str]
) -> None:
    """A manifest for a ledger written by other means (benchmarks, migrations)."""
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        "records": records,
        "max_seq": None,
        "last_recorded_at": None,
        "appeals": appeals,
        "buckets": buckets,
        "catalog_digest": digest,
        "jurisdictions": sorted(timezones),
        "timezones": dict(timezones),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


__all__ = [
    "APPEAL_PARTITIONS",
    "APPEAL_SCHEMA",
    "RECORD_PARTITIONS",
    "RECORD_SCHEMA",
    "export_ledger",
    "ledger_tables",
    "read_appeals",
    "read_records",
    "write_manifest",
]
