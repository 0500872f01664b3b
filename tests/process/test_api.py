"""The subject's and the reviewer's API: file, score, notices, appeals, export, statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from factories import RecordFactory, person_id
from fastapi.testclient import TestClient

from credo.access.services import create_token
from credo.api.app import create_app
from credo.ids import parse_subject_ref
from credo.ledger.subjects import subject_number
from credo.process.intake import ingest_and_notify
from credo.runtime import Runtime


def setup(runtime: Runtime) -> tuple[TestClient, dict[str, str], int]:
    """A subject with a court judgment (listed) and a Hangzhou ticket, and tokens for everyone."""
    who = person_id()
    now = datetime.now(UTC)
    today = now.date()
    with runtime.db.begin() as conn:
        ingest_and_notify(
            conn,
            runtime.catalogs,
            runtime.log,
            "CN-SPC",
            [
                RecordFactory(
                    court_defaulter=True, subject=who, occurred_on=(today - timedelta(days=3)).isoformat()
                )
            ],
            source="test",
            now=now,
        )
        ingest_and_notify(
            conn,
            runtime.catalogs,
            runtime.log,
            "CN-ZJ-HZ-TP",
            [RecordFactory(subject=who, occurred_on=(today - timedelta(days=2)).isoformat())],
            source="test",
            now=now,
        )
        sid = subject_number(conn, parse_subject_ref(who))
        assert sid is not None
        tokens = {
            "me": create_token(conn, "subject", subject_id=sid),
            "other": create_token(
                conn, "subject", subject_id=subject_number(conn, parse_subject_ref(person_id()), create=True)
            ),
            "reviewer": create_token(conn, "reviewer", jurisdiction="CN", label="reviewer Wang"),
            "court_reviewer": create_token(conn, "reviewer", jurisdiction="CN", agency="CN-SPC"),
            "auditor": create_token(conn, "auditor"),
            "agency": create_token(conn, "agency", agency="CN-SPC"),
        }
    return TestClient(create_app(runtime)), tokens, sid


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_my_file_score_notices_and_export(runtime: Runtime) -> None:
    client, tokens, _ = setup(runtime)
    me = auth(tokens["me"])
    file = client.get("/api/v1/me/file", headers=me).json()
    assert len(file["records"]) == 2 and len(file["listings"]) == 1
    scores = client.get("/api/v1/me/score", headers=me).json()
    assert {s["scheme"] for s in scores} == {"CN-ZJ-HZ"}
    assert {r["status"] for r in scores[0]["records"]} == {"counted"}
    texts = [n["text"] for n in client.get("/api/v1/me/notices", params={"lang": "zh"}, headers=me).json()]
    assert any("申诉截止日期" in t for t in texts) and any("名单" in t for t in texts)
    pdf = client.get("/api/v1/me/export", params={"format": "pdf"}, headers=me)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert client.get("/api/v1/me/export", headers=me).json()["subject"] == file["subject"]
    assert client.get("/api/v1/me/file", headers=auth(tokens["agency"])).status_code == 403


def test_appeal_through_the_api_and_an_overturn_delists(runtime: Runtime) -> None:
    client, tokens, _ = setup(runtime)
    me = auth(tokens["me"])
    (listing,) = client.get("/api/v1/me/listings", headers=me).json()
    filed = client.post(
        "/api/v1/me/appeals", headers=me, json={"listing_id": listing["id"], "grounds": "I paid"}
    )
    assert filed.status_code == 201, filed.text
    assert (
        client.post(
            "/api/v1/me/appeals", headers=me, json={"listing_id": listing["id"], "grounds": "again"}
        ).status_code
        == 409
    )
    file = client.get("/api/v1/me/file", headers=me).json()
    assert [r["contested"] for r in file["records"]] == [True, False]
    other = auth(tokens["other"])
    assert (
        client.post(
            "/api/v1/me/appeals", headers=other, json={"record_seq": listing["cause_seq"], "grounds": "x"}
        ).status_code
        == 404
    )
    (queued,) = client.get("/api/v1/review/queue", headers=auth(tokens["reviewer"])).json()
    path = f"/api/v1/review/appeals/{queued['appeal']}/decision"
    own = client.post(
        path, headers=auth(tokens["court_reviewer"]), json={"outcome": "overturned", "reasons": "r"}
    )
    assert own.status_code == 403
    done = client.post(
        path, headers=auth(tokens["reviewer"]), json={"outcome": "overturned", "reasons": "the debt was paid"}
    )
    assert done.status_code == 200, done.text
    (ended,) = client.get("/api/v1/me/listings", headers=me).json()
    assert ended["ended_on"] is not None
    told = client.get("/api/v1/agency/decisions", headers=auth(tokens["agency"])).json()
    assert told[0]["outcome"] == "overturned"


def test_statistics_for_auditors(runtime: Runtime) -> None:
    client, tokens, _ = setup(runtime)
    stats = client.get("/api/v1/stats", headers=auth(tokens["auditor"])).json()
    categories = {row["category"] for row in stats["records_by_category"]}
    assert {"court", "traffic"} <= categories
    assert stats["listings_over_time"][0]["listed"] == 1
    assert client.get("/api/v1/stats", headers=auth(tokens["me"])).status_code == 403
