"""A generated population to Parquet files, or into the registry's ledger.

Parquet layout under the output folder::

    subjects.parquet                      SUBJECT_COLUMNS
    records/agency=<CODE>/part-0.parquet  RECORD_FIELDS (the ingest columns)
    appeals.parquet                       APPEAL_COLUMNS
    population.json                       parameters and counts

``records/`` is a Hive-partitioned data set: read as one (``pyarrow.dataset``
with ``partitioning="hive"``, DuckDB's ``read_parquet(...,
hive_partitioning=true)``) its columns are exactly the ingest columns plus
``agency``; each file on its own is what ``credo ingest FILE --agency CODE``
takes. Within a file rows are in the order an agency would send them (by
date; a retraction or restoration after the record it names).

The same population gives the same bytes: the files are written with fixed
options and no timestamps (the Arrow schema is not embedded, so the
dictionary-encoded text columns read back as plain strings).

Ingesting goes through :func:`credo.ledger.services.ingest`, exactly as
``credo ingest`` and the HTTP API do: per agency, in batches (1,000 records
by default), one transaction each.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection

from credo.catalog.registry import Registry
from credo.ledger.log import LedgerLog
from credo.ledger.services import BatchResult, ingest
from credo.ledger.validate import RECORD_FIELDS
from credo.simulate.population import (
    APPEAL_SCHEMA,
    GENERATOR_VERSION,
    RECORD_SCHEMA,
    SUBJECT_SCHEMA,
    Population,
)

__all__ = ["IngestReport", "agency_groups", "ingest_records", "write_parquet"]

#: Written with these options only, so that the bytes depend on the data alone.
PARQUET_OPTIONS: Mapping[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "store_schema": False,
    "row_group_size": 1 << 20,
    "write_statistics": True,
}


class Transactions(Protocol):
    """Anything with ``begin()`` giving a connection in a transaction (``credo.store.db.Database``)."""

    def begin(self) -> AbstractContextManager[Connection]: ...


def _plain(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in the columns of ``schema`` (dictionary text stays dictionary-encoded)."""
    return table.select(schema.names)


def agency_groups(records: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """``(agency, rows)`` per agency, in code order; within one, rows keep their order."""
    if records.num_rows == 0:
        return
    column = records.column("agency")
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    if column.null_count:
        raise ValueError("agency: every record needs one")
    names = sorted(pc.unique(column).to_pylist())
    rank = pc.index_in(column, value_set=pa.array(names, type=pa.string())).to_numpy()
    if np.any(np.diff(rank) < 0):
        order = np.argsort(rank, kind="stable")
        records, rank = records.take(pa.array(order)), rank[order]
    bounds = [0, *(np.flatnonzero(np.diff(rank)) + 1).tolist(), records.num_rows]
    for lo, hi in itertools.pairwise(bounds):
        yield names[int(rank[lo])], records.slice(lo, hi - lo)


def write_parquet(population: Population, out: Path, *, threads: int | None = None) -> list[Path]:
    """Write the population under ``out`` (created if missing); returns the files written.

    Files of an earlier population in ``out/records/agency=*/`` are removed
    first, so the folder holds exactly this one.
    """
    out.mkdir(parents=True, exist_ok=True)
    records_dir = out / "records"
    if records_dir.is_dir():
        for old in sorted(records_dir.glob("agency=*/*.parquet")):
            old.unlink()
        for folder in sorted(records_dir.glob("agency=*")):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    record_columns = list(RECORD_FIELDS)
    jobs: list[tuple[pa.Table, Path]] = [
        (_plain(population.subjects, SUBJECT_SCHEMA), out / "subjects.parquet"),
        (_plain(population.appeals, APPEAL_SCHEMA), out / "appeals.parquet"),
    ]
    for agency, rows in agency_groups(_plain(population.records, RECORD_SCHEMA)):
        jobs.append((rows.select(record_columns), records_dir / f"agency={agency}" / "part-0.parquet"))

    def write(job: tuple[pa.Table, Path]) -> Path:
        table, path = job
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, **PARQUET_OPTIONS)
        return path

    # Largest first, so that two workers finish together.
    jobs.sort(key=lambda job: -job[0].nbytes)
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        written = list(pool.map(write, jobs))
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "prefix": population.prefix,
        "params": {
            "subjects": population.params.subjects,
            "years": population.params.years,
            "seed": population.params.seed,
            "start": population.params.start.isoformat(),
            "end": population.params.end.isoformat(),
            "org_share": population.params.org_share,
            "jurisdiction_weights": dict(sorted((population.params.jurisdiction_weights or {}).items())),
        },
        "counts": dict(population.counts),
    }
    (out / "population.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return sorted(written)


@dataclass
class IngestReport:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    batches: int = 0
    tree_size: int = 0
    #: the first few refusals: (agency, agency_ref, reasons)
    refusals: list[tuple[str, str | None, tuple[str, ...]]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "batches": self.batches,
            "tree_size": self.tree_size,
            "refusals": [
                {"agency": a, "agency_ref": r, "reasons": list(reasons)} for a, r, reasons in self.refusals
            ],
        }


def ingest_records(
    db: Transactions,
    catalogs: Registry,
    log: LedgerLog,
    records: pa.Table,
    *,
    batch: int = 1000,
    source: str = "simulate",
    now: datetime | None = None,
    progress: Callable[[str, int, BatchResult], None] | None = None,
) -> IngestReport:
    """Send ``records`` (``RECORD_COLUMNS``) through the ledger's ingest, agency by agency.

    Each batch of ``batch`` records of one agency is one transaction; rows
    keep their order within an agency, so a retraction or restoration comes
    after the record it names. ``progress(agency, rows, result)`` is called
    after every batch. Refused records are quarantined by ingest as usual and
    counted here.
    """
    if batch < 1:
        raise ValueError("batch: must be at least 1")
    report = IngestReport()
    fields = list(RECORD_FIELDS)
    for agency, rows in agency_groups(records):
        rows = rows.select(fields)
        for lo in range(0, rows.num_rows, batch):
            chunk = rows.slice(lo, batch).to_pylist()
            items = [{k: v for k, v in row.items() if v is not None} for row in chunk]
            with db.begin() as conn:
                result = ingest(
                    conn,
                    catalogs,
                    log,
                    agency,
                    items,
                    source=source,
                    lines=list(range(lo + 1, lo + 1 + len(items))),
                    now=now,
                )
            counts = result.counts()
            report.accepted += counts["accepted"]
            report.duplicate += counts["duplicate"]
            report.rejected += counts["rejected"]
            report.batches += 1
            report.tree_size = result.tree_size
            for outcome in result.outcomes:
                if outcome.status == "rejected" and len(report.refusals) < 20:
                    report.refusals.append((agency, outcome.agency_ref, outcome.reasons))
            if progress is not None:
                progress(agency, len(items), result)
    return report
