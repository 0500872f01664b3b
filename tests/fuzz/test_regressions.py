"""What the API fuzzer found, each pinned by a plain test (SQLite and PostgreSQL).

- a 405 named only the methods of the first route on its path (``Allow: GET``
  for a path that also takes POST), and dropped ``Allow`` altogether;
- an integer beyond 64 bits in a query, a path or a record's ``target_seq``
  was a 500 (the driver's overflow; orjson's 64-bit limit);
- on PostgreSQL, a NUL character in a record, an appeal or a path was a 500,
  and a request for a path holding one lost its batch of access records;
- error answers the OpenAPI document did not mention (401, 403, 413, 429,
  503, a malformed body's 400), and FastAPI's validation error schema
  documented for what is really a problem+json body;
- an unknown query parameter (a typo: ``?limt=5``) was silently ignored;
- a rectification decision took ``"approve": 0`` (or ``"yes"``) for a boolean.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from factories import RecordFactory, person_id
from fastapi.testclient import TestClient
from sqlalchemy import select

from credo.access.services import create_token
from credo.api.app import create_app
from credo.api.guard import AccessWriter
from credo.ids import parse_subject_ref
from credo.ledger.subjects import subject_number
from credo.process.intake import ingest_and_notify
from credo.runtime import Runtime
from credo.store.tables import access_log

BIG = 18446744073709551616  # 2**64


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(runtime: Runtime) -> dict[str, str]:
    who = person_id()
    with runtime.db.begin() as conn:
        ingest_and_notify(
            conn,
            runtime.catalogs,
            runtime.log,
            "CN-ZJ-HZ-TP",
            [RecordFactory(subject=who, occurred_on=str(datetime.now(UTC).date()))],
            source="test",
        )
        sid = subject_number(conn, parse_subject_ref(who))
        return {
            "subject": create_token(conn, "subject", subject_id=sid),
            "agency": create_token(conn, "agency", agency="CN-ZJ-HZ-TP"),
            "auditor": create_token(conn, "auditor"),
            "reviewer": create_token(conn, "reviewer", jurisdiction="CN"),
        }


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime))


def is_problem(res: object, status: int) -> bool:
    return (
        res.status_code == status  # type: ignore[attr-defined]
        and res.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
        and res.json()["status"] == status  # type: ignore[attr-defined]
    )


def test_a_405_names_every_method_of_the_path(client: TestClient) -> None:
    res = client.options("/api/v1/me/appeals")
    assert is_problem(res, 405)
    assert res.headers["allow"] == "GET, POST"
    assert client.delete("/healthz").headers["allow"] == "GET"


def test_integers_beyond_64_bits_are_422_not_500(client: TestClient, tokens: dict[str, str]) -> None:
    auditor, subject = bearer(tokens["auditor"]), bearer(tokens["subject"])
    assert is_problem(client.get(f"/api/v1/audit/consistency?from=1&to={BIG}", headers=auditor), 422)
    assert is_problem(client.get(f"/api/v1/audit/proof/{BIG}", headers=auditor), 422)
    assert is_problem(client.get(f"/api/v1/audit/access?after_id={BIG}", headers=auditor), 422)
    decision = {"outcome": "upheld", "reasons": "r"}
    res = client.post(
        f"/api/v1/review/appeals/{BIG}/decision", json=decision, headers=bearer(tokens["reviewer"])
    )
    assert is_problem(res, 422)
    assert is_problem(
        client.post("/api/v1/me/appeals", json={"record_seq": BIG, "grounds": "g"}, headers=subject), 422
    )


def test_a_target_seq_beyond_64_bits_is_a_rejected_item(client: TestClient, tokens: dict[str, str]) -> None:
    item = {"agency_ref": "R-1", "kind": "retraction", "target_seq": str(BIG), "occurred_on": "2024-06-01"}
    res = client.post("/api/v1/records", json=[item], headers=bearer(tokens["agency"]))
    assert res.status_code == 200
    (outcome,) = res.json()["items"]
    assert outcome["status"] == "rejected"
    assert outcome["reasons"] == [f"target_seq: must be a positive whole number, got '{BIG}'"]


def test_nul_characters_are_refused_naming_the_field(client: TestClient, tokens: dict[str, str]) -> None:
    agency, subject = bearer(tokens["agency"]), bearer(tokens["subject"])
    items = [RecordFactory(agency_ref="N-1\x00"), RecordFactory(evidence="a\x00b"), RecordFactory()]
    res = client.post("/api/v1/records", json=items, headers=agency)
    assert res.status_code == 200
    assert [o["status"] for o in res.json()["items"]] == ["rejected", "rejected", "accepted"]
    assert res.json()["items"][0]["reasons"] == [
        "agency_ref: contains a NUL character, which no field may hold"
    ]
    assert res.json()["items"][1]["reasons"] == [
        "evidence: contains a NUL character, which no field may hold"
    ]
    assert is_problem(client.get("/api/v1/me/checks/a%00b", headers=subject), 422)
    assert is_problem(client.get("/api/v1/me/score?scheme=%00", headers=subject), 422)
    res = client.post("/api/v1/me/appeals", json={"record_seq": 1, "grounds": "wrong\x00"}, headers=subject)
    assert is_problem(res, 422) and "body.grounds" in res.json()["detail"]


def test_a_nul_in_a_path_is_kept_in_the_access_log(client: TestClient, runtime: Runtime) -> None:
    assert is_problem(client.get("/nowhere%00"), 404)
    client.app.state.access_writer.flush()  # type: ignore[attr-defined]
    with runtime.db.read() as conn:
        operations = conn.execute(select(access_log.c.operation)).scalars().all()
    assert "GET /nowhere\\x00" in operations


def test_a_row_the_database_refuses_does_not_take_its_batch_with_it(runtime: Runtime) -> None:
    writer = AccessWriter(runtime.db)
    row = {
        "at": datetime.now(UTC),
        "request_id": "r",
        "token_id": None,
        "role": "anonymous",
        "operation": "GET /healthz",
        "subject": None,
        "purpose": None,
        "status": 200,
        "outcome": "allowed",
    }
    writer.put({**row, "request_id": "first"})
    writer.put({**row, "request_id": "bad", "status": None})  # NOT NULL: refused
    writer.put({**row, "request_id": "last"})
    assert writer.flush() == 3
    with runtime.db.read() as conn:
        kept = conn.execute(select(access_log.c.request_id)).scalars().all()
    assert kept == ["first", "last"] and writer.dropped == 1


def test_an_unknown_query_parameter_is_422_naming_it(client: TestClient, tokens: dict[str, str]) -> None:
    res = client.get("/api/v1/quarantine?limt=5", headers=bearer(tokens["agency"]))
    assert is_problem(res, 422)
    assert res.json()["detail"].startswith("query.limt: unknown parameter")
    assert client.get("/api/v1/quarantine?limit=5", headers=bearer(tokens["agency"])).status_code == 200


def test_a_body_that_is_not_utf8_is_a_400_problem(client: TestClient, tokens: dict[str, str]) -> None:
    headers = {**bearer(tokens["subject"]), "Content-Type": "application/json"}
    assert is_problem(
        client.post("/api/v1/me/appeals", content=b'{"grounds": "\xc3\x28"}', headers=headers), 400
    )


def test_the_openapi_document_names_every_problem(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert {"413", "429", "503"} <= responses.keys(), where
            for status, response in responses.items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (where, status)
            assert "Retry-After" in responses["429"]["headers"], where
            if path.startswith("/api/v1/me/") or path.startswith("/api/v1/review/"):
                assert {"401", "403"} <= responses.keys(), where
                assert operation["security"] == [{"bearer": []}], where
    assert "401" not in spec["paths"]["/api/v1/public/lists/{code}"]["get"]["responses"]


def test_a_decision_needs_a_real_boolean(client: TestClient, tokens: dict[str, str]) -> None:
    for approve in (0, "yes", "true"):
        res = client.post(
            "/api/v1/rectifications/1/decision",
            json={"approve": approve, "reasons": "r"},
            headers=bearer(tokens["reviewer"]),
        )
        assert is_problem(res, 422) and "body.approve" in res.json()["detail"], approve
