"""DuckDB's bucket passes read exactly their buckets, and DuckDB knows how many rows that is.

A pass once selected its buckets with ``bucket IN (...)`` over the whole
export's glob; DuckDB estimated such a scan from the first file of the glob,
so every pass without bucket 0 was planned for one row, and ran twice as
long (bench/RESULTS.md "Rescore"). The answers were right either way
(tests/scoring/test_engines.py compares them); this pins the plan's input.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from helpers import bench_module

from credo.ledger.export import APPEAL_PARTITIONS, APPEAL_SCHEMA, RECORD_PARTITIONS, RECORD_SCHEMA
from credo.scoring.batch import (
    RECORDS_PER_PASS,
    _incident_builds,
    _install_catalog,
    _register,
    duckdb_connection,
    end_passes,
    guard_pass_plan,
    install_pass,
    plan_passes,
)
from credo.scoring.definition import render
from credo.scoring.relations import Evaluation, evaluations

BUCKETS = 4


def _export(root: Path, per_bucket: int) -> None:
    n = per_bucket * BUCKETS
    when = datetime(2025, 1, 2, tzinfo=UTC)
    records = pa.table(
        {
            "seq": list(range(1, n + 1)),
            "agency": ["A"] * n,
            "kind": ["incident" if i % 10 else "retraction" for i in range(n)],
            "subject_id": list(range(n)),
            "rule": ["R"] * n,
            "rule_version": [1] * n,
            "jurisdiction": ["J"] * n,
            "occurred_on": [date(2025, 1, 1)] * n,
            "recorded_at": [when] * n,
            "target_seq": [None] * n,
            "bucket": [i % BUCKETS for i in range(n)],
        },
        schema=RECORD_SCHEMA,
    )
    appeals = pa.table(
        {"id": [1], "record_seq": [3], "subject_id": [2], "filed_at": [when], "deadline_at": [when],
         "decided_at": [None], "outcome": [None], "bucket": [2]},
        schema=APPEAL_SCHEMA,
    )
    for name, table, parts in (
        ("records", records, RECORD_PARTITIONS),
        ("appeals", appeals, APPEAL_PARTITIONS),
    ):
        hive = ds.partitioning(parts, flavor="hive")
        ds.write_dataset(table, root / name, format="parquet", partitioning=hive)


def _estimate(con: duckdb.DuckDBPyConnection, query: str) -> int:
    plan = str(con.execute("EXPLAIN " + query).fetchall()[0][1])
    return max(int(x.replace(",", "")) for x in re.findall(r"~([\d,]+)", plan))


def test_a_pass_reads_its_buckets_and_is_planned_for_their_rows(tmp_path: Path) -> None:
    _export(tmp_path, per_bucket=5_000)
    con = duckdb.connect()
    assert install_pass(con, tmp_path, [1, 3])
    subjects = [r[0] for r in con.execute("SELECT subject_id FROM ledger_records").fetchall()]
    assert len(subjects) == 10_000 and {s % BUCKETS for s in subjects} == {1, 3}
    # Planned for its rows, not for one row.
    assert _estimate(con, "SELECT * FROM ledger_records") >= 10_000
    # Buckets without appeals: none, with the columns the definition reads.
    assert con.execute("SELECT count(*), min(deadline_us) FROM ledger_appeals").fetchone() == (0, None)
    assert install_pass(con, tmp_path, [2])
    assert con.execute("SELECT record_seq FROM ledger_appeals").fetchall() == [(3,)]


def test_a_pass_over_buckets_without_records_is_skipped(tmp_path: Path) -> None:
    _export(tmp_path, per_bucket=10)
    con = duckdb.connect()
    assert not install_pass(con, tmp_path, [BUCKETS, BUCKETS + 1])


def _pass_sizes(records: int, buckets: int, passes: int) -> list[int]:
    """Records per pass when ``records`` spread evenly over ``buckets`` (as rescore_parquet groups them)."""
    return [len(range(i, buckets, passes)) * records // buckets for i in range(passes)]


def test_passes_aim_at_five_million_records_with_or_without_a_memory_limit() -> None:
    # ~5 M-record passes were measured faster than ~10 M ones and than one
    # pass (bench/RESULTS.md "Rescore"), with or without a limit.
    for limit in (None, "4GB", "24GB"):
        passes = plan_passes(100_000_000, limit, None, 64)
        sizes = _pass_sizes(100_000_000, 64, passes)
        assert max(sizes) <= RECORDS_PER_PASS and min(sizes) >= RECORDS_PER_PASS // 2, (limit, sizes)
    assert plan_passes(4_000_000, None, None, 64) == 1


def test_a_tight_memory_limit_makes_passes_smaller_and_buckets_bound_them() -> None:
    assert max(_pass_sizes(100_000_000, 64, plan_passes(100_000_000, "1GB", None, 64))) <= 2_500_000
    assert plan_passes(1_000_000_000, "4GB", None, 64) == 64
    assert plan_passes(1_000_000_000, "4GB", None, 256) == 256
    assert plan_passes(100_000_000, None, 7, 64) == 7


def _bench() -> Any:
    """bench/rescore.py, whose generator writes the benchmark's export."""
    return bench_module("rescore")


def test_a_pass_builds_no_hash_table_on_its_incidents(tmp_path: Path) -> None:
    # Planned with the join-order optimizer, a one-bucket pass of the
    # benchmark's ledger was estimated at ~100 incidents (of millions) after
    # the inequality join with `questions`, and hash tables were built on
    # the incidents (3x slower at 1 B records, bench/RESULTS.md "Rescore").
    root = tmp_path / "export"
    _bench().generate(root, 20_000, 2_000, 1, 4)
    con = duckdb.connect()
    _install_catalog(con, root / "catalog")
    _register(con, "evaluations", evaluations(
        [Evaluation(1, "XB", date(2026, 1, 1), datetime(2026, 1, 1, 12, tzinfo=UTC))]
    ).to_arrow())

    def builds() -> int:
        plan = con.execute("EXPLAIN (FORMAT JSON) " + render("scores", "duckdb")).fetchall()[0][1]
        return sum(_incident_builds(node) for node in json.loads(plan))

    assert install_pass(con, root, [1])
    # What every optimizer makes of this pass: the plan guard_pass_plan avoids.
    assert builds() > 0
    assert guard_pass_plan(con, render("scores", "duckdb"))
    assert builds() == 0
    end_passes(con)
    assert builds() > 0
    # A pass it plans well keeps every optimizer.
    assert install_pass(con, root, [0, 1, 2, 3])
    assert not guard_pass_plan(con, render("scores", "duckdb"))


def _judged_filters(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The FILTER expressions inside the definition of the ``judged`` CTE, as planned."""
    plan = json.loads(con.execute("EXPLAIN (FORMAT JSON) " + render("scores", "duckdb")).fetchall()[0][1])

    def judged(node: dict[str, Any]) -> dict[str, Any] | None:
        if node.get("name") == "CTE" and node.get("extra_info", {}).get("CTE Name") == "judged":
            return node
        return next((j for c in node.get("children", []) if (j := judged(c)) is not None), None)

    def filters(node: dict[str, Any]) -> list[str]:
        own = [str(node["extra_info"].get("Expression"))] if node.get("name") == "FILTER" else []
        return own + [f for c in node.get("children", []) for f in filters(c)]

    found = [j for node in plan if (j := judged(node)) is not None]
    assert len(found) == 1
    return filters(found[0]["children"][0])


def test_no_pass_filters_every_candidate_on_its_lane(tmp_path: Path) -> None:
    # DuckDB's CTE filter pusher ORs the lanes that judged's consumers take
    # (1, 2 and 0) into judged: a filter every candidate passes, ~10 % of a
    # pass (bench/RESULTS.md "Rescore", session 16).
    root = tmp_path / "export"
    _bench().generate(root, 20_000, 2_000, 1, 4)
    with duckdb_connection() as con:
        _install_catalog(con, root / "catalog")
        _register(con, "evaluations", evaluations(
            [Evaluation(1, "XB", date(2026, 1, 1), datetime(2026, 1, 1, 12, tzinfo=UTC))]
        ).to_arrow())
        assert install_pass(con, root, [0, 1, 2, 3])
        for guarded in (False, True):
            if guarded:
                assert install_pass(con, root, [1]) and guard_pass_plan(con, render("scores", "duckdb"))
            assert not [f for f in _judged_filters(con) if "lane" in f]
        end_passes(con)
        assert not [f for f in _judged_filters(con) if "lane" in f]
        con.execute("RESET disabled_optimizers")
        assert [f for f in _judged_filters(con) if "lane" in f]
