"""Helpers for the web tests: a registry with a story in it, for TestClient and a real browser.

The story: a person is on the court defaulter list (a judgment twenty days
ago), an airline's check about them was denied; an organisation is a listed
defaulter too, under a registered name; a Hangzhou traffic record and a
Zhejiang reward give the dashboard something to count.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from factories import RecordFactory, org_id, person_id
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from credo.access.services import create_token
from credo.api.app import create_app
from credo.lists.services import register_party
from credo.process.intake import ingest_and_notify
from credo.runtime import Runtime
from credo.settings import PROJECT_ROOT
from credo.store.tables import organisation_names, subjects
from credo.web import install

SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ORG_NAME = "杭州示例贸易有限公司 Hangzhou Example Trading Co."


def web_app(runtime: Runtime) -> FastAPI:
    """The API app with the pages (mounted by create_app once it includes them)."""
    app = create_app(runtime)
    if not any(getattr(route, "path", None) == "/login" for route in app.routes):
        install(app)
    return app


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


@dataclass
class Story:
    person: str
    person_id: int
    other: str
    other_id: int
    organisation: str
    tokens: dict[str, str]


def _ingest(runtime: Runtime, agency: str, items: list[dict[str, Any]], now: datetime) -> list[int]:
    with runtime.db.begin() as conn:
        result = ingest_and_notify(conn, runtime.catalogs, runtime.log, agency, items, source="test", now=now)
    seqs = [o.seq for o in result.outcomes]
    assert all(s is not None for s in seqs), result.outcomes
    return [int(s) for s in seqs if s is not None]


def _subject_id(runtime: Runtime, identifier: str) -> int:
    with runtime.db.read() as conn:
        return int(
            conn.execute(select(subjects.c.id).where(subjects.c.identifier == identifier)).scalar_one()
        )


def tell_story(runtime: Runtime, n: int = 0) -> Story:
    """Fill the registry through the services, as agencies and the lists job would."""
    now = datetime.now(UTC)
    judged = (now.astimezone(runtime.zone) - timedelta(days=20)).date().isoformat()
    person, other, organisation = person_id(900 + n), person_id(950 + n), org_id(700 + n)
    tag = f"{n}-{now.timestamp():.0f}"
    _ingest(
        runtime,
        "CN-SPC",
        [
            RecordFactory(
                court_defaulter=True, subject=person, occurred_on=judged, agency_ref=f"spc-a-{tag}"
            ),
            RecordFactory(court_defaulter=True, subject=other, occurred_on=judged, agency_ref=f"spc-b-{tag}"),
            RecordFactory(
                court_defaulter=True, subject=organisation, occurred_on=judged, agency_ref=f"spc-c-{tag}"
            ),
        ],
        now,
    )
    _ingest(
        runtime,
        "CN-ZJ-HZ-TP",
        [RecordFactory(subject=person, occurred_on=judged, agency_ref=f"tp-a-{tag}")],
        now,
    )
    pid, oid, org = (_subject_id(runtime, x) for x in (person, other, organisation))
    with runtime.db.begin() as conn:
        conn.execute(
            insert(organisation_names).values(subject_id=org, agency="CN-SPC", name=ORG_NAME, recorded_at=now)
        )
        party = f"CA{n}"
        register_party(
            conn,
            runtime.catalogs,
            party,
            name="Air China",
            sector="aviation",
            purpose="ticket sales under the joint punishment memorandum",
            measures=["air-travel", "high-speed-rail"],
        )
        tokens = {
            "person": create_token(conn, "subject", subject_id=pid, label="Li Lei"),
            "other": create_token(conn, "subject", subject_id=oid, label="Han Meimei"),
            "party": create_token(conn, "relying_party", relying_party=party),
            "agency": create_token(
                conn, "agency", agency="CN-ZJ-HZ-TP", label="Hangzhou traffic police clerk"
            ),
            "spc": create_token(conn, "agency", agency="CN-SPC", label="court clerk"),
            "reviewer": create_token(conn, "reviewer", jurisdiction="CN", label="Reviewer Wang"),
            "auditor": create_token(conn, "auditor", label="Auditor Zhao"),
        }
    return Story(person, pid, other, oid, organisation, tokens)


def sign_in(client: TestClient, token: str) -> str:
    """Sign in with a token; returns the page the sign-in leads to."""
    page = client.get("/login")
    res = client.post("/login", data={"token": token, "csrf": csrf_of(page.text), "next": ""})
    assert res.status_code == 303, res.text
    return str(res.headers["location"])


def ask(client: TestClient, token: str, subject: str, measure: str = "air-travel") -> dict[str, Any]:
    res = client.post(
        "/api/v1/checks",
        json=[{"subject": subject, "measure": measure}],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert res.status_code == 200, res.text
    answer: dict[str, Any] = res.json()[0]
    return answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    story: Story
    root: Path


def shot(page: Any, name: str) -> None:
    """Save a full-page screenshot for review under test-output/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
