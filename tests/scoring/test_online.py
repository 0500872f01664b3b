"""The online engine on the live database: at once, reproducible, explained, forecast."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from factories import person_id
from ledgers import LedgerBuilder
from sqlalchemy import Engine, event, select

from credo.catalog.registry import Registry
from credo.ledger.services import ingest
from credo.runtime import Runtime
from credo.scoring.online import default_schemes, run_live, score_subject
from credo.scoring.relations import ask
from credo.store.db import Database
from credo.store.tables import subjects

COURT = "CN-SD-RC-COURT"  # Rongcheng People's Court
PSB = "CN-SD-RC-PSB"


def send(runtime: Runtime, agency: str, items: list[dict[str, Any]], now: datetime) -> list[int]:
    with runtime.db.begin() as conn:
        result = ingest(conn, runtime.catalogs, runtime.log, agency, items, source="test", now=now)
    assert all(o.status == "accepted" for o in result.outcomes), result.outcomes
    return [o.seq or 0 for o in result.outcomes]


def subject_number(runtime: Runtime, identifier: str) -> int:
    with runtime.db.read() as conn:
        query = select(subjects.c.id).where(subjects.c.identifier == identifier)
        return int(conn.execute(query).scalar_one())


def test_a_new_record_changes_the_score_at_once_and_the_past_stays_reproducible(runtime: Runtime) -> None:
    """Through the real ingest path: score, then a record, then the old score again with --known-at."""
    person = person_id(101)
    first = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    send(runtime, COURT, [{"agency_ref": "c-1", "subject": person, "rule": "CN-SD-RC.SUED-IN-BREACH",
                           "occurred_on": "2026-03-01"}], first)
    sid = subject_number(runtime, person)
    t = date(2026, 3, 10)
    with runtime.db.read() as conn:
        before = score_subject(conn, runtime.catalogs, sid, "CN-SD-RC", as_of=t, known_at=first)
    assert (before.score, before.grade) == (950, "B")

    second = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    (seq,) = send(runtime, PSB, [{"agency_ref": "p-1", "subject": person, "rule": "CN-SD-RC.UTILITY-THEFT",
                                  "occurred_on": "2026-03-04"}], second)
    with runtime.db.read() as conn:
        now = score_subject(conn, runtime.catalogs, sid, "CN-SD-RC", as_of=t, known_at=second)
        again = score_subject(conn, runtime.catalogs, sid, "CN-SD-RC", as_of=t, known_at=first)
    assert now.score == 890
    assert seq in {r.seq for r in now.records}
    # As it was known then: the same score, the same records, the same reasons.
    assert again.as_dict() == before.as_dict()

    # The court withdraws its record: void from the moment the retraction is recorded.
    third = datetime(2026, 3, 6, 8, 0, tzinfo=UTC)
    (retraction,) = send(runtime, COURT, [{"agency_ref": "c-1-r", "kind": "retraction", "target_ref": "c-1",
                                           "occurred_on": "2026-03-06"}], third)
    with runtime.db.read() as conn:
        after = score_subject(conn, runtime.catalogs, sid, "CN-SD-RC", as_of=t, known_at=third)
    assert after.score == 940
    withdrawn = next(r for r in after.records if r.status == "retracted")
    assert withdrawn.reason() == f"retracted by record {retraction}"


def test_the_explanation_lists_every_candidate_with_its_status_and_the_policy(db: Database,
                                                                              catalogs: Registry) -> None:
    b = LedgerBuilder()
    b.incident("breach", "CN-SD-RC.CONTRACT-BREACH", "2024-03-01")
    b.incident("ticket", "CN-SD-RC.TRAFFIC-TICKET", "2024-03-01")
    b.incident("hero", "CN-SD-RC.HEROIC-ACT", "2024-04-01")
    b.incident("wrong", "CN-SD-RC.UTILITY-THEFT", "2024-04-01")
    b.retraction("wrong-r", "wrong", "2024-04-10")
    with db.begin() as conn:
        b.write(conn, catalogs)
        report = score_subject(conn, catalogs, b.subjects["alice"], "CN-SD-RC", as_of=date(2025, 3, 15))
    data = report.as_dict()
    assert data["score"] == 1000 - 20 + 30
    assert data["counts"] == {"counted": 2, "capped": 0, "expired": 1, "rectified": 0, "void": 1}
    reasons = {r["seq"]: r["reason"] for r in data["records"]}
    assert reasons == {
        b.refs["breach"]: "counted",
        b.refs["ticket"]: "expired on 2025-03-01",
        b.refs["hero"]: "counted",
        b.refs["wrong"]: f"retracted by record {b.refs['wrong-r']}",
    }
    assert data["policy"]["rectification_period_days"] == 730
    assert data["policy"]["grade_bands"][0] == {"grade": "AAA", "min": 1050}
    assert data["catalog_digest"] == catalogs.digest
    breach = next(r for r in data["records"] if r["seq"] == b.refs["breach"])
    assert breach["ends_on"] == "2026-03-01"  # rectified then, if nothing new happens


def test_the_forecast_follows_acts_known_after_the_valid_date(db: Database, catalogs: Registry) -> None:
    """As of 2024-04-01 the fee of 2024-05-01 is already known: it counts, then moves the clean period."""
    b = LedgerBuilder()
    b.incident("breach", "CN-SD-RC.CONTRACT-BREACH", "2024-03-01")
    b.incident("fee", "CN-SD-RC.UTILITY-LATE-FEES", "2024-05-01")
    with db.begin() as conn:
        b.write(conn, catalogs)
        report = score_subject(conn, catalogs, b.subjects["alice"], "CN-SD-RC", as_of=date(2024, 4, 1))
    assert [c.sentence() for c in report.forecast] == [
        f"score falls to 960 on 2024-05-01 when record {b.refs['fee']} counts",
        f"score rises to 1000 on 2026-05-01 when record {b.refs['breach']} is rectified "
        f"and record {b.refs['fee']} is rectified",
    ]
    assert report.forecast[0].as_dict()["score_before"] == 980


def test_a_subject_without_records_scores_the_base_and_is_not_ranked(db: Database,
                                                                      catalogs: Registry) -> None:
    with db.begin() as conn:
        report = score_subject(conn, catalogs, 424242, "CN-ZJ", as_of=date(2026, 1, 1))
    assert (report.score, report.grade, report.scored, report.rank) == (1000, "A", False, None)
    assert report.records == () and report.forecast == ()
    with pytest.raises(KeyError), db.begin() as conn:
        score_subject(conn, catalogs, 424242, "XX-NOWHERE")


def test_the_default_schemes_are_the_most_specific_that_judge_the_file(db: Database,
                                                                      catalogs: Registry) -> None:
    b = LedgerBuilder()
    b.incident("n", "CN.TAX-EVASION", "2024-03-01", subject="mixed")
    b.incident("r", "CN-SD-RC.CONTRACT-BREACH", "2024-03-01", subject="mixed")
    b.incident("h", "CN-ZJ-HZ.TRAFFIC-RED-LIGHT", "2024-03-01", subject="mixed")
    b.incident("n2", "CN.TAX-EVASION", "2024-03-01", subject="national")
    with db.begin() as conn:
        b.write(conn, catalogs)
        assert default_schemes(conn, catalogs, b.subjects["mixed"]) == ["CN-SD-RC", "CN-ZJ-HZ"]
        assert default_schemes(conn, catalogs, b.subjects["national"]) == ["CN"]
        assert default_schemes(conn, catalogs, 31337) == ["CN"]


def test_the_rank_counts_only_strictly_lower_scores_in_the_scheme(db: Database, catalogs: Registry) -> None:
    b = LedgerBuilder()
    rules = ["CN-SD-RC.SUED-IN-BREACH", "CN-SD-RC.SUED-IN-BREACH", "CN-SD-RC.CONTRACT-BREACH"]
    for n, rule in enumerate(rules):
        b.incident(f"r{n}", rule, "2024-03-01", subject=f"s{n}")
    with db.begin() as conn:
        b.write(conn, catalogs)
        ranks = [score_subject(conn, catalogs, b.subjects[f"s{n}"], "CN-SD-RC", as_of=date(2024, 6, 1),
                               with_forecast=False).rank for n in range(3)]
    assert ranks == [0.0, 0.0, pytest.approx(2 / 3)]


def test_on_postgresql_the_definition_is_planned_without_nested_loops_or_jit_and_nothing_else_is(
    postgresql_engine: Engine, catalogs: Registry
) -> None:
    """PostgreSQL cannot estimate the steps' CTEs: over the whole registry it chose nested
    loops (minutes for 20,000 records) and then JIT (online.py, ``_PLAN_FOR_STEPS``)."""
    seen: list[tuple[str, str]] = []

    def settings_of(conn: Any) -> tuple[str, str]:
        row = conn.execute("SELECT current_setting('enable_nestloop'), current_setting('jit')").fetchone()
        return (row[0], row[1])

    def spy(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("WITH ledger_records"):
            seen.append(settings_of(cursor.connection))

    with postgresql_engine.connect() as conn:
        outer = conn.begin()
        try:
            conn.exec_driver_sql("SET LOCAL jit = on")
            dbapi = conn.connection.dbapi_connection
            before = settings_of(dbapi)
            event.listen(postgresql_engine, "before_cursor_execute", spy)
            try:
                evals = ask(catalogs, ["CN-SD-RC"], known_at=datetime(2026, 3, 10, tzinfo=UTC))
                run_live(conn, catalogs, "scores", evals)
                run_live(conn, catalogs, "explained", evals, subject_id=1)
            finally:
                event.remove(postgresql_engine, "before_cursor_execute", spy)
            assert seen == [("off", "off"), ("off", "off")]
            assert settings_of(dbapi) == before == ("on", "on")
        finally:
            outer.rollback()
