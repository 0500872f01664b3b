"""The fast ingest path gives the same ledger as the plain definitions, and stays index-bound."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from factories import RecordFactory, person_id, retraction
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, event, func, select

from credo.ids import SubjectId, parse_subject
from credo.ledger.canonical import CanonicalizationError, leaf_hash
from credo.ledger.log import (
    LEAF_FIELDS,
    LeafTemplate,
    leaf_document,
    leaf_for,
    leaf_template,
    record_leaf_template,
    recorded_json,
)
from credo.ledger.services import ACCEPTED_FIELDS, append, ingest, prepare
from credo.ledger.validate import Checker, check_item
from credo.runtime import Runtime
from credo.store.db import insert_many
from credo.store.tables import records, subjects

TP = "CN-ZJ-HZ-TP"
NOW = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)

# Strings that try to fool the cuts of a leaf template: member boundaries,
# quotes, escapes and characters JSON escapes.
TRICKY = st.one_of(
    st.text(max_size=40),
    st.sampled_from(['","rule":"x', ',"subject":', '\\",', '"', "\\", "\u2028", "\x00", "规则", "😀"]),
)


@settings(max_examples=300, deadline=None)
@given(
    agency_ref=TRICKY,
    evidence=TRICKY,
    jurisdiction=TRICKY,
    rule=TRICKY,
    kind=st.sampled_from(["incident", "retraction", "restoration"]),
    seq=st.integers(1, 2**53 - 1),
    rule_version=st.integers(1, 1000),
    target_seq=st.one_of(st.none(), st.integers(1, 2**53 - 1)),
    content_hash=st.binary(min_size=32, max_size=32),
    occurred_on=st.dates(date(1900, 1, 1), date(2100, 1, 1)),
    recorded_at=st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    identifier=st.sampled_from(["11010519491231002X", "91110000600037341L", "DE:C01X00T47"]),
)
def test_a_leaf_template_filled_in_is_the_leaf_of_the_record(
    agency_ref: str,
    evidence: str,
    jurisdiction: str,
    rule: str,
    kind: str,
    seq: int,
    rule_version: int,
    target_seq: int | None,
    content_hash: bytes,
    occurred_on: date,
    recorded_at: datetime,
    identifier: str,
) -> None:
    subject = SubjectId("person", identifier)  # type: ignore[arg-type]
    row: dict[str, Any] = {
        "seq": seq,
        "agency": TP,
        "agency_ref": agency_ref,
        "kind": kind,
        "rule": rule,
        "rule_version": rule_version,
        "jurisdiction": jurisdiction,
        "occurred_on": occurred_on,
        "recorded_at": recorded_at,
        "evidence": evidence,
        "target_seq": target_seq,
        "content_hash": content_hash,
    }
    template = leaf_template(row, subject)
    assert template.leaf(recorded_json(recorded_at), seq) == leaf_for(row, subject)


# Any text, lone surrogates included (which RFC 8785 cannot hold: both paths must refuse them).
ANY_TEXT = st.one_of(TRICKY, st.text(st.characters(codec=None, categories=None), max_size=12))


@settings(max_examples=500, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {
            "agency_ref": ANY_TEXT,
            "kind": st.one_of(st.sampled_from(["incident", "retraction", "restoration"]), ANY_TEXT),
            "rule": ANY_TEXT,
            "rule_version": st.one_of(st.integers(0, 2**53 - 1), st.sampled_from([-1, 2**53, 2**63 - 1])),
            "jurisdiction": ANY_TEXT,
            "occurred_on": st.dates(date(1, 1, 1), date(9999, 12, 31)),
            "evidence": ANY_TEXT,
            "target_seq": st.one_of(
                st.none(), st.integers(0, 2**53 - 1), st.sampled_from([2**53, 2**63 - 1])
            ),
            "content_hash": st.binary(min_size=32, max_size=32),
        }
    ),
    seq=st.integers(1, 2**53 - 1),
    recorded_at=st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    subject=st.one_of(
        st.sampled_from(
            [SubjectId("person", "11010519491231002X"), SubjectId("foreign", "DE:C01X00T47")]  # type: ignore[arg-type]
        ),
        st.builds(SubjectId, st.just("foreign"), ANY_TEXT),
    ),
)
def test_the_record_leaf_written_directly_is_the_rfc8785_reference_leaf(
    fields: dict[str, Any], seq: int, recorded_at: datetime, subject: SubjectId
) -> None:
    row = {"agency": TP, **fields, "seq": seq, "recorded_at": recorded_at}
    try:
        expected: bytes | None = leaf_hash(rfc8785.dumps(leaf_document(row, subject)))
    except (rfc8785.CanonicalizationError, UnicodeError):
        expected = None
    try:
        template = record_leaf_template(TP, subject=subject, **fields)
        found: bytes | None = template.leaf(recorded_json(recorded_at), seq)
    except CanonicalizationError:
        found = None
    assert found == expected


def test_leaf_fields_are_in_canonical_order_and_are_the_whole_document() -> None:
    assert list(LEAF_FIELDS) == sorted(LEAF_FIELDS)  # ASCII names: RFC 8785 order is string order
    row = {
        "seq": 1,
        "agency": TP,
        "agency_ref": "r",
        "kind": "incident",
        "rule": "R",
        "rule_version": 1,
        "jurisdiction": "CN",
        "occurred_on": date(2024, 1, 1),
        "recorded_at": NOW,
        "evidence": "",
        "target_seq": None,
        "content_hash": bytes(32),
    }
    assert set(leaf_document(row, SubjectId("person", "11010519491231002X"))) == set(LEAF_FIELDS)
    with pytest.raises(ValueError, match="RFC 8785"):
        LeafTemplate(b"", b"", b"").leaf(b'""', 2**53)


def test_recorded_at_is_read_under_the_lock_so_it_never_goes_back_along_the_sequence(
    runtime: Runtime,
) -> None:
    # A batch checked early waits for the lock while a later one is appended first.
    early = prepare(runtime.catalogs, TP, [RecordFactory()], now=NOW - timedelta(minutes=5))
    with runtime.db.begin() as conn:
        ingest(conn, runtime.catalogs, runtime.log, TP, [RecordFactory()], source="test", now=NOW)
    with runtime.db.begin() as conn:
        append(conn, runtime.catalogs, runtime.log, early, source="test")
    with runtime.db.read() as conn:
        stamps = [r.recorded_at for r in conn.execute(select(records.c.recorded_at).order_by(records.c.seq))]
    assert stamps == sorted(stamps)


def _mixed_items() -> list[Any]:
    good = [RecordFactory() for _ in range(5)]
    same_subject = RecordFactory(subject=good[0]["subject"])
    return [
        *good,
        same_subject,
        {**RecordFactory(), "occurred_on": "2031-01-01"},
        {**RecordFactory(), "occurred_on": "20240301"},  # ISO basic format: read as a date
        {**RecordFactory(), "occurred_on": "2017-12-31"},  # before the rule existed
        {**RecordFactory(), "rule": "CN-SD-RC.TRAFFIC-TICKET"},
        {**RecordFactory(), "rule": "CN.TAX-EVASION"},
        {**RecordFactory(), "jurisdiction": "CN-ZJ-YW"},
        {**RecordFactory(), "jurisdiction": "XX"},
        {**RecordFactory(), "subject": "110105194912310021"},
        {**RecordFactory(), "subject": good[1]["subject"].lower(), "subject_kind": "person"},
        {**RecordFactory(), "colour": "red", 7: "x"},
        {**RecordFactory(), "agency_ref": "  padded  ", "evidence": 12.5},
        retraction(good[2]["agency_ref"]),
        {"agency_ref": "x", "kind": "restoration", "occurred_on": "2024-06-01"},
        "not an object",
        {},
    ]


def test_one_checker_for_a_batch_answers_as_a_fresh_check_per_item(runtime: Runtime) -> None:
    today = {"Asia/Shanghai": date(2026, 11, 26)}
    items = _mixed_items()
    checker = Checker(runtime.catalogs, TP, today)
    for _ in range(2):  # the second round is answered from what the checker remembers
        for item in items:
            assert checker.check(item) == check_item(item, TP, runtime.catalogs, today), item


def test_a_checker_that_knew_a_batchs_people_at_once_answers_as_a_fresh_check_per_item(
    runtime: Runtime,
) -> None:
    """``Checker.know_people`` validates the batch's people together; every spelling it does
    not take (a kind's prefix, lower case, spaces, an organisation, a refusal) is parsed and
    refused item by item as before."""
    today = {"Asia/Shanghai": date(2026, 11, 26)}
    people = [person_id() for _ in range(20)]
    spelled = [
        {"subject": people[0]},
        {"subject": "person:" + people[1]},
        {"subject": "person:" + people[2], "subject_kind": "person"},  # refused: 25 characters
        {"subject": f"  {people[3]} ", "subject_kind": " person "},
        {"subject": people[4].lower(), "subject_kind": "person"},
        {"subject": people[5], "subject_kind": None},
        {"subject": people[6], "subject_kind": "organisation"},
        {"subject": "91110000600037341L"},
        {"subject": "110105194912310021"},  # wrong check character
        {"subject": people[7][:6] + "19491331" + people[7][14:]},  # no such day
        {"subject": 110105194912310021},
        *({"subject": p} for p in people[8:]),
    ]
    items = [*_mixed_items(), *({**RecordFactory(), **s} for s in spelled)]
    checker = Checker(runtime.catalogs, TP, today)
    checker.know_people(items)
    assert len(checker._subjects) >= 15  # known before any check
    for item in items:
        assert checker.check(item) == check_item(item, TP, runtime.catalogs, today), item


@contextmanager
def select_statements(conn: Connection) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def remember(_c: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", remember)
    try:
        yield seen
    finally:
        event.remove(conn, "before_cursor_execute", remember)


def test_ingest_looks_records_and_subjects_up_by_index_never_by_scanning(runtime: Runtime) -> None:
    if runtime.db.dialect != "sqlite":
        pytest.skip("reads SQLite's query plans")
    first = [RecordFactory() for _ in range(5)]
    with runtime.db.begin() as conn:
        ingest(conn, runtime.catalogs, runtime.log, TP, first, source="test", now=NOW)
    batch = [*first, RecordFactory(), retraction(first[0]["agency_ref"])]
    with runtime.db.begin() as conn, select_statements(conn) as seen:
        ingest(conn, runtime.catalogs, runtime.log, TP, batch, source="test", now=NOW)
    with runtime.db.read() as conn:
        plans = {
            statement: " / ".join(
                str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            )
            for statement, params in seen
        }
    looked_up = [s for s in plans if "FROM records" in s or "FROM subjects" in s]
    assert len(looked_up) >= 4  # existing references, targets, retractions, subjects
    for statement, plan in plans.items():
        assert "SCAN records" not in plan and "SCAN subjects" not in plan, (statement, plan)


def test_the_same_digits_as_a_person_and_as_an_organisation_are_two_subjects(runtime: Runtime) -> None:
    both = next(number for n in range(1, 5000) if _valid("organisation", number := person_id(n)))
    items = [
        RecordFactory(subject=f"person:{both}"),
        RecordFactory(subject=f"organisation:{both}"),
        RecordFactory(subject=f"person:{both}"),
    ]
    with runtime.db.begin() as conn:
        result = ingest(conn, runtime.catalogs, runtime.log, TP, items, source="test", now=NOW)
    assert [o.status for o in result.outcomes] == ["accepted"] * 3
    with runtime.db.read() as conn:
        owners = conn.execute(
            select(records.c.seq, subjects.c.kind)
            .join(subjects, subjects.c.id == records.c.subject_id)
            .order_by(records.c.seq)
        ).all()
    assert [kind for _, kind in owners] == ["person", "organisation", "person"]


def _valid(kind: str, number: str) -> bool:
    try:
        parse_subject(kind, number)
    except ValueError:
        return False
    return True


def test_a_subject_another_writer_added_after_the_look_up_keeps_its_number(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from credo.ledger import services

    with runtime.db.begin() as conn:
        made = insert_many(
            conn, subjects, ("kind", "identifier", "created_at"), [("person", person_id(7), NOW)],
            returning=("id", "identifier"),
        )
        assert [identifier for _, identifier in made] == [person_id(7)]
        theirs = made[0][0]
        looked_up = services._subject_rows
        calls: list[list[str]] = []

        def before_the_other_writer(c: Connection, kind: str, identifiers: Any) -> dict[tuple[str, str], int]:
            calls.append(list(identifiers))
            # The first look-up ran before the other writer's subject existed.
            return {} if len(calls) == 1 else looked_up(c, kind, identifiers)

        monkeypatch.setattr(services, "_subject_rows", before_the_other_writer)
        wanted = [SubjectId("person", person_id(7)), SubjectId("person", person_id(8))]  # type: ignore[arg-type]
        numbers = services.subject_numbers(conn, wanted, NOW)
        count = conn.execute(select(func.count()).select_from(subjects)).scalar_one()
    assert numbers[("person", person_id(7))] == theirs
    assert calls[1:] == [[person_id(7)]]  # only the one the insert left out is read back
    assert len(set(numbers.values())) == 2
    assert count == 2


def test_the_accepted_rows_a_batch_hands_on_are_the_stored_records(runtime: Runtime) -> None:
    first = [RecordFactory() for _ in range(3)]
    with runtime.db.begin() as conn:
        ingest(conn, runtime.catalogs, runtime.log, TP, first, source="test", now=NOW)
    with runtime.db.begin() as conn:
        result = ingest(
            conn, runtime.catalogs, runtime.log, TP,
            [RecordFactory(), first[0], retraction(first[1]["agency_ref"]), {"agency_ref": "bad"}],
            source="test", now=NOW,
        )
    assert [o.status for o in result.outcomes] == ["accepted", "duplicate", "accepted", "rejected"]
    with runtime.db.read() as conn:
        stored = [
            dict(r._mapping)
            for r in conn.execute(
                select(*(records.c[name] for name in ACCEPTED_FIELDS))
                .where(records.c.seq.in_([o.seq for o in result.outcomes if o.status == "accepted"]))
                .order_by(records.c.seq)
            )
        ]
    assert [list(row) for row in result.accepted] == [list(ACCEPTED_FIELDS)] * 2
    assert result.accepted == stored
    assert result.accepted[1]["target_seq"] is not None and result.recorded_at == NOW


def test_the_api_checks_a_batch_before_it_opens_the_write_transaction(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checks need no database: run outside the writer, one batch's checks
    # overlap another's statements and commit.
    from fastapi.testclient import TestClient

    from credo.access.services import create_token
    from credo.api.app import create_app

    with runtime.db.begin() as conn:
        token = create_token(conn, "agency", agency=TP)
    writing: list[bool] = []
    begin = runtime.db.begin

    @contextmanager
    def begin_marked(**kwargs: Any) -> Iterator[Connection]:
        with begin(**kwargs) as conn:
            writing.append(True)
            try:
                yield conn
            finally:
                writing.pop()

    checked_while_writing: list[bool] = []
    check = Checker.check

    def check_marked(self: Checker, raw: Any) -> Any:
        checked_while_writing.append(bool(writing))
        return check(self, raw)

    monkeypatch.setattr(runtime.db, "begin", begin_marked)
    monkeypatch.setattr(Checker, "check", check_marked)
    answer = TestClient(create_app(runtime)).post(
        "/api/v1/records",
        json=[RecordFactory(), RecordFactory()],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200 and answer.json()["accepted"] == 2, answer.text
    assert checked_while_writing == [False, False]
