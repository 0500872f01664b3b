"""A simulated population goes into the ledger through the normal ingest path, refused by nothing."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
from sqlalchemy import func, select

from credo.ledger.readers import iter_file
from credo.ledger.services import ingest
from credo.runtime import Runtime
from credo.simulate.load import agency_groups, ingest_records, write_parquet
from credo.simulate.population import Population
from credo.store.tables import quarantine, records


def test_a_small_population_is_ingested_without_a_single_refusal(runtime: Runtime, small: Population) -> None:
    seen: list[tuple[str, int]] = []
    report = ingest_records(
        runtime.db,
        runtime.catalogs,
        runtime.log,
        small.records,
        progress=lambda agency, n, result: seen.append((agency, n)),
    )
    assert report.refusals == []
    assert (report.accepted, report.duplicate, report.rejected) == (small.records.num_rows, 0, 0)
    assert sum(n for _, n in seen) == small.records.num_rows
    assert [a for a, _ in seen] == sorted(a for a, _ in seen)  # grouped by agency
    with runtime.db.read() as conn:
        kinds = dict(conn.execute(select(records.c.kind, func.count()).group_by(records.c.kind)).all())
        assert conn.execute(select(func.count()).select_from(quarantine)).scalar_one() == 0
    assert kinds["retraction"] == small.counts["retractions"] > 0
    assert kinds["restoration"] == small.counts["restorations"] > 0
    assert kinds["incident"] == small.counts["incidents"]

    # Loading the same population again only finds duplicates.
    _, rows = next(agency_groups(small.records))
    again = ingest_records(runtime.db, runtime.catalogs, runtime.log, rows)
    assert (again.accepted, again.duplicate, again.rejected) == (0, rows.num_rows, 0)


def test_the_parquet_files_are_what_credo_ingest_takes(
    runtime: Runtime, small: Population, tmp_path: Path
) -> None:
    write_parquet(small, tmp_path)
    total = 0
    for path in sorted((tmp_path / "records").glob("agency=*/part-0.parquet")):
        agency = path.parent.name.removeprefix("agency=")
        lines, items = zip(*iter_file(path), strict=True)
        for lo in range(0, len(items), 1000):
            with runtime.db.begin() as conn:
                result = ingest(
                    conn,
                    runtime.catalogs,
                    runtime.log,
                    agency,
                    list(items[lo : lo + 1000]),
                    source=f"file:{path.name}",
                    lines=list(lines[lo : lo + 1000]),
                )
            assert result.counts()["rejected"] == 0, [o.reasons for o in result.outcomes if o.reasons]
            total += len(result.outcomes)
    assert (
        total
        == small.records.num_rows
        == pc.sum(pc.equal(small.records.column("kind"), "incident")).as_py()
        + small.counts["retractions"]
        + small.counts["restorations"]
    )
