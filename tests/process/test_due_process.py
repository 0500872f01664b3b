"""Due process end to end, with a frozen clock (every step is given its 'now')."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
from factories import RecordFactory, org_id, person_id, retraction
from sqlalchemy import select

from credo.lists.refresh import refresh
from credo.lists.services import build_index
from credo.process import appeals, rectification
from credo.process.appeals import AppealError, Reviewer
from credo.process.intake import ingest_and_notify
from credo.runtime import Runtime
from credo.scoring.online import score_subject
from credo.store.tables import notices, subjects

# 10:00 in Shanghai on 2026-03-01: the day a Yiwu notice is issued.
DAY0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
REVIEWER = Reviewer("reviewer Li", "CN-ZJ")


def day(n: int, hour: int = 2) -> datetime:
    return DAY0 + timedelta(days=n, hours=hour - 2)


def send(runtime: Runtime, agency: str, items: list[dict[str, object]], now: datetime) -> list[int]:
    with runtime.db.begin() as conn:
        result = ingest_and_notify(conn, runtime.catalogs, runtime.log, agency, items, source="test", now=now)
    assert all(o.status == "accepted" for o in result.outcomes), result.outcomes
    return [o.seq for o in result.outcomes if o.seq is not None]


def number(runtime: Runtime, who: str) -> int:
    with runtime.db.read() as conn:
        return int(conn.execute(select(subjects.c.id).where(subjects.c.identifier == who)).scalar_one())


def yiwu_record(runtime: Runtime, who: str, now: datetime = DAY0) -> int:
    (seq,) = send(
        runtime,
        "CN-ZJ-YW-AMR",
        [RecordFactory(subject=who, rule="CN-ZJ-YW.COUNTERFEIT-TRADEMARK", occurred_on="2026-02-20")],
        now,
    )
    return seq


def test_an_adverse_record_comes_with_its_notice_and_appeal_deadline(runtime: Runtime) -> None:
    who = org_id(41)
    seq = yiwu_record(runtime, who)
    with runtime.db.read() as conn:
        (n,) = conn.execute(select(notices).where(notices.c.record_seq == seq)).all()
    assert n.kind == "record"
    assert json.loads(n.body)["appeal_by"] == "2026-03-16"  # Yiwu: 15 days from the notice


def test_yiwu_appeal_on_day_14_is_accepted_and_on_day_16_refused(runtime: Runtime) -> None:
    early, late = org_id(42), org_id(43)
    first, second = yiwu_record(runtime, early), yiwu_record(runtime, late)
    with runtime.db.begin() as conn:
        appeal = appeals.file_appeal(
            conn,
            runtime.catalogs,
            number(runtime, early),
            record_seq=first,
            grounds="the goods were genuine",
            now=day(14),
        )
        assert appeal > 0
        with pytest.raises(AppealError, match=r"appeal window of 15 days .* closed at the end of 2026-03-16"):
            appeals.file_appeal(
                conn, runtime.catalogs, number(runtime, late), record_seq=second, grounds="late", now=day(16)
            )
        with pytest.raises(AppealError, match="already appealed"):
            appeals.file_appeal(
                conn, runtime.catalogs, number(runtime, early), record_seq=first, grounds="again", now=day(14)
            )


def test_an_overdue_appeal_suspends_the_record_until_it_is_decided(runtime: Runtime) -> None:
    who = org_id(44)
    seq = yiwu_record(runtime, who)
    sid = number(runtime, who)
    with runtime.db.begin() as conn:
        appeal = appeals.file_appeal(
            conn, runtime.catalogs, sid, record_seq=seq, grounds="wrong company", now=day(1)
        )

    def status(at: datetime) -> str:
        with runtime.db.read() as conn:
            report = score_subject(conn, runtime.catalogs, sid, "CN-ZJ-YW", known_at=at, with_forecast=False)
        return next(r.status for r in report.records if r.seq == seq)

    assert status(day(30)) == "counted"  # decision due by the end of day 31 (filed on day 1 + 30)
    assert status(day(32)) == "suspended"
    with runtime.db.begin() as conn:
        assert appeals.overdue(conn, day(32)) == [sid]
        assert appeals.overdue(conn, day(33)) == []  # told once
        decision = appeals.decide(
            conn,
            runtime.catalogs,
            runtime.log,
            REVIEWER,
            appeal,
            outcome="upheld",
            reasons="the trademark registry confirms it",
            now=day(40),
        )
    assert decision["outcome"] == "upheld"
    assert status(day(41)) == "counted"
    # As it was known on day 35, the record was suspended: history stays reproducible.
    assert status(day(35)) == "suspended"


def test_an_overturned_court_judgment_allows_air_travel_again_at_once(runtime: Runtime) -> None:
    who = person_id()
    (seq,) = send(
        runtime, "CN-SPC", [RecordFactory(court_defaulter=True, subject=who, occurred_on="2026-02-10")], DAY0
    )
    sid = number(runtime, who)
    subject = f"person:{who}"
    with runtime.db.read() as conn:
        assert build_index(conn, runtime.catalogs, day(1).date()).decide("air-travel", subject) == "denied"
    with runtime.db.begin() as conn:
        appeal = appeals.file_appeal(
            conn, runtime.catalogs, sid, record_seq=seq, grounds="I paid", now=day(2)
        )
        with pytest.raises(AppealError, match="you belong to CN-SPC"):
            appeals.decide(
                conn,
                runtime.catalogs,
                runtime.log,
                Reviewer("judge", "CN", "CN-SPC"),
                appeal,
                outcome="overturned",
                reasons="x",
                now=day(3),
            )
        appeals.decide(
            conn,
            runtime.catalogs,
            runtime.log,
            Reviewer("reviewer Wang", "CN"),
            appeal,
            outcome="overturned",
            reasons="the debt was paid before the judgment",
            now=day(3),
        )
        refresh(conn, runtime.catalogs, day(3), [sid])
        kinds = (
            conn.execute(select(notices.c.kind).where(notices.c.subject_id == sid).order_by(notices.c.id))
            .scalars()
            .all()
        )
        assert build_index(conn, runtime.catalogs, day(3).date()).decide("air-travel", subject) == "allowed"
    assert kinds == ["record", "listing", "appeal-received", "appeal-decision", "delisting"]


def test_a_reviewer_outside_the_jurisdiction_cannot_see_the_appeal(runtime: Runtime) -> None:
    who = org_id(45)
    seq = yiwu_record(runtime, who)
    with runtime.db.begin() as conn:
        appeal = appeals.file_appeal(
            conn, runtime.catalogs, number(runtime, who), record_seq=seq, grounds="g", now=day(1)
        )
        with pytest.raises(AppealError, match=r"no appeal \d+ in your jurisdiction CN-SD"):
            appeals.decide(
                conn,
                runtime.catalogs,
                runtime.log,
                Reviewer("x", "CN-SD"),
                appeal,
                outcome="upheld",
                reasons="r",
                now=day(2),
            )
        assert appeals.queue(conn, runtime.catalogs, Reviewer("x", "CN-SD"), day(2)) == []
        (queued,) = appeals.queue(conn, runtime.catalogs, REVIEWER, day(2))
    assert queued["appeal"] == appeal and queued["days_left"] > 29


def test_amended_replaces_the_record(runtime: Runtime) -> None:
    who = org_id(46)
    seq = yiwu_record(runtime, who)
    sid = number(runtime, who)
    with runtime.db.begin() as conn:
        appeal = appeals.file_appeal(
            conn, runtime.catalogs, sid, record_seq=seq, grounds="wrong date", now=day(1)
        )
        decision = appeals.decide(
            conn,
            runtime.catalogs,
            runtime.log,
            REVIEWER,
            appeal,
            outcome="amended",
            reasons="the act was on the 21st",
            now=day(2),
            correction={"occurred_on": "2026-02-21"},
        )
        report = score_subject(conn, runtime.catalogs, sid, "CN-ZJ-YW", known_at=day(3), with_forecast=False)
    statuses = {r.seq: r.status for r in report.records}
    assert statuses[seq] == "overturned" and statuses[decision["amended_seq"]] == "counted"


def test_a_zhejiang_clean_year_clears_a_record(runtime: Runtime) -> None:
    who = org_id(47)
    yiwu_record(runtime, who)  # act on 2026-02-20, rectifiable, Zhejiang: 365 days
    sid = number(runtime, who)
    with runtime.db.read() as conn:
        before = score_subject(
            conn, runtime.catalogs, sid, "CN-ZJ-YW", as_of=date(2027, 2, 19), with_forecast=False
        )
        after = score_subject(
            conn, runtime.catalogs, sid, "CN-ZJ-YW", as_of=date(2027, 2, 20), with_forecast=False
        )
    assert [r.status for r in before.records] == ["counted"]
    (cleared,) = after.records
    assert (cleared.status, cleared.status_on) == ("rectified", date(2027, 2, 20))
    assert after.score == before.score + 30


def test_early_rectification_on_request_is_a_restoration_record(runtime: Runtime) -> None:
    who = org_id(48)
    seq = yiwu_record(runtime, who)
    sid = number(runtime, who)
    with runtime.db.begin() as conn:
        req = rectification.request(
            conn, runtime.catalogs, sid, seq, act="fine-paid", evidence="receipt 2026-0042", now=day(5)
        )
        with pytest.raises(AppealError, match="still open"):
            rectification.request(conn, runtime.catalogs, sid, seq, act="fine-paid", evidence="x", now=day(5))
        decided = rectification.decide(
            conn,
            runtime.catalogs,
            runtime.log,
            rectification.Decider("clerk", agency="CN-ZJ-YW-AMR"),
            req,
            approve=True,
            reasons="fine paid in full",
            now=day(8),
        )
        report = score_subject(conn, runtime.catalogs, sid, "CN-ZJ-YW", known_at=day(9), with_forecast=False)
    (r,) = [x for x in report.records if x.seq == seq]
    assert (r.status, r.cause_seq) == ("rectified", decided["restoration_seq"])


def test_notice_bodies_hold_every_member_in_order_as_compact_json(runtime: Runtime) -> None:
    # The bodies are written from parts worked out once per rule version: the
    # same text as the body's mapping written whole, for each kind of notice.
    ticket, judged = person_id(), person_id()
    first = RecordFactory(subject=ticket, occurred_on="2026-02-01")
    seqs = send(runtime, "CN-ZJ-HZ-TP", [first, RecordFactory(subject=ticket)], DAY0)
    seqs += send(runtime, "CN-ZJ-HZ-TP", [retraction(first["agency_ref"])], day(1))
    seqs += send(runtime, "CN-SPC", [RecordFactory(court_defaulter=True, subject=judged)], day(2))
    with runtime.db.read() as conn:
        found = {
            n.record_seq: n.body
            for n in conn.execute(
                select(notices).where(notices.c.record_seq.in_(seqs), notices.c.kind != "listing")
            )
        }
    assert sorted(found) == seqs
    members = ["kind", "seq", "rule", "title_en", "title_zh", "legal_basis", "points", "jurisdiction"]
    for seq, text in found.items():
        body = json.loads(text)
        assert orjson.dumps(body).decode() == text  # compact, members in the order written
        assert body["seq"] == seq
        if body["kind"] == "retraction":
            assert list(body) == [*members, "occurred_on", "target_seq"]
            assert (body["target_seq"], body["occurred_on"]) == (seqs[0], "2024-06-01")
        else:
            assert list(body) == [*members, "occurred_on", "target_seq", "appeal_by", "places_on"]
            assert body["target_seq"] is None
    assert json.loads(found[seqs[0]])["occurred_on"] == "2026-02-01"
    assert json.loads(found[seqs[-1]])["places_on"] is not None
