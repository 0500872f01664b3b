"""A small running registry for fuzzing: a fresh SQLite file, seeded, with a token per role.

Not the rolled-back test connection of ``tests/conftest.py``: the app runs as
``credo serve`` runs it (its own engine, background access-log writer and
check-index keeper), so what the fuzzer finds is what a deployment would do.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import RecordFactory, person_id
from sqlalchemy import text

from credo.access.services import create_token
from credo.catalog.registry import Registry
from credo.ids import parse_subject_ref
from credo.ledger.subjects import subject_number
from credo.lists.services import register_party
from credo.process import appeals as appeal_service
from credo.process.intake import ingest_and_notify
from credo.runtime import Runtime, bootstrap, open_database
from credo.settings import load_settings
from credo.store.db import Database, make_engine

POSTGRES_URL = os.environ.get("CREDO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class DeferredApp:
    """An ASGI app that forwards to one set later: the schema is loaded at import, the app by a fixture.

    It answers lifespan events itself: the fixture runs the app's own lifespan once for the
    module, as a server worker runs it once. Schemathesis would run it once per test, start-up
    and shutdown each time, and a start-up's full collection of the test process (the
    worker's ``freeze_startup_objects``) was a third of the fuzz tests' time.
    """

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":  # only start-up comes before it
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.target is not None, "the app fixture has not run"
        await self.target(scope, receive, send)


#: Every role the API knows, and "anonymous" (no Authorization header).
ROLES = ("anonymous", "subject", "agency", "relying_party", "reviewer", "auditor", "admin")


@dataclass
class Seeded:
    runtime: Runtime
    tokens: dict[str, str]  # role -> bearer token (no entry for anonymous)
    subject: str  # the seeded subject's identifier
    record_seqs: list[int]

    def headers(self, role: str) -> dict[str, str]:
        token = self.tokens.get(role)
        return {} if token is None else {"Authorization": f"Bearer {token}"}


def seeded_registry(
    folder: Path, catalogs: Registry, database_url: str | None = None, **settings: object
) -> Seeded:
    """Migrate a new registry (default: SQLite in ``folder``) and give it a little of everything."""
    values = {
        "database_url": database_url or f"sqlite:///{folder / 'fuzz.db'}",
        "signing_key_path": folder / "keys" / "log.key",
        "scheduler_interval": 0,
        "log_requests": 0,
        **settings,
    }
    config = load_settings({}).replace(**values)
    runtime = Runtime(config, open_database(config), catalogs)
    bootstrap(runtime)
    who = person_id()
    now = datetime.now(UTC)
    today = now.astimezone(runtime.zone).date()
    with runtime.db.begin() as conn:
        judgment = ingest_and_notify(
            conn,
            catalogs,
            runtime.log,
            "CN-SPC",
            [RecordFactory(court_defaulter=True, subject=who, occurred_on=str(today - timedelta(days=3)))],
            source="fuzz-seed",
            now=now,
        )
        tickets = ingest_and_notify(
            conn,
            catalogs,
            runtime.log,
            "CN-ZJ-HZ-TP",
            [RecordFactory(subject=who, occurred_on=str(today - timedelta(days=d))) for d in (2, 5)]
            + [RecordFactory(organisation=True, occurred_on=str(today - timedelta(days=4)))],
            source="fuzz-seed",
            now=now,
        )
        seqs = [o.seq for o in (*judgment.outcomes, *tickets.outcomes) if o.seq is not None]
        sid = subject_number(conn, parse_subject_ref(who))
        assert sid is not None
        appeal_service.file_appeal(conn, catalogs, sid, grounds="not me", now=now, record_seq=seqs[1])
        register_party(
            conn,
            catalogs,
            "CA",
            name="Air China",
            sector="aviation",
            purpose="ticket sales under the joint punishment memorandum",
            measures=["air-travel", "high-speed-rail"],
        )
        tokens = {
            "subject": create_token(conn, "subject", subject_id=sid),
            "agency": create_token(conn, "agency", agency="CN-ZJ-HZ-TP"),
            "relying_party": create_token(conn, "relying_party", relying_party="CA"),
            "reviewer": create_token(conn, "reviewer", jurisdiction="CN", label="reviewer Wang"),
            "auditor": create_token(conn, "auditor", label="inspector"),
            "admin": create_token(conn, "admin", label="operator"),
        }
    return Seeded(runtime, tokens, who, seqs)


@contextmanager
def fresh_database(request: pytest.FixtureRequest, kind: str) -> Iterator[str | None]:
    """The URL of a new, empty database of ``kind`` (None: SQLite in the caller's folder)."""
    if kind == "sqlite":
        yield None
        return
    request.getfixturevalue("postgresql_engine")  # skips, or fails under CI=true, when unreachable
    schema = f"credo_fuzz_{secrets.token_hex(4)}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def openapi_document() -> dict[str, object]:
    """The API's OpenAPI document, built without a database (it depends only on the code)."""
    from credo.api.app import create_app
    from credo.catalog.registry import load_catalogs
    from credo.settings import PROJECT_ROOT

    catalogs, errors = load_catalogs([PROJECT_ROOT / "catalogs"])
    assert catalogs is not None, errors
    runtime = Runtime(load_settings({}), Database.from_url("sqlite://"), catalogs)
    return create_app(runtime).openapi()
