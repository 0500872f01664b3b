"""Ingest: accepted, duplicate or rejected into quarantine — nothing lost, nothing overwritten."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from factories import RecordFactory, person_id, retraction
from sqlalchemy import func, select

from credo.ledger.services import BatchResult, ingest, quarantine_rows, retry_quarantine
from credo.runtime import Runtime
from credo.store.tables import records, tree_heads

TP = "CN-ZJ-HZ-TP"  # Hangzhou traffic police
NOW = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)


def send(runtime: Runtime, items: list[Any], agency: str = TP, now: datetime = NOW) -> BatchResult:
    with runtime.db.begin() as conn:
        return ingest(conn, runtime.catalogs, runtime.log, agency, items, source="test", now=now)


def count(runtime: Runtime, table: Any = records) -> int:
    with runtime.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_batch_gets_consecutive_sequence_numbers_and_a_signed_tree_head(runtime: Runtime) -> None:
    result = send(runtime, [RecordFactory() for _ in range(3)])
    assert [o.status for o in result.outcomes] == ["accepted"] * 3
    assert [o.seq for o in result.outcomes] == [1, 2, 3]
    assert result.tree_size == 3
    assert result.checkpoint is not None and result.checkpoint.splitlines()[1] == "3"
    assert count(runtime, tree_heads) == 1


def test_resending_the_same_batch_adds_nothing(runtime: Runtime) -> None:
    batch = [RecordFactory() for _ in range(3)]
    send(runtime, batch)
    again = send(runtime, batch)
    assert [(o.status, o.seq) for o in again.outcomes] == [
        ("duplicate", 1),
        ("duplicate", 2),
        ("duplicate", 3),
    ]
    assert count(runtime) == 3


def test_a_reused_reference_with_other_content_is_rejected_not_overwritten(runtime: Runtime) -> None:
    first = RecordFactory(agency_ref="T-1")
    send(runtime, [first])
    changed = {**first, "occurred_on": "2024-03-02"}
    result = send(runtime, [changed])
    assert result.outcomes[0].status == "rejected"
    assert "was already used for different content (seq 1)" in result.outcomes[0].reasons[0]
    with runtime.db.read() as conn:
        assert conn.execute(select(records.c.occurred_on)).scalar_one().isoformat() == "2024-03-01"


def test_same_reference_twice_in_one_batch(runtime: Runtime) -> None:
    item = RecordFactory(agency_ref="T-2")
    result = send(runtime, [item, dict(item), {**item, "evidence": "other"}])
    assert [o.status for o in result.outcomes] == ["accepted", "duplicate", "rejected"]
    assert result.outcomes[1].seq == 1


def test_identifiers_are_normalised_so_case_does_not_make_a_new_record(runtime: Runtime) -> None:
    item = RecordFactory(subject="11010519491231002X", agency_ref="T-3")
    send(runtime, [item])
    assert send(runtime, [{**item, "subject": "11010519491231002x"}]).outcomes[0].status == "duplicate"


BAD: list[tuple[dict[str, Any], str]] = [
    (
        {"subject": "110105194912310021"},
        "subject: resident identity number: check character is 1, expected X",
    ),
    ({"rule": "CN-ZJ-HZ.NO-SUCH-RULE"}, "rule: unknown rule 'CN-ZJ-HZ.NO-SUCH-RULE'"),
    ({"occurred_on": "2031-01-01"}, "occurred_on: 2031-01-01 is in the future"),
    (
        {"occurred_on": "2017-12-31"},
        "occurred_on: 2017-12-31 is before rule CN-ZJ-HZ.TRAFFIC-RED-LIGHT existed",
    ),
    ({"occurred_on": "1 March"}, "occurred_on: not a date"),
    (
        {"rule": "CN-SD-RC.TRAFFIC-TICKET"},
        "rule: CN-SD-RC.TRAFFIC-TICKET is a rule of CN-SD-RC; it does not apply in CN-ZJ-HZ",
    ),
    ({"rule": "CN.TAX-EVASION"}, "rule: agency CN-ZJ-HZ-TP may not report CN.TAX-EVASION"),
    (
        {"jurisdiction": "CN-ZJ-YW"},
        "jurisdiction: agency CN-ZJ-HZ-TP reports in CN-ZJ-HZ and below, not in CN-ZJ-YW",
    ),
    ({"agency_ref": ""}, "agency_ref: required"),
    ({"kind": "rumour"}, "kind: must be one of incident, retraction, restoration"),
    ({"colour": "red"}, "colour: unknown field"),
    ({":": "red"}, '":": unknown field'),  # a name that is not plain is quoted (make fuzz)
    ({"target_ref": "x"}, "target_ref/target_seq: only a retraction or restoration names a target"),
]


@pytest.mark.parametrize(
    ("change", "reason"), BAD, ids=[r.split(":")[0] + "-" + str(i) for i, (_, r) in enumerate(BAD)]
)
def test_bad_items_are_quarantined_with_a_reason_naming_the_field(
    runtime: Runtime, change: dict[str, Any], reason: str
) -> None:
    good, bad_item = RecordFactory(), {**RecordFactory(), **change}
    result = send(runtime, [good, bad_item])
    assert result.outcomes[0].status == "accepted", "a bad item must not cost the good one"
    bad = result.outcomes[1]
    assert bad.status == "rejected"
    assert any(r.startswith(reason) for r in bad.reasons), bad.reasons
    with runtime.db.read() as conn:
        (row,) = quarantine_rows(conn, agency=TP)
    assert row["line"] == 2 and row["source"] == "test"
    assert row["raw"] == bad_item, "the raw item is kept exactly as sent"
    assert any(r.startswith(reason) for r in row["reasons"])


def test_every_reason_is_listed_not_just_the_first(runtime: Runtime) -> None:
    result = send(runtime, [{"agency_ref": "x", "subject": "123", "rule": "NOPE", "occurred_on": "soon"}])
    fields = [r.split(":")[0] for r in result.outcomes[0].reasons]
    assert fields == ["subject", "occurred_on", "rule"]


def test_rule_version_in_force_on_the_day_of_the_act_is_recorded(runtime: Runtime) -> None:
    # Rongcheng's traffic ticket was revised from 2021-01-01 (version 2).
    items = [
        RecordFactory(rule="CN-SD-RC.TRAFFIC-TICKET", occurred_on="2020-12-31"),
        RecordFactory(rule="CN-SD-RC.TRAFFIC-TICKET", occurred_on="2021-01-01"),
    ]
    send(runtime, items, agency="CN-SD-RC-PSB")
    with runtime.db.read() as conn:
        assert conn.execute(select(records.c.rule_version).order_by(records.c.seq)).scalars().all() == [1, 2]


def test_retraction_names_an_own_record_once(runtime: Runtime) -> None:
    target = RecordFactory(agency_ref="T-9")
    send(runtime, [target])
    first = send(runtime, [retraction("T-9")])
    assert first.outcomes[0].status == "accepted"
    again = send(runtime, [{**retraction("T-9"), "agency_ref": "retract-again"}])
    assert "already retracted by 2" in again.outcomes[0].reasons[0]
    with runtime.db.read() as conn:
        row = conn.execute(select(records).where(records.c.seq == 2)).one()
    assert (row.kind, row.target_seq, row.rule) == ("retraction", 1, target["rule"])


def test_an_agency_cannot_retract_another_agencys_record(runtime: Runtime) -> None:
    send(runtime, [RecordFactory(court_defaulter=True, agency_ref="J-1")], agency="CN-SPC")
    result = send(
        runtime, [{"agency_ref": "r", "kind": "retraction", "target_seq": 1, "occurred_on": "2024-06-01"}]
    )
    assert "belongs to CN-SPC; only it may retract it" in result.outcomes[0].reasons[0]
    missing = send(runtime, [retraction("never-sent")])
    assert "no record 'never-sent' of agency CN-ZJ-HZ-TP" in missing.outcomes[0].reasons[0]


def test_restoration_clears_a_named_record_and_cannot_precede_it(runtime: Runtime) -> None:
    send(runtime, [RecordFactory(court_defaulter=True, agency_ref="J-2")], agency="CN-SPC")
    early = {"agency_ref": "paid-0", "kind": "restoration", "target_ref": "J-2", "occurred_on": "2024-01-01"}
    assert "cannot precede" in send(runtime, [early], agency="CN-SPC").outcomes[0].reasons[0]
    paid = {**early, "agency_ref": "paid-1", "occurred_on": "2024-07-01", "evidence": "judgment performed"}
    assert send(runtime, [paid], agency="CN-SPC").outcomes[0].status == "accepted"


def test_retraction_in_the_same_batch_as_its_target(runtime: Runtime) -> None:
    result = send(runtime, [RecordFactory(agency_ref="T-10"), retraction("T-10")])
    assert [o.status for o in result.outcomes] == ["accepted", "accepted"]


def test_retry_releases_quarantined_items_once_they_pass(runtime: Runtime) -> None:
    # A record of an act "in the future" by the clock of its first sending ...
    early_clock = datetime(2024, 2, 1, tzinfo=UTC)
    result = send(runtime, [RecordFactory(agency_ref="later")], now=early_clock)
    assert result.outcomes[0].status == "rejected"
    # ... passes once that day has come; the quarantine row stays, a release is added.
    with runtime.db.begin() as conn:
        counts = retry_quarantine(conn, runtime.catalogs, runtime.log, now=NOW)
        rows = quarantine_rows(conn)
    assert counts == {"released": 1, "still_refused": 0}
    assert rows[0]["released_as"] == "accepted" and rows[0]["released_seq"] == 1
    with runtime.db.begin() as conn:
        assert retry_quarantine(conn, runtime.catalogs, runtime.log, now=NOW) == {
            "released": 0,
            "still_refused": 0,
        }


def test_subjects_get_one_number_each(runtime: Runtime) -> None:
    someone = person_id()
    send(runtime, [RecordFactory(subject=someone), RecordFactory(subject=someone), RecordFactory()])
    with runtime.db.read() as conn:
        assert len(set(conn.execute(select(records.c.subject_id)).scalars())) == 2


def test_a_record_released_from_quarantine_gets_its_notice(runtime: Runtime) -> None:
    # Due process holds on every way in: a retry after a fix is an intake like any other.
    from credo.process.intake import resend_with_notice, retry_with_notice
    from credo.store.tables import notices

    early_clock = datetime(2024, 2, 1, tzinfo=UTC)
    send(runtime, [RecordFactory(agency_ref="later"), RecordFactory(agency_ref="fixme", subject="nobody")],
         now=early_clock)
    with runtime.db.begin() as conn:
        assert retry_with_notice(conn, runtime.catalogs, runtime.log, now=NOW) == {
            "released": 1, "still_refused": 1,
        }
        requeued = quarantine_rows(conn, open_only=True)
    assert [r["raw"]["agency_ref"] for r in requeued] == ["fixme"]
    fixed = {**requeued[0]["raw"], "subject": person_id()}
    with runtime.db.begin() as conn:
        qid = requeued[0]["id"]
        other = resend_with_notice(conn, runtime.catalogs, runtime.log, "CN-SPC", qid, fixed)
        outcome = resend_with_notice(conn, runtime.catalogs, runtime.log, TP, qid, fixed, now=NOW)
        again = resend_with_notice(conn, runtime.catalogs, runtime.log, TP, qid, fixed, now=NOW)
    assert other is None and again is None  # not that agency's item; no longer open
    assert outcome is not None and outcome.status == "accepted"
    with runtime.db.read() as conn:
        noticed = set(conn.execute(select(notices.c.record_seq)).scalars())
        assert noticed == set(conn.execute(select(records.c.seq)).scalars()) and len(noticed) == 2
        assert quarantine_rows(conn, open_only=True) == []
