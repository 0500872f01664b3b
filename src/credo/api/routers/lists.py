"""Relying parties ask; subjects see who asked; anyone may search a public list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from credo.access.services import Principal, Role
from credo.api.deps import NO_NUL, RuntimeDep, require, shared_load
from credo.api.openapi import problems
from credo.api.problems import Problem
from credo.ids import IdentifierError, parse_subject_ref
from credo.lists.checklog import CheckLog, check_by_ref, subject_checks
from credo.lists.checks import MAX_ITEMS, CheckError, Party, answer
from credo.lists.services import listing_views, party
from credo.runtime import Runtime
from credo.store.tables import subjects

router = APIRouter(prefix="/api/v1", tags=["lists"])
PartyDep = Annotated[Principal, Depends(require(Role.RELYING_PARTY))]
SubjectDep = Annotated[Principal, Depends(require(Role.SUBJECT))]


class CheckItem(BaseModel):
    subject: str = Field(description="the subject's identifier, e.g. 11010519491231002X")
    measure: str = Field(description="a measure the relying party is registered for, e.g. air-travel")


class CheckAnswer(BaseModel):
    subject: str
    measure: str
    decision: str = Field(description="allowed | denied | granted")
    ref: str = Field(description="reference the subject can look up")


_CHECK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": CheckItem.model_json_schema(), "maxItems": MAX_ITEMS}
            }
        },
    }
}


class PartyCache:
    """Relying parties' registrations, each read from the database at most once a second
    per worker (a registration changes about as often as the index, which is as fresh)."""

    ttl = 1.0

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, Party | None]] = {}
        self.loading: dict[Hashable, asyncio.Future[Party | None]] = {}

    def get(self, code: str) -> Party | bool | None:
        """The party, None when it is not registered, False when not known in the last second."""
        entry = self.entries.get(code)
        if entry is None or time.monotonic() - entry[0] > self.ttl:
            return False
        return entry[1]

    def load(self, runtime: Runtime, code: str) -> Party | None:
        with runtime.db.read() as conn:
            found = party(conn, code)
        who = None if found is None else Party(found["code"], found["purpose"], frozenset(found["measures"]))
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[code] = (time.monotonic(), who)
        return who


@router.post("/checks", response_model=list[CheckAnswer], openapi_extra=_CHECK_BODY)
async def post_checks(request: Request, principal: PartyDep) -> Response:
    """Up to 1,000 {subject, measure} questions (a manifest); per item the decision and a ref.

    Every item is logged (the check log the subject reads) before the answer is sent.
    """
    answers = await check_answers(request.app.state, principal, await request.body(), request.scope["state"])
    return Response(answers, media_type="application/json")


async def check_answers(
    state: Any, principal: Principal, body: bytes, request_state: dict[str, Any]
) -> bytes:
    """The answers to a relying party's call (``body``, its JSON), logged before they are returned;
    ``Problem`` for a call refused. What ``POST /api/v1/checks`` does, on both of its paths
    (the FastAPI route above and ``api.fastpath.ChecksFastPath``)."""
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "Malformed JSON", f"body: {exc}") from None
    if not isinstance(items, list):
        raise Problem(422, "Invalid request", "body: must be a JSON array of {subject, measure}")
    runtime: Runtime = state.runtime
    parties: PartyCache = state.party_cache
    code = principal.relying_party or ""
    # The database is reached from the thread pool, never from the event loop: a commit waits
    # for the disk, and SQLite's writer lock for other writers; neither may stall every request.
    who = parties.get(code)
    if who is False:
        who = await shared_load(parties.loading, code, lambda: run_in_threadpool(parties.load, runtime, code))
    if not isinstance(who, Party):
        raise Problem(403, "Forbidden", "this token's relying party is not registered")
    request_state["purpose"] = who.purpose
    try:
        answers, call = answer(state.index_keeper.current(), who, items, datetime.now(UTC))
    except CheckError as exc:
        raise Problem(exc.status, "Check refused", str(exc)) from None
    log: CheckLog | None = getattr(state, "check_log", None)
    await (log or CheckLog(runtime.check_log_db)).write(call)
    return orjson.dumps(answers)


def _subject_text(runtime: RuntimeDep, principal: Principal) -> str:
    with runtime.db.read() as conn:
        row = conn.execute(
            select(subjects.c.kind, subjects.c.identifier).where(subjects.c.id == principal.subject_id)
        ).one()
    return f"{row.kind}:{row.identifier}"


@router.get("/me/checks")
def my_checks(
    runtime: RuntimeDep, principal: SubjectDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """Every check a relying party made about me: who, when, for what purpose, and the answer."""
    subject = _subject_text(runtime, principal)
    rows = subject_checks(runtime.check_log_db, subject, limit=limit)
    return [{**r, "checked_at": r["checked_at"].isoformat()} for r in rows]


@router.get("/me/checks/{ref}", responses=problems(404))
def my_check(
    ref: Annotated[str, Path(pattern=NO_NUL)], runtime: RuntimeDep, principal: SubjectDep
) -> dict[str, Any]:
    """One check, with the listing that caused a denial and how to contest it."""
    subject = _subject_text(runtime, principal)
    with runtime.check_log_db.read() as conn:
        row = check_by_ref(conn, subject, ref)
    if row is None:
        raise Problem(404, "Not Found", f"no check {ref!r} about you")
    checked = row["checked_at"].replace(tzinfo=UTC) if row["checked_at"].tzinfo is None else row["checked_at"]
    with runtime.db.read() as conn:
        views = listing_views(
            conn, runtime.catalogs, subject_ids=[principal.subject_id or 0], known_at=checked
        )
    day = checked.astimezone(runtime.zone).date()
    causes = []
    for view in views:
        definition = runtime.catalogs.list(view.list_code)
        if (
            definition
            and view.enforceable(day)
            and row["measure"] in {m.measure for m in definition.measures}
        ):
            causes.append(
                {
                    **view.as_dict(),
                    "list_name_en": definition.name_en,
                    "list_name_zh": definition.name_zh,
                    "how_to_contest": _contest_hint(view.cause_seq),
                }
            )
    return {**row, "checked_at": checked.isoformat(), "causes": causes}


def _contest_hint(cause_seq: int | None) -> str:
    if cause_seq is None:
        return (
            "The listing follows your grade: see your score's explanation and appeal the records behind it."
        )
    return f"File an appeal against record {cause_seq} (POST /api/v1/me/appeals) within the appeal window."


@router.get("/me/listings")
def my_listings(runtime: RuntimeDep, principal: SubjectDep) -> list[dict[str, Any]]:
    """My listings: cause, start, enforceable-from, planned end and end."""
    with runtime.db.read() as conn:
        return [
            v.as_dict()
            for v in listing_views(conn, runtime.catalogs, subject_ids=[principal.subject_id or 0])
        ]


@router.get("/public/lists/{code}", responses=problems(404))
def public_list(
    code: Annotated[str, Path(pattern=NO_NUL)],
    runtime: RuntimeDep,
    subject: Annotated[str, Query(description="identifier to look up", pattern=NO_NUL)],
) -> dict[str, Any]:
    """Whether a subject is on a public list (like the court defaulter list) today. No sign-in."""
    definition = runtime.catalogs.list(code)
    if definition is None or not definition.public:
        raise Problem(404, "Not Found", f"no public list {code!r}")
    try:
        sid = parse_subject_ref(subject)
    except IdentifierError as exc:
        raise Problem(422, "Invalid request", f"subject: {exc}") from None
    today = datetime.now(UTC).astimezone(runtime.zone).date()
    with runtime.db.read() as conn:
        number = conn.execute(
            select(subjects.c.id).where(subjects.c.kind == sid.kind, subjects.c.identifier == sid.identifier)
        ).scalar()
        views = [] if number is None else listing_views(conn, runtime.catalogs, subject_ids=[number])
    current = [v for v in views if v.list_code == code and v.enforceable(today)]
    return {
        "list": code,
        "name_en": definition.name_en,
        "name_zh": definition.name_zh,
        "subject": str(sid),
        "listed": bool(current),
        "entries": [
            {"started_on": v.started_on.isoformat(), "planned_end_on": v.planned_end_on.isoformat()}
            for v in current
        ],
    }
