"""GET /api/v1/subjects/{id}/score: own score for a subject, any score for auditors and reviewers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from ledgers import LedgerBuilder, person_for

from credo.access.services import create_token
from credo.api.app import create_app
from credo.api.deps import plain_parameters
from credo.api.routers import scores
from credo.runtime import Runtime

PATH = "/api/v1/subjects/{}/score"


@pytest.fixture
def api(runtime: Runtime) -> Iterator[tuple[TestClient, dict[str, str], LedgerBuilder]]:
    b = LedgerBuilder()
    b.incident("a1", "CN-SD-RC.CONTRACT-BREACH", "2024-03-01", subject="alice")
    b.incident("b1", "CN-SD-RC.SUED-IN-BREACH", "2024-03-01", subject="bob")
    with runtime.db.begin() as conn:
        b.write(conn, runtime.catalogs)
        tokens = {
            "alice": create_token(conn, "subject", subject_id=b.subjects["alice"]),
            "auditor": create_token(conn, "auditor"),
            "reviewer": create_token(conn, "reviewer", jurisdiction="CN-SD"),
            "agency": create_token(conn, "agency", agency="CN-SPC"),
        }
    app = create_app(runtime)
    if not any(getattr(r, "path", "") == "/api/v1/subjects/{subject}/score" for r in app.routes):
        app.include_router(scores.router, dependencies=[Depends(plain_parameters)])  # until registered
    with TestClient(app) as client:
        yield client, tokens, b


def get(client: TestClient, token: str | None, who: str, **params: str) -> object:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(PATH.format(who), params=params, headers=headers)


Api = tuple[TestClient, dict[str, str], LedgerBuilder]


def test_a_subject_reads_its_own_score_as_of_a_date(api: Api) -> None:
    client, tokens, b = api
    alice = person_for(b.subjects["alice"])
    res = client.get(PATH.format(f"person:{alice}"), params={"scheme": "CN-SD-RC", "as_of": "2024-06-01"},
                     headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert res.status_code == 200, res.text
    (report,) = res.json()
    assert (report["scheme"], report["score"], report["grade"]) == ("CN-SD-RC", 980, "A")
    assert report["records"][0]["reason"] == "counted"
    assert report["policy"]["base_score"] == 1000


def test_another_subjects_score_is_not_found_not_forbidden(api: Api) -> None:
    client, tokens, b = api
    bob = person_for(b.subjects["bob"])
    res = client.get(PATH.format(bob), headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert res.status_code == 404
    assert res.headers["content-type"] == "application/problem+json"
    as_alice = {"Authorization": f"Bearer {tokens['alice']}"}
    nobody = client.get(PATH.format("11010519491231002X"), headers=as_alice)
    assert nobody.status_code == 404 and nobody.json()["detail"] == res.json()["detail"].replace(
        bob, "11010519491231002X")


@pytest.mark.parametrize("role", ["auditor", "reviewer"])
def test_auditors_and_reviewers_read_anyones_score(api: Api, role: str) -> None:
    client, tokens, b = api
    bob = person_for(b.subjects["bob"])
    res = client.get(PATH.format(bob), params={"as_of": "2024-06-01"},
                     headers={"Authorization": f"Bearer {tokens[role]}"})
    assert res.status_code == 200
    assert [(r["scheme"], r["score"], r["grade"]) for r in res.json()] == [("CN-SD-RC", 950, "B")]


def test_other_roles_are_refused_and_bad_input_is_named(api: Api) -> None:
    client, tokens, b = api
    alice = person_for(b.subjects["alice"])
    auth = {"Authorization": f"Bearer {tokens['auditor']}"}
    as_agency = {"Authorization": f"Bearer {tokens['agency']}"}
    assert client.get(PATH.format(alice), headers=as_agency).status_code == 403
    assert client.get(PATH.format(alice)).status_code == 401
    bad = client.get(PATH.format("110105194912310021"), headers=auth)
    assert bad.status_code == 422 and "check character" in bad.json()["detail"]
    assert client.get(PATH.format(alice), params={"scheme": "XX"}, headers=auth).status_code == 422
    late = client.get(PATH.format(alice), params={"known_at": "yesterday"}, headers=auth)
    assert late.status_code == 422 and late.json()["detail"].startswith("known_at")


def test_known_at_reproduces_what_was_known(api: Api) -> None:
    client, tokens, b = api
    alice = person_for(b.subjects["alice"])
    auth = {"Authorization": f"Bearer {tokens['auditor']}"}
    recorded = b.records[0]["recorded_at"]
    before = datetime.fromtimestamp(recorded.timestamp() - 1, UTC).isoformat()
    earlier = client.get(PATH.format(alice), params={"scheme": "CN-SD-RC", "as_of": "2024-06-01",
                                                     "known_at": before}, headers=auth).json()
    assert (earlier[0]["score"], earlier[0]["scored"], earlier[0]["records"]) == (1000, False, [])
