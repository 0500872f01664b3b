"""The definition itself: one text, rendered for four dialects, over typed inputs."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from credo.catalog.models import grade_for
from credo.catalog.registry import Registry
from credo.scoring.definition import (
    DIALECTS,
    INPUTS,
    OUTPUTS,
    STEPS,
    literal,
    literal_relation,
    records_adapter,
    render,
)
from credo.scoring.relations import (
    Evaluation,
    ask,
    catalog_relations,
    day_number,
    from_day,
    from_us,
    local_date,
    to_us,
)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("output", OUTPUTS)
def test_every_output_renders_and_parses_in_every_dialect(dialect: str, output: str) -> None:
    sql = render(output, dialect)  # type: ignore[arg-type]
    assert sql.startswith("WITH ")
    sqlglot.parse_one(sql, read=dialect)  # what we emit, the dialect's own parser reads back


def test_the_definition_names_only_its_inputs_and_its_own_steps() -> None:
    sql = render("ranked", "duckdb")
    tables = {t.name for t in sqlglot.parse_one(sql, read="duckdb").find_all(sqlglot.exp.Table)}
    assert tables <= set(INPUTS) | set(STEPS)
    assert {"ledger_records", "ledger_appeals", "catalog_rules", "catalog_bands", "evaluations"} <= tables


def test_provided_steps_are_not_recomputed() -> None:
    sql = render("ranked", "duckdb", provided=["scores"])
    assert "scores AS (" not in sql and "judged" not in sql
    assert "histogram AS (" in sql


def test_literals_are_quoted_by_sqlglot_so_text_cannot_escape() -> None:
    assert literal("it's", "postgres") == "'it''s'"
    assert literal(None, "sqlite") == "NULL"
    assert literal(True, "duckdb") == "1"
    with pytest.raises(TypeError):
        literal(1.5, "duckdb")


# ---------------------------------------------------------------------------
# Primitives: every engine turns dates and instants into the same integers.
# ---------------------------------------------------------------------------

DAYS = [date(1969, 12, 31), date(1970, 1, 1), date(2000, 2, 29), date(2024, 12, 31), date(2038, 1, 19)]
INSTANTS = [
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2024, 3, 2, 9, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


def _expected() -> list[tuple[int, int, int]]:
    return [(day_number(d), d.year, to_us(t)) for d in DAYS for t in INSTANTS]


def test_primitives_in_duckdb() -> None:
    rows = [{"occurred_on": d, "recorded_at": t} for d in DAYS for t in INSTANTS]
    table = pa.Table.from_pylist(rows, schema=pa.schema(
        [("occurred_on", pa.date32()), ("recorded_at", pa.timestamp("us", tz="UTC"))]))
    con = duckdb.connect()
    con.register("t", table)
    sql = records_adapter("duckdb", "(SELECT 1 AS seq, 'incident' AS kind, 1 AS subject_id, 'R' AS rule, "
                                    "1 AS rule_version, 'CN' AS jurisdiction, occurred_on, recorded_at, "
                                    "NULL AS target_seq FROM t)")
    got = con.execute(f"SELECT occurred_day, occurred_year, recorded_us FROM ({sql})").fetchall()
    assert got == _expected()


def test_primitives_in_sqlite_as_sqlalchemy_stores_them() -> None:
    # SQLAlchemy's SQLite Date and DateTime storage formats.
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (occurred_on TEXT, recorded_at TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [
        (d.isoformat(), t.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f"))
        for d in DAYS
        for t in INSTANTS
    ])
    sql = records_adapter("sqlite", "(SELECT 1 AS seq, 'incident' AS kind, 1 AS subject_id, 'R' AS rule, "
                                    "1 AS rule_version, 'CN' AS jurisdiction, occurred_on, recorded_at, "
                                    "NULL AS target_seq FROM t)")
    got = con.execute(f"SELECT occurred_day, occurred_year, recorded_us FROM ({sql})").fetchall()
    assert got == _expected()


def test_primitives_agree_with_python() -> None:
    assert from_day(day_number(date(2000, 2, 29))) == date(2000, 2, 29)
    assert from_us(to_us(INSTANTS[1])) == INSTANTS[1]
    assert to_us(datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000  # naive means UTC
    # 2026-03-01 16:30 UTC is already 2026-03-02 in Shanghai: "today" is local.
    assert local_date(datetime(2026, 3, 1, 16, 30, tzinfo=UTC), "Asia/Shanghai") == date(2026, 3, 2)


# ---------------------------------------------------------------------------
# The catalog relations say what the registry says.
# ---------------------------------------------------------------------------


def test_catalog_relations_follow_the_registry(catalogs: Registry) -> None:
    rules, visibility, policies, bands = catalog_relations(catalogs)
    by_code = {(r[0], r[1]): r for r in rules.rows}
    ticket2 = by_code[("CN-SD-RC.TRAFFIC-TICKET", 2)]
    assert ticket2[2:] == ("CN-SD-RC", -3, 365, 1)
    assert by_code[("CN.LOAN-FRAUD", 1)][4:] == (None, 0)  # no expiry of its own; not rectifiable
    assert {v[1] for v in visibility.rows if v[0] == "CN-ZJ-HZ"} == {"CN-ZJ-HZ", "CN-ZJ", "CN"}
    zj = next(p for p in policies.rows if p[0] == "CN-ZJ")
    assert zj[4] == 365  # Zhejiang's one-year rectification
    rc = [b for b in bands.rows if b[0] == "CN-SD-RC"]
    assert rc[0] == ("CN-SD-RC", "AAA", 1050, None) and rc[1] == ("CN-SD-RC", "AA", 1030, 1050)


def test_the_bands_relation_grades_exactly_like_the_catalog(catalogs: Registry) -> None:
    """Every score from floor to ceiling gets grade_for's grade from the SQL banding."""
    _, _, _, bands = catalog_relations(catalogs)
    con = duckdb.connect()
    con.register("catalog_bands", bands.to_arrow())
    policy = catalogs.policy("CN-SD-RC")
    got = dict(con.execute(
        "SELECT s, b.grade FROM range(?, ?) AS r(s) JOIN catalog_bands AS b ON b.scheme = 'CN-SD-RC' "
        "AND s >= b.min_score AND (b.below_score IS NULL OR s < b.below_score)",
        [policy.floor, policy.ceiling + 1],
    ).fetchall())
    assert got == {s: grade_for(policy, s) for s in range(policy.floor, policy.ceiling + 1)}


def test_literal_relations_type_their_columns_even_when_empty() -> None:
    con = sqlite3.connect(":memory:")
    assert con.execute(literal_relation("ledger_appeals", [], "sqlite")).fetchall() == []
    rows = con.execute(literal_relation("evaluations", [(1, "CN", 20000, 5)], "sqlite")).fetchall()
    assert rows == [(1, "CN", 20000, 5)]


def test_questions_default_to_today_in_each_schemes_timezone(catalogs: Registry) -> None:
    k = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)
    (e,) = ask(catalogs, ["CN-SD-RC"], known_at=k)
    assert e == Evaluation(1, "CN-SD-RC", date(2026, 3, 2), k)
    (e,) = ask(catalogs, ["CN"], as_of=date(2020, 1, 1), known_at=k)
    assert e.as_of == date(2020, 1, 1)


def test_counted_points_stay_64_bit_integers_in_duckdb() -> None:
    """A reward's running sum is cast back to BIGINT: DuckDB's SUM gives HUGEINT, which made every
    candidate's counted points 128-bit and the per-subject group-by of a rescore ~40% slower."""
    con = duckdb.connect()
    for name in INPUTS:
        con.execute(f"CREATE TABLE {name} AS {literal_relation(name, [], 'duckdb')}")
    described = con.execute(f"DESCRIBE {render('statuses', 'duckdb')}").fetchall()
    types = {name: kind for name, kind, *_ in described}
    assert types["counted_points"] == "BIGINT"
