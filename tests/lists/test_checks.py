"""Relying-party checks: yes or no from the index, logged, and traceable by the subject."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from factories import RecordFactory, person_id
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from credo.access.services import create_token
from credo.api.app import create_app
from credo.api.fastpath import ChecksFastPath
from credo.ids import IdentifierError, parse_subject_ref
from credo.ledger.services import ingest
from credo.lists.checklog import checks_about
from credo.lists.checks import AT_ONCE
from credo.lists.derive import NewListing, Plan
from credo.lists.services import PartyError, apply_plan, build_index, listing_views, register_party
from credo.runtime import Runtime
from credo.store.tables import listings, notices, subjects

NOW = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)


def list_defaulter(
    runtime: Runtime, who: str, started: date = date(2024, 5, 10), *, grace_days: int = 0, now: datetime = NOW
) -> int:
    """A court judgment in the ledger and the listing it causes, with its notice."""
    with runtime.db.begin() as conn:
        result = ingest(
            conn,
            runtime.catalogs,
            runtime.log,
            "CN-SPC",
            [RecordFactory(court_defaulter=True, subject=who, occurred_on=started.isoformat())],
            source="test",
            now=now,
        )
        seq = result.outcomes[0].seq
        sid = conn.execute(select(subjects.c.id).where(subjects.c.identifier == who)).scalar_one()
        apply_plan(
            conn,
            runtime.catalogs,
            Plan(
                open=[
                    NewListing(
                        sid,
                        "CN.DEFAULTER",
                        "CN",
                        "rule",
                        seq,
                        started,
                        started + timedelta(days=730),
                        started + timedelta(days=grace_days),
                    )
                ]
            ),
            now,
        )
    return int(sid)


@pytest.fixture
def airline(runtime: Runtime) -> str:
    return register_airline(runtime)


def register_airline(runtime: Runtime) -> str:
    """Air China, asking about air travel and rail: its token."""
    with runtime.db.begin() as conn:
        register_party(
            conn,
            runtime.catalogs,
            "CA",
            name="Air China",
            sector="aviation",
            purpose="ticket sales under the joint punishment memorandum",
            measures=["air-travel", "high-speed-rail"],
        )
        return create_token(conn, "relying_party", relying_party="CA")


def client(runtime: Runtime, token: str) -> TestClient:
    return TestClient(create_app(runtime), headers={"Authorization": f"Bearer {token}"})


def test_a_listing_has_its_notice_and_is_enforceable_from_the_later_of_notice_and_grace(
    runtime: Runtime,
) -> None:
    sid = list_defaulter(runtime, person_id(), grace_days=30)
    with runtime.db.read() as conn:
        (view,) = listing_views(conn, runtime.catalogs, subject_ids=[sid])
        kinds = conn.execute(select(notices.c.kind).where(notices.c.subject_id == sid)).scalars().all()
    assert "listing" in kinds
    assert view.enforceable_from == date(2024, 6, 9)  # grace (2024-05-10 + 30) is later than the notice
    assert not view.enforceable(date(2024, 6, 8)) and view.enforceable(date(2024, 6, 9))


def test_no_notice_no_enforcement(runtime: Runtime) -> None:
    """A listing row written without its notice (not by apply_plan) is never enforced."""
    who = person_id()
    with runtime.db.begin() as conn:
        ingest(
            conn,
            runtime.catalogs,
            runtime.log,
            "CN-SPC",
            [RecordFactory(court_defaulter=True, subject=who)],
            source="test",
            now=NOW,
        )
        sid = conn.execute(select(subjects.c.id).where(subjects.c.identifier == who)).scalar_one()
        conn.execute(
            insert(listings).values(
                subject_id=sid,
                list_code="CN.DEFAULTER",
                scheme="CN",
                cause="rule",
                cause_seq=1,
                started_on=date(2024, 5, 10),
                planned_end_on=date(2026, 5, 10),
                grace_until=date(2024, 5, 10),
                created_at=NOW,
            )
        )
        (view,) = listing_views(conn, runtime.catalogs, subject_ids=[sid])
        index = build_index(conn, runtime.catalogs, date(2024, 6, 2))
    assert view.enforceable_from is None
    assert view.in_force(date(2024, 6, 2)) and not view.enforceable(date(2024, 6, 2))
    assert index.decide("air-travel", str(parse_subject_ref(who))) == "allowed"


def test_the_index_denies_listed_subjects_only_for_the_lists_measures(runtime: Runtime) -> None:
    who = person_id()
    list_defaulter(runtime, who)
    with runtime.db.read() as conn:
        index = build_index(conn, runtime.catalogs, date(2024, 6, 2))
    subject = str(parse_subject_ref(who))
    assert index.decide("air-travel", subject) == "denied"
    assert index.decide("high-speed-rail", subject) == "denied"
    assert index.decide("state-bank-loan", subject) == "allowed"
    assert index.decide("air-travel", str(parse_subject_ref(person_id()))) == "allowed"


def test_a_manifest_gets_exactly_subject_measure_decision_ref(runtime: Runtime, airline: str) -> None:
    listed, clean = person_id(), person_id()
    list_defaulter(runtime, listed, started=date.today() - timedelta(days=20), now=datetime.now(UTC))
    c = client(runtime, airline)
    res = c.post(
        "/api/v1/checks",
        json=[{"subject": listed, "measure": "air-travel"}, {"subject": clean, "measure": "air-travel"}],
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert [set(a) for a in body] == [{"subject", "measure", "decision", "ref"}] * 2
    assert [a["decision"] for a in body] == ["denied", "allowed"]
    assert body[0]["ref"] != body[1]["ref"]


def test_asking_outside_the_registered_measures_is_403_for_the_whole_call(
    runtime: Runtime, airline: str
) -> None:
    res = client(runtime, airline).post(
        "/api/v1/checks",
        json=[
            {"subject": person_id(), "measure": "air-travel"},
            {"subject": person_id(), "measure": "state-bank-loan"},
        ],
    )
    assert res.status_code == 403
    assert "items[1].measure" in res.json()["detail"]


def test_an_identifier_with_a_region_stdnum_knows_only_as_a_prefix_is_refused(
    runtime: Runtime, airline: str
) -> None:
    """370253 is in stdnum's table only as a prefix: a 422 naming the region, not a 500."""
    res = client(runtime, airline).post(
        "/api/v1/checks", json=[{"subject": "370253199001010015", "measure": "air-travel"}]
    )
    assert res.status_code == 422 and "region code 370253" in res.json()["detail"]


def test_bad_manifests_are_refused_with_the_item(runtime: Runtime, airline: str) -> None:
    c = client(runtime, airline)
    bad = c.post("/api/v1/checks", json=[{"subject": "123", "measure": "air-travel"}])
    assert bad.status_code == 422 and bad.json()["detail"].startswith("items[0].subject")
    big = c.post("/api/v1/checks", json=[{"subject": person_id(), "measure": "air-travel"}] * 1001)
    assert big.status_code == 413


def _no_ones(number: str) -> str:
    """``number`` with another check character that makes it no one's: with some, 18 digits
    are an organisation's valid code (one in ~36 of the factory's persons)."""
    for check in "0123456789X":
        other = number[:-1] + check
        try:
            parse_subject_ref(other)
        except IdentifierError:
            return other
    raise AssertionError(f"every check character makes {number[:-1]} someone's")


def test_a_long_manifest_is_answered_and_logged_as_its_items_one_by_one(
    runtime: Runtime, airline: str
) -> None:
    """From AT_ONCE items the people are validated together (ids.canonical_persons); the
    answers, the logged subjects and the item a refusal names are those of a short call."""
    listed = person_id()
    list_defaulter(runtime, listed, started=date.today() - timedelta(days=20), now=datetime.now(UTC))
    people = [person_id() for _ in range(AT_ONCE + 4)]
    given = [listed, "person:" + people[0], people[1].lower(), "91110000600037341L", *people[2:]]
    c = client(runtime, airline)
    long = c.post("/api/v1/checks", json=[{"subject": s, "measure": "air-travel"} for s in given])
    short = [c.post("/api/v1/checks", json=[{"subject": s, "measure": "air-travel"}]) for s in given]
    assert long.status_code == 200 and all(r.status_code == 200 for r in short)
    assert [(a["subject"], a["decision"]) for a in long.json()] == [
        (r.json()[0]["subject"], r.json()[0]["decision"]) for r in short
    ]
    assert long.json()[0]["decision"] == "denied" and long.json()[1]["subject"] == "person:" + people[0]
    with runtime.check_log_db.read() as conn:
        for subject in (listed, people[1].upper(), people[-1]):
            assert len(checks_about(conn, str(parse_subject_ref(subject)))) == 2
        assert len(checks_about(conn, "organisation:91110000600037341L")) == 2
    wrong = [*given[:-1], _no_ones(given[-1])]
    refused = c.post("/api/v1/checks", json=[{"subject": s, "measure": "air-travel"} for s in wrong])
    assert refused.status_code == 422 and refused.json()["detail"].startswith(
        f"items[{len(wrong) - 1}].subject"
    )


def test_the_subject_sees_every_check_and_the_listing_behind_a_denial(runtime: Runtime, airline: str) -> None:
    who = person_id()
    sid = list_defaulter(runtime, who, started=date.today() - timedelta(days=20), now=datetime.now(UTC))
    ref = (
        client(runtime, airline)
        .post("/api/v1/checks", json=[{"subject": who, "measure": "air-travel"}])
        .json()[0]["ref"]
    )
    with runtime.db.begin() as conn:
        mine = create_token(conn, "subject", subject_id=sid)
        other = create_token(conn, "subject", subject_id=list_defaulter(runtime, person_id()))
    me = client(runtime, mine)
    (logged,) = me.get("/api/v1/me/checks").json()
    assert (logged["party"], logged["decision"], logged["measure"]) == ("CA", "denied", "air-travel")
    assert logged["purpose"].startswith("ticket sales")
    detail = me.get(f"/api/v1/me/checks/{ref}").json()
    assert [c["list_code"] for c in detail["causes"]] == ["CN.DEFAULTER"]
    assert "appeal" in detail["causes"][0]["how_to_contest"]
    assert client(runtime, other).get(f"/api/v1/me/checks/{ref}").status_code == 404


def test_public_lookup_of_the_defaulter_list(runtime: Runtime) -> None:
    who = person_id()
    list_defaulter(runtime, who, started=date.today() - timedelta(days=20), now=datetime.now(UTC))
    c = TestClient(create_app(runtime))
    found = c.get("/api/v1/public/lists/CN.DEFAULTER", params={"subject": who}).json()
    assert found["listed"] is True and found["entries"][0]["planned_end_on"]
    assert (
        c.get("/api/v1/public/lists/CN.DEFAULTER", params={"subject": person_id()}).json()["listed"] is False
    )
    assert c.get("/api/v1/public/lists/CN.LOW-GRADE", params={"subject": who}).status_code == 404


def test_party_registration_checks_its_measures(runtime: Runtime) -> None:
    with runtime.db.begin() as conn, pytest.raises(PartyError, match="measures: unknown measure 'teleport'"):
        register_party(conn, runtime.catalogs, "X", name="X", sector="s", purpose="p", measures=["teleport"])


def _fast_path(app: FastAPI) -> ChecksFastPath:
    node = app.middleware_stack
    while not isinstance(node, ChecksFastPath):
        node = node.app  # type: ignore[union-attr]
    return node


def test_a_known_relying_party_s_calls_take_the_fast_path_and_get_the_routes_answers(
    runtime: Runtime, airline: str
) -> None:
    """POST /api/v1/checks past FastAPI (``api/fastpath.py``) answers and refuses exactly as the
    route does: the same statuses, headers, bodies, check-log calls and access-log rows."""
    listed, clean = person_id(), person_id()
    list_defaulter(runtime, listed, started=date.today() - timedelta(days=20), now=datetime.now(UTC))
    calls: list[Any] = [
        [{"subject": listed, "measure": "air-travel"}, {"subject": clean, "measure": "high-speed-rail"}],
        [],
        b"[{",
        b'{"subject": 1}',
        [{"subject": "123", "measure": "air-travel"}],
        [{"subject": clean}],
        [{"subject": clean, "measure": "air-travel"}, {"subject": clean, "measure": "state-bank-loan"}],
        [{"subject": clean, "measure": "air-travel"}] * 1001,
    ]
    seen = {}
    for seconds in (0.0, 60.0):  # 0: every call authenticates through the route
        app = create_app(
            Runtime(runtime.settings.replace(token_cache_seconds=seconds), runtime.db, runtime.catalogs)
        )
        c = TestClient(app, headers={"Authorization": f"Bearer {airline}"})
        assert c.post("/api/v1/checks", json=[]).status_code == 200  # the token's first call: the route
        app.state.access_writer.queue.queue.clear()
        answers = []
        for call in calls:
            res = c.post(
                "/api/v1/checks", **({"content": call} if isinstance(call, bytes) else {"json": call})
            )
            answers.append(
                (
                    res.status_code,
                    sorted((k, v) for k, v in res.headers.items() if k != "x-request-id"),
                    [{**a, "ref": "-".join(["R", a["ref"].rsplit("-")[1]])} for a in res.json()]
                    if res.status_code == 200
                    else res.json(),
                )
            )
        rows = [
            {k: v for k, v in row.items() if k not in ("at", "request_id")}
            for row in app.state.access_writer.queue.queue
        ]
        seen[seconds] = (answers, rows, _fast_path(app).served)
    assert seen[0.0][2] == 0 and seen[60.0][2] == len(calls)
    assert seen[60.0][:2] == seen[0.0][:2]
    assert [a[0] for a in seen[0.0][0]] == [200, 200, 400, 422, 422, 422, 403, 413]
    assert seen[0.0][0][0][2][0]["decision"] == "denied" and seen[0.0][1][0]["purpose"].startswith("ticket")
    with runtime.db.read() as conn:
        assert len(checks_about(conn, str(parse_subject_ref(listed)))) == 2  # logged on both paths


def test_the_fast_path_leaves_other_callers_and_query_strings_to_the_route(
    runtime: Runtime, airline: str
) -> None:
    app = create_app(runtime)
    c = TestClient(app, headers={"Authorization": f"Bearer {airline}"})
    item = [{"subject": person_id(), "measure": "air-travel"}]
    assert c.post("/api/v1/checks", json=item).status_code == 200
    res = c.post("/api/v1/checks", params={"x": "1"}, json=item)
    assert res.status_code == 422 and res.json()["detail"].startswith("query.x: unknown parameter")
    with runtime.db.begin() as conn:
        agency = create_token(conn, "agency", agency="CN-ZJ-HZ-TP")
    for token in (agency, agency, "nope"):
        res = c.post("/api/v1/checks", json=item, headers={"Authorization": f"Bearer {token}"})
        assert res.status_code == (401 if token == "nope" else 403)
    assert _fast_path(app).served == 0
    assert c.post("/api/v1/checks", json=item).status_code == 200
    assert _fast_path(app).served == 1
