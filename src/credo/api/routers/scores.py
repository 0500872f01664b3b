"""Scores: a subject's score, grade and rank as known at a time, and why.

``GET /api/v1/subjects/{id}/score`` -- ``{id}`` is a subject reference
(``person:11010519491231002X`` or a bare identifier). A subject may read only
its own score: asking for anyone else's answers 404, exactly as for a
subject that does not exist, so the answer reveals nothing. Auditors and
reviewers may read any subject's; every other role gets 403.

Register in ``credo.api.app.create_app``: add ``scores`` to the imported
routers and ``scores.router`` to the ``routers`` tuple.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import select

from credo.access.services import Principal, Role
from credo.api.deps import RuntimeDep, require
from credo.api.openapi import problems
from credo.api.problems import Problem
from credo.ids import IdentifierError, parse_subject_ref
from credo.scoring.online import default_schemes, score_subject
from credo.store.tables import subjects

router = APIRouter(prefix="/api/v1", tags=["scores"])
ReaderDep = Annotated[Principal, Depends(require(Role.SUBJECT, Role.AUDITOR, Role.REVIEWER))]


def _known_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(422, "Invalid request", f"known_at: not an ISO 8601 timestamp: {value!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@router.get("/subjects/{subject}/score", responses=problems(404))
def subject_score(
    runtime: RuntimeDep,
    principal: ReaderDep,
    subject: Annotated[str, Path(description="kind:identifier or a bare identifier")],
    scheme: Annotated[
        str | None, Query(description="scheme code; default: the schemes that judge the subject's file")
    ] = None,
    as_of: Annotated[
        date | None, Query(description="valid date t; default today in the scheme's timezone")
    ] = None,
    known_at: Annotated[
        str | None,
        Query(description="knowledge time k (ISO 8601, UTC unless an offset is given); default now"),
    ] = None,
) -> list[dict[str, Any]]:
    """The score per scheme with every record's status, the policy used and the forecast."""
    try:
        ref = parse_subject_ref(subject)
    except IdentifierError as exc:
        raise Problem(422, "Invalid request", f"subject: {exc}") from None
    k = _known_at(known_at)
    if scheme is not None and runtime.catalogs.jurisdiction(scheme) is None:
        raise Problem(422, "Invalid request", f"scheme: unknown scheme {scheme!r}")
    with runtime.db.read() as conn:
        number = conn.execute(
            select(subjects.c.id).where(subjects.c.kind == ref.kind, subjects.c.identifier == ref.identifier)
        ).scalar()
        # Another subject's score is "not found", never "forbidden": a 403
        # would confirm that the person is in the registry.
        if number is None or (principal.role is Role.SUBJECT and principal.subject_id != number):
            raise Problem(404, "Not Found", f"no subject {ref} visible to you")
        schemes = [scheme] if scheme else default_schemes(conn, runtime.catalogs, number)
        return [
            score_subject(
                conn, runtime.catalogs, number, s, as_of=as_of, known_at=k, ranks=runtime.ranks
            ).as_dict()
            for s in schemes
        ]
