"""One generated test per cell of the authorization matrix (tests/api/authz_matrix.py).

The world: two subjects (A is "own" for a subject token, B is "other"),
a Yiwu agency and a court, an airline registered for air travel, a
reviewer of Zhejiang, an auditor and an admin. Every write a cell makes
targets an object made for that cell, so cells never depend on each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from authz_matrix import MATRIX, ROLES, expected, ownerships
from factories import RecordFactory, org_id, person_id
from fastapi.testclient import TestClient

from credo.access.services import create_token
from credo.api.app import create_app
from credo.ids import parse_subject_ref
from credo.ledger.subjects import subject_number
from credo.lists.services import register_party
from credo.process import appeals, rectification
from credo.process.intake import ingest_and_notify
from credo.runtime import Runtime, bootstrap
from credo.settings import load_settings

_orgs = itertools.count(500)


@dataclass
class World:
    runtime: Runtime
    client: TestClient
    tokens: dict[str, str]
    a: str
    b: str

    def yiwu_record(self, who: str) -> int:
        now = datetime.now(UTC)
        with self.runtime.db.begin() as conn:
            result = ingest_and_notify(
                conn,
                self.runtime.catalogs,
                self.runtime.log,
                "CN-ZJ-YW-AMR",
                [
                    RecordFactory(
                        subject=who,
                        rule="CN-ZJ-YW.COUNTERFEIT-TRADEMARK",
                        occurred_on=(date.today() - timedelta(days=3)).isoformat(),
                    )
                ],
                source="authz",
                now=now,
            )
        seq = result.outcomes[0].seq
        assert seq is not None
        return seq

    def rongcheng_record(self, who: str) -> int:
        with self.runtime.db.begin() as conn:
            result = ingest_and_notify(
                conn,
                self.runtime.catalogs,
                self.runtime.log,
                "CN-SD-RC-CREDIT",
                [
                    RecordFactory(
                        subject=who,
                        rule="CN-SD-RC.CONTRACT-BREACH",
                        occurred_on=(date.today() - timedelta(days=3)).isoformat(),
                    )
                ],
                source="authz",
                now=datetime.now(UTC),
            )
        seq = result.outcomes[0].seq
        assert seq is not None
        return seq

    def number(self, who: str) -> int:
        with self.runtime.db.read() as conn:
            n = subject_number(conn, parse_subject_ref(who))
        assert n is not None
        return n

    def appeal(self, seq: int, who: str) -> int:
        with self.runtime.db.begin() as conn:
            return appeals.file_appeal(
                conn,
                self.runtime.catalogs,
                self.number(who),
                record_seq=seq,
                grounds="authz",
                now=datetime.now(UTC),
            )

    def rectification(self, seq: int, who: str) -> int:
        with self.runtime.db.begin() as conn:
            return rectification.request(
                conn,
                self.runtime.catalogs,
                self.number(who),
                seq,
                act="fine-paid",
                evidence="receipt",
                now=datetime.now(UTC),
            )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("authz")
    settings = load_settings(
        {
            "CREDO_DATABASE_URL": f"sqlite:///{tmp / 'authz.db'}",
            "CREDO_SIGNING_KEY_PATH": str(tmp / "key"),
            "CREDO_SCHEDULER_INTERVAL": "0",
            "CREDO_LOG_REQUESTS": "0",
        }
    )
    runtime = Runtime.open(settings)
    bootstrap(runtime)
    a, b = org_id(next(_orgs)), org_id(next(_orgs))
    w = World(runtime, TestClient(create_app(runtime)), {}, a, b)
    w.yiwu_record(a)
    w.yiwu_record(b)
    with runtime.db.begin() as conn:
        register_party(
            conn,
            runtime.catalogs,
            "CA",
            name="Air China",
            sector="aviation",
            purpose="tickets",
            measures=["air-travel"],
        )
        w.tokens = {
            "subject": create_token(conn, "subject", subject_id=subject_number(conn, parse_subject_ref(a))),
            "agency": create_token(conn, "agency", agency="CN-ZJ-YW-AMR"),
            "relying_party": create_token(conn, "relying_party", relying_party="CA"),
            "reviewer": create_token(conn, "reviewer", jurisdiction="CN-ZJ", label="reviewer Zhou"),
            "reviewer-of-agency": create_token(conn, "reviewer", jurisdiction="CN-ZJ", agency="CN-ZJ-YW-AMR"),
            "auditor": create_token(conn, "auditor"),
            "admin": create_token(conn, "admin"),
        }
    # A check about A, so "own" has a ref to read.
    w.client.post(
        "/api/v1/checks",
        json=[{"subject": a, "measure": "air-travel"}],
        headers={"Authorization": f"Bearer {w.tokens['relying_party']}"},
    )
    yield w
    runtime.db.dispose()


Request = tuple[str, Any]  # (url, json body or None)


def _check_ref(w: World, who: str) -> str:
    party = {"Authorization": f"Bearer {w.tokens['relying_party']}"}
    return str(
        w.client.post(
            "/api/v1/checks", json=[{"subject": who, "measure": "air-travel"}], headers=party
        ).json()[0]["ref"]
    )


def _appeal_for(w: World, ownership: str) -> int:
    if ownership == "other":  # a Rongcheng record: outside a Zhejiang reviewer's jurisdiction
        who = org_id(next(_orgs))
        return w.appeal(w.rongcheng_record(who), who)
    who = org_id(next(_orgs))
    return w.appeal(w.yiwu_record(who), who)


def _rectification_for(w: World, role: str, ownership: str) -> int:
    who = org_id(next(_orgs))
    seq = w.rongcheng_record(who) if ownership == "other" else w.yiwu_record(who)
    return w.rectification(seq, who)


BUILDERS: dict[tuple[str, str], Callable[[World, str, str], Request]] = {
    ("GET", "/healthz"): lambda w, r, o: ("/healthz", None),
    ("GET", "/livez"): lambda w, r, o: ("/livez", None),
    ("GET", "/api/v1/public/lists/{code}"): lambda w, r, o: (
        f"/api/v1/public/lists/CN.DEFAULTER?subject={w.a}",
        None,
    ),
    ("GET", "/api/v1/audit/key"): lambda w, r, o: ("/api/v1/audit/key", None),
    ("GET", "/api/v1/audit/tree-head"): lambda w, r, o: ("/api/v1/audit/tree-head", None),
    ("GET", "/api/v1/audit/proof/{seq}"): lambda w, r, o: ("/api/v1/audit/proof/1", None),
    ("GET", "/api/v1/audit/consistency"): lambda w, r, o: ("/api/v1/audit/consistency?from=1&to=2", None),
    ("GET", "/api/v1/audit/access"): lambda w, r, o: ("/api/v1/audit/access", None),
    ("POST", "/api/v1/records"): lambda w, r, o: (
        "/api/v1/records",
        [
            RecordFactory(
                subject=person_id(),
                rule="CN-ZJ-YW.COUNTERFEIT-TRADEMARK" if o == "own" else "CN.TAX-EVASION",
                occurred_on="2026-01-05",
            )
        ],
    ),
    ("GET", "/api/v1/quarantine"): lambda w, r, o: ("/api/v1/quarantine", None),
    ("GET", "/api/v1/agency/decisions"): lambda w, r, o: ("/api/v1/agency/decisions", None),
    ("POST", "/api/v1/checks"): lambda w, r, o: (
        "/api/v1/checks",
        [{"subject": w.a, "measure": "air-travel" if o == "own" else "state-bank-loan"}],
    ),
    ("GET", "/api/v1/me/checks"): lambda w, r, o: ("/api/v1/me/checks", None),
    ("GET", "/api/v1/me/checks/{ref}"): lambda w, r, o: (
        f"/api/v1/me/checks/{_check_ref(w, w.a if o == 'own' else w.b)}",
        None,
    ),
    ("GET", "/api/v1/me/listings"): lambda w, r, o: ("/api/v1/me/listings", None),
    ("GET", "/api/v1/me/file"): lambda w, r, o: ("/api/v1/me/file", None),
    ("GET", "/api/v1/me/export"): lambda w, r, o: ("/api/v1/me/export", None),
    ("GET", "/api/v1/me/score"): lambda w, r, o: ("/api/v1/me/score", None),
    ("GET", "/api/v1/me/notices"): lambda w, r, o: ("/api/v1/me/notices", None),
    ("GET", "/api/v1/me/appeals"): lambda w, r, o: ("/api/v1/me/appeals", None),
    ("POST", "/api/v1/me/appeals"): lambda w, r, o: (
        "/api/v1/me/appeals",
        {"record_seq": w.yiwu_record(w.a if o == "own" else w.b), "grounds": "not mine"},
    ),
    ("GET", "/api/v1/me/rectifications"): lambda w, r, o: ("/api/v1/me/rectifications", None),
    ("POST", "/api/v1/me/rectifications"): lambda w, r, o: (
        "/api/v1/me/rectifications",
        {"record_seq": w.yiwu_record(w.a if o == "own" else w.b), "act": "fine-paid", "evidence": "receipt"},
    ),
    ("GET", "/api/v1/review/queue"): lambda w, r, o: ("/api/v1/review/queue", None),
    ("POST", "/api/v1/review/appeals/{appeal_id}/decision"): lambda w, r, o: (
        f"/api/v1/review/appeals/{_appeal_for(w, o)}/decision",
        {"outcome": "upheld", "reasons": "checked"},
    ),
    ("POST", "/api/v1/rectifications/{request_id}/decision"): lambda w, r, o: (
        f"/api/v1/rectifications/{_rectification_for(w, r, o)}/decision",
        {"approve": False, "reasons": "no"},
    ),
    ("GET", "/api/v1/stats"): lambda w, r, o: ("/api/v1/stats", None),
    ("GET", "/api/v1/subjects/{subject}/score"): lambda w, r, o: (
        f"/api/v1/subjects/{w.a if o == 'own' else w.b}/score",
        None,
    ),
}


def _token(w: World, role: str, ownership: str) -> str | None:
    if role == "anonymous":
        return None
    if role == "reviewer" and ownership == "own-agency":
        return w.tokens["reviewer-of-agency"]
    return w.tokens[role]


CELLS = [
    pytest.param(op, role, own, id=f"{op[0]} {op[1]} {role} {own}")
    for op in MATRIX
    for role in ROLES
    for own in ownerships(op)
]


@pytest.mark.parametrize(("op", "role", "ownership"), CELLS)
def test_cell(world: World, op: tuple[str, str], role: str, ownership: str) -> None:
    url, body = BUILDERS[op](world, role, ownership)
    token = _token(world, role, ownership)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = world.client.request(op[0], url, json=body, headers=headers)
    want = expected(op, role, ownership)
    assert response.status_code == want, (
        f"{op} as {role}/{ownership}: {response.status_code} {response.text[:300]}"
    )
    if want >= 400:
        assert response.headers["content-type"] == "application/problem+json"


def test_every_operation_in_the_openapi_document_has_a_row(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    served = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    missing = served - set(MATRIX)
    assert not missing, f"operations without a row in tests/api/authz_matrix.py: {sorted(missing)}"
    stale = set(MATRIX) - served
    assert not stale, f"rows for operations the API does not serve: {sorted(stale)}"
    assert set(BUILDERS) == set(MATRIX)


def test_a_relying_partys_answer_has_exactly_the_documented_keys(world: World) -> None:
    answer = world.client.post(
        "/api/v1/checks",
        json=[{"subject": world.a, "measure": "air-travel"}],
        headers={"Authorization": f"Bearer {world.tokens['relying_party']}"},
    ).json()
    assert [set(item) for item in answer] == [{"subject", "measure", "decision", "ref"}]


def test_an_auditor_can_write_nothing(world: World) -> None:
    writes = [op for op in MATRIX if op[0] in ("POST", "PUT", "PATCH", "DELETE")]
    for op in writes:
        for ownership in ownerships(op):
            assert expected(op, "auditor", ownership) in (401, 403), op
