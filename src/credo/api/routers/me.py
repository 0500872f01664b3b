"""Subjects: my file, my score and why, my notices, appeals, rectification, export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from credo.access.services import Principal, Role
from credo.api.deps import MAX_ID, NO_NUL, RuntimeDep, one_of, require
from credo.api.openapi import problems
from credo.api.problems import Problem
from credo.process import appeals as appeal_service
from credo.process import rectification
from credo.process.export import subject_file, subject_file_pdf
from credo.process.notices import render
from credo.scoring.online import default_schemes, score_subject
from credo.store.tables import notices

router = APIRouter(prefix="/api/v1/me", tags=["subject"])
SubjectDep = Annotated[Principal, Depends(require(Role.SUBJECT))]


def _me(principal: Principal) -> int:
    assert principal.subject_id is not None
    return principal.subject_id


class AppealIn(BaseModel):
    record_seq: int | None = Field(
        None, ge=1, le=MAX_ID, description="the record appealed (or give listing_id)"
    )
    listing_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="a listing: appeals the record that caused it"
    )
    grounds: str = Field(
        description="what is wrong with the record", min_length=1, max_length=10_000, pattern=NO_NUL
    )
    attachments: list[Annotated[str, Field(max_length=2000, pattern=NO_NUL)]] = Field(
        default_factory=list, description="evidence references (URIs)", max_length=20
    )
    filed_by: str = Field(
        "", description="a representative filing for an organisation", max_length=200, pattern=NO_NUL
    )


class RectificationIn(BaseModel):
    record_seq: int = Field(ge=1, le=MAX_ID)
    act: str = Field(description=", ".join(rectification.ACTS), pattern=one_of(rectification.ACTS))
    evidence: str = Field(min_length=1, max_length=2000, pattern=NO_NUL)


@router.get("/file")
def my_file(runtime: RuntimeDep, principal: SubjectDep) -> dict[str, Any]:
    """Everything credo holds about me (JSON); see /me/export for the PDF."""
    with runtime.db.read() as conn:
        return subject_file(
            conn, runtime.catalogs, _me(principal), ranks=runtime.ranks, check_log=runtime.check_log_db
        )


@router.get("/export", responses={200: {"content": {"application/pdf": {}}}})
def my_export(
    runtime: RuntimeDep, principal: SubjectDep, format: Annotated[str, Query(pattern="^(json|pdf)$")] = "json"
) -> Response:
    """My whole file as JSON or as a PDF a person can read."""
    with runtime.db.read() as conn:
        data = subject_file(
            conn, runtime.catalogs, _me(principal), ranks=runtime.ranks, check_log=runtime.check_log_db
        )
    if format == "pdf":
        return Response(
            subject_file_pdf(data),
            media_type="application/pdf",
            headers={"Content-Disposition": 'attachment; filename="credo-file.pdf"'},
        )
    return Response(
        json.dumps(data, ensure_ascii=False),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="credo-file.json"'},
    )


@router.get("/score")
def my_score(
    runtime: RuntimeDep,
    principal: SubjectDep,
    scheme: Annotated[
        str | None, Query(description="default: the schemes that judge my file", pattern=NO_NUL)
    ] = None,
) -> list[dict[str, Any]]:
    """My score and grade per scheme, every record's status, the policy used, and the forecast."""
    with runtime.db.read() as conn:
        if scheme is not None and runtime.catalogs.jurisdiction(scheme) is None:
            raise Problem(422, "Invalid request", f"scheme: unknown scheme {scheme!r}")
        schemes = [scheme] if scheme else default_schemes(conn, runtime.catalogs, _me(principal))
        return [
            score_subject(conn, runtime.catalogs, _me(principal), s, ranks=runtime.ranks).as_dict()
            for s in schemes
        ]


@router.get("/notices")
def my_notices(
    runtime: RuntimeDep, principal: SubjectDep, lang: Annotated[str, Query(pattern="^(en|zh)$")] = "en"
) -> list[dict[str, Any]]:
    """Every notice sent to me, newest first, with its text."""
    with runtime.db.read() as conn:
        rows = conn.execute(
            select(notices).where(notices.c.subject_id == _me(principal)).order_by(notices.c.id.desc())
        ).all()
    out = []
    for n in rows:
        body = json.loads(n.body)
        issued = n.issued_at if n.issued_at.tzinfo else n.issued_at.replace(tzinfo=UTC)
        out.append(
            {
                "id": n.id,
                "kind": n.kind,
                "issued_at": issued.isoformat(),
                "record_seq": n.record_seq,
                "listing_id": n.listing_id,
                "text": render(body, lang),
                "body": body,
            }
        )
    return out


@router.get("/appeals")
def my_appeals(runtime: RuntimeDep, principal: SubjectDep) -> list[dict[str, Any]]:
    with runtime.db.read() as conn:
        return appeal_service.appeals_of(conn, _me(principal))


@router.post("/appeals", status_code=201, responses=problems(404, 409))
def file_appeal(body: AppealIn, runtime: RuntimeDep, principal: SubjectDep) -> dict[str, Any]:
    """Appeal a record (or the record behind a listing) within the filing window."""
    try:
        with runtime.db.begin() as conn:
            appeal_id = appeal_service.file_appeal(
                conn,
                runtime.catalogs,
                _me(principal),
                grounds=body.grounds,
                now=datetime.now(UTC),
                record_seq=body.record_seq,
                listing_id=body.listing_id,
                attachments=body.attachments,
                filed_by=body.filed_by,
            )
    except appeal_service.AppealError as exc:
        raise Problem(exc.status, "Appeal refused", str(exc)) from None
    with runtime.db.read() as conn:
        return next(a for a in appeal_service.appeals_of(conn, _me(principal)) if a["id"] == appeal_id)


@router.get("/rectifications")
def my_rectifications(runtime: RuntimeDep, principal: SubjectDep) -> list[dict[str, Any]]:
    with runtime.db.read() as conn:
        return rectification.requests_of(conn, _me(principal))


@router.post("/rectifications", status_code=201, responses=problems(404, 409))
def request_rectification(
    body: RectificationIn, runtime: RuntimeDep, principal: SubjectDep
) -> dict[str, Any]:
    """Ask to clear a rectifiable record early on the strength of a restorative act."""
    try:
        with runtime.db.begin() as conn:
            request_id = rectification.request(
                conn,
                runtime.catalogs,
                _me(principal),
                body.record_seq,
                act=body.act,
                evidence=body.evidence,
                now=datetime.now(UTC),
            )
    except appeal_service.AppealError as exc:
        raise Problem(exc.status, "Request refused", str(exc)) from None
    return {"id": request_id, "record_seq": body.record_seq, "state": "open"}
