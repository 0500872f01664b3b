"""One meaning, many engines: generated worlds scored by every engine, and by the model.

Hypothesis generates catalogs (jurisdiction trees, inherited and overridden
policies, rule versions, expiries, rectifiable rules, reward caps, grade
bands) and ledgers (incidents, retractions, restorations, appeals with and
without decisions, recording delays) and asks questions at several valid
dates and knowledge times. Every engine must return exactly the same scores,
grades, ranks and counts, and the same status for every record, as the
plain-Python model of docs/scoring.md (tests/scoring/model.py):

* online, SQLite and PostgreSQL: the whole ledger in one statement, and
  subject by subject (the path ``credo score`` takes);
* DuckDB over the Parquet export, in one pass and in several bucket passes,
  and over Arrow tables;
* Spark SQL over the same export (slow: one JVM, many worlds per job).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from model import Model
from sqlalchemy import Connection, Engine, insert
from sqlalchemy.pool import StaticPool
from worlds import World, universes

from credo.catalog.registry import Registry
from credo.ledger.export import export_ledger, ledger_tables
from credo.scoring.batch import DuckDBOptions, rescore_arrow, rescore_parquet, rescore_spark
from credo.scoring.online import run_live
from credo.scoring.relations import Evaluation, catalog_relations
from credo.store.db import make_engine
from credo.store.tables import agencies, appeals, metadata, records, subjects

COUNTS = ("counted", "capped", "expired", "rectified", "void")


def write(conn: Connection, registry: Registry, found: list[World]) -> None:
    rows = [r for w in found for r in w.records]
    conn.execute(insert(agencies), [
        {"code": a.code, "jurisdiction": registry.agency_jurisdiction(a.code), "name_en": a.code,
         "name_zh": a.code, "kind": a.kind} for a in registry.agencies()
    ])
    ids = sorted({r["subject_id"] for r in rows})
    if ids:
        conn.execute(insert(subjects), [
            {"id": i, "kind": "person", "identifier": f"T{i}", "created_at": datetime(2000, 1, 1, tzinfo=UTC)}
            for i in ids
        ])
        hashes = {"content_hash": b"h" * 32, "leaf_hash": b"h" * 32}
        conn.execute(insert(records), [{**r, **hashes} for r in rows])
    found_appeals = [a for w in found for a in w.appeals]
    if found_appeals:
        conn.execute(insert(appeals), found_appeals)


def normalise(rows: list[dict[str, Any]]) -> dict[tuple[int, int], tuple[Any, ...]]:
    return {
        (int(r["eval_id"]), int(r["subject_id"])): (
            r["scheme"], int(r["score"]), r["grade"], float(r["rank"]), *(int(r[c]) for c in COUNTS)
        )
        for r in rows
        if r.get("scored", 1) in (1, True)
    }


def expected(model: Model, evals: list[Evaluation]) -> dict[tuple[int, int], tuple[Any, ...]]:
    return normalise([{"eval_id": e, "subject_id": s, **v} for (e, s), v in model.ranked(evals).items()])


def model_statuses(model: Model, evals: list[Evaluation], found: list[World]) -> dict[tuple[int, int], Any]:
    subjects_ = sorted({r["subject_id"] for w in found for r in w.records})
    return {
        (ev.eval_id, j.seq): (j.status, j.counted)
        for ev in evals for s in subjects_ for j in model.statuses(ev, s)
    }


@contextmanager
def sqlite_with(registry: Registry, found: list[World]) -> Iterator[Connection]:
    engine = make_engine("sqlite://", poolclass=StaticPool)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            write(conn, registry, found)
            yield conn
    finally:
        engine.dispose()


def check_online(conn: Connection, registry: Registry, found: list[World], evals: list[Evaluation],
                 model: Model, want: dict[tuple[int, int], tuple[Any, ...]]) -> None:
    assert normalise(run_live(conn, registry, "ranked", evals)) == want
    statuses = {(int(r["eval_id"]), int(r["seq"])): (r["status"], int(r["counted_points"]))
                for r in run_live(conn, registry, "statuses", evals)}
    assert statuses == model_statuses(model, evals, found)
    # Subject by subject (as `credo score` runs): the same scores and grades.
    for s in sorted({r["subject_id"] for w in found for r in w.records})[:3]:
        for r in run_live(conn, registry, "ranked", evals, subject_id=s):
            if r["scored"]:
                assert want[(int(r["eval_id"]), s)][1:3] == (int(r["score"]), r["grade"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universe=universes())
def test_online_sqlite_and_duckdb_agree_with_the_model(universe: Any) -> None:
    registry, found, evals = universe
    model = Model(registry, [r for w in found for r in w.records], [a for w in found for a in w.appeals])
    want = expected(model, evals)
    with sqlite_with(registry, found) as conn, tempfile.TemporaryDirectory() as tmp:
        check_online(conn, registry, found, evals, model, want)
        root = Path(tmp) / "export"
        export_ledger(conn, registry, root, buckets=4)
        rec, app = ledger_tables(conn)
        assert normalise(rescore_parquet(root, evals, with_eval=True).to_pylist()) == want
        # Bucket passes, then one ranking over their union: the same answer.
        passes = rescore_parquet(root, evals, DuckDBOptions(passes=3), with_eval=True)
        assert normalise(passes.to_pylist()) == want
    from_arrow = rescore_arrow(rec, app, catalog_relations(registry), evals, with_eval=True)
    assert normalise(from_arrow.to_pylist()) == want


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universe=universes())
def test_online_postgresql_agrees_with_the_model(universe: Any, bare_postgres: Engine) -> None:
    registry, found, evals = universe
    model = Model(registry, [r for w in found for r in w.records], [a for w in found for a in w.appeals])
    want = expected(model, evals)
    with bare_postgres.connect() as conn:
        outer = conn.begin()
        try:
            write(conn, registry, found)
            check_online(conn, registry, found, evals, model, want)
        finally:
            outer.rollback()


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universe=universes(max_worlds=5))
def test_spark_agrees_with_duckdb_and_the_model(universe: Any, spark: Any) -> None:
    registry, found, evals = universe
    model = Model(registry, [r for w in found for r in w.records], [a for w in found for a in w.appeals])
    want = expected(model, evals)
    with sqlite_with(registry, found) as conn, tempfile.TemporaryDirectory() as tmp:
        export_ledger(conn, registry, Path(tmp) / "export", buckets=3)
        duck = rescore_parquet(Path(tmp) / "export", evals, with_eval=True)
        sparked = rescore_spark(spark, Path(tmp) / "export", evals, with_eval=True)
    assert normalise(sparked.to_pylist()) == want
    assert normalise(duck.to_pylist()) == want
    assert sparked.schema == duck.schema
