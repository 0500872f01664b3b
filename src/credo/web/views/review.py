"""The reviewer console: open appeals by deadline, one appeal with its record,
evidence, the subject's statement and history, and the decision with reasons;
and rectification requests, which the reporting agency or a reviewer decides.

Decisions go through the same functions as ``POST /api/v1/review/appeals/{id}/decision``
and ``POST /api/v1/rectifications/{id}/decision`` (decide, then move the
listings), so the pages and the API cannot differ.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from sqlalchemy import select
from starlette.responses import Response

from credo.access.services import Role
from credo.api.problems import Problem
from credo.api.routers.review import (
    DecisionIn,
    RectificationDecisionIn,
    decide_appeal,
    decide_rectification,
    decider_of,
    reviewer_of,
)
from credo.process import appeals as appeal_service
from credo.process import rectification
from credo.store.tables import appeals, records, subjects
from credo.web.page import CsrfDep, Page, RowId, WebError, require

router = APIRouter()
ReviewerPage = Annotated[Page, Depends(require(Role.REVIEWER))]
DeciderPage = Annotated[Page, Depends(require(Role.REVIEWER, Role.AGENCY))]


@router.get("/review")
def queue(page: ReviewerPage, decided: Annotated[int | None, Query()] = None) -> Response:
    with page.runtime.db.read() as conn:
        items = appeal_service.queue(conn, page.runtime.catalogs, reviewer_of(page.user), datetime.now(UTC))
    return page.render("review/queue.html", items=items, decided=decided)


def _appeal(page: Page, appeal_id: int) -> dict[str, Any]:
    """One appeal of the reviewer's jurisdiction with its record and the subject's history."""
    reviewer = reviewer_of(page.user)
    with page.runtime.db.read() as conn:
        row = conn.execute(
            select(appeals, records.c.jurisdiction.label("record_jurisdiction"))
            .join(records, records.c.seq == appeals.c.record_seq)
            .where(appeals.c.id == appeal_id)
        ).first()
        if row is None or not page.runtime.catalogs.is_within(row.record_jurisdiction, reviewer.jurisdiction):
            raise WebError(404, "No such appeal in your jurisdiction.")
        record = dict(conn.execute(select(records).where(records.c.seq == row.record_seq)).one()._mapping)
        subject = conn.execute(select(subjects).where(subjects.c.id == row.subject_id)).one()
        history = [
            dict(r._mapping)
            for r in conn.execute(
                select(
                    records.c.seq,
                    records.c.kind,
                    records.c.agency,
                    records.c.rule,
                    records.c.rule_version,
                    records.c.jurisdiction,
                    records.c.occurred_on,
                    records.c.target_seq,
                )
                .where(records.c.subject_id == row.subject_id)
                .order_by(records.c.seq)
            )
        ]
        earlier = [a for a in appeal_service.appeals_of(conn, int(row.subject_id)) if a["id"] != appeal_id]
    left = (_aware(row.deadline_at) - datetime.now(UTC)).total_seconds() / 86400
    return {
        "appeal": dict(row._mapping) | {"attachments": json.loads(row.attachments or "[]")},
        "record": record,
        "subject": f"{subject.kind}:{subject.identifier}",
        "history": history,
        "earlier": earlier,
        "days_left": round(left, 1),
        "own_agency": reviewer.agency is not None and reviewer.agency == record["agency"],
    }


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@router.get("/review/appeals/{appeal_id}")
def appeal(appeal_id: RowId, page: ReviewerPage) -> Response:
    return page.render(
        "review/appeal.html", **_appeal(page, appeal_id), outcomes=appeal_service.OUTCOMES, error=None
    )


@router.post("/review/appeals/{appeal_id}")
def decide(
    appeal_id: RowId,
    page: ReviewerPage,
    _: CsrfDep,
    outcome: Annotated[str, Form(max_length=16)] = "",
    reasons: Annotated[str, Form(max_length=10_000)] = "",
    rule: Annotated[str, Form(max_length=96)] = "",
    occurred_on: Annotated[str, Form(max_length=32)] = "",
    evidence: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    context = _appeal(page, appeal_id)
    given = {"rule": rule, "occurred_on": occurred_on, "evidence": evidence}
    correction = {k: v.strip() for k, v in given.items() if v.strip()}
    error = None
    if not reasons.strip():
        error = "reasons: a decision needs written reasons"
    elif outcome not in appeal_service.OUTCOMES:
        error = f"outcome: choose one of {', '.join(appeal_service.OUTCOMES)}"
    else:
        try:
            body = DecisionIn(
                outcome=outcome,
                reasons=reasons,
                correction=correction if outcome == "amended" else None,
            )
            decide_appeal(appeal_id, body, page.runtime, page.user)
        except Problem as exc:
            error = exc.detail
    if error is not None:
        return page.render(
            "review/appeal.html", status=422, **context, outcomes=appeal_service.OUTCOMES, error=error
        )
    return page.redirect("/review?decided=" + str(appeal_id))


# -- rectification requests ----------------------------------------------------


@router.get("/rectifications")
def rectification_queue(page: DeciderPage, decided: Annotated[int | None, Query()] = None) -> Response:
    assert page.principal is not None
    with page.runtime.db.read() as conn:
        items = rectification.open_requests(
            conn, page.runtime.catalogs, decider_of(page.principal), datetime.now(UTC)
        )
    return page.render("review/rectifications.html", items=items, decided=decided)


def _request(page: Page, request_id: int) -> dict[str, Any]:
    assert page.principal is not None
    with page.runtime.db.read() as conn:
        found = rectification.open_requests(
            conn, page.runtime.catalogs, decider_of(page.principal), datetime.now(UTC), request_id=request_id
        )
        if not found:
            raise WebError(404, "No open rectification request for you to decide with this number.")
        subject = conn.execute(select(subjects).where(subjects.c.id == found[0]["subject_id"])).one()
    return {"item": found[0], "subject": f"{subject.kind}:{subject.identifier}"}


@router.get("/rectifications/{request_id}")
def rectification_request(request_id: RowId, page: DeciderPage) -> Response:
    return page.render("review/rectification.html", **_request(page, request_id), error=None)


@router.post("/rectifications/{request_id}")
def decide_request(
    request_id: RowId,
    page: DeciderPage,
    _: CsrfDep,
    verdict: Annotated[str, Form(max_length=16)] = "",
    reasons: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    context = _request(page, request_id)
    assert page.principal is not None
    error = None
    if not reasons.strip():
        error = "reasons: a decision needs written reasons"
    elif verdict not in ("approve", "refuse"):
        error = "verdict: choose approve or refuse"
    else:
        try:
            body = RectificationDecisionIn(approve=verdict == "approve", reasons=reasons)
            decide_rectification(request_id, body, page.runtime, page.principal)
        except Problem as exc:
            error = exc.detail
    if error is not None:
        return page.render("review/rectification.html", status=422, **context, error=error)
    return page.redirect("/rectifications?decided=" + str(request_id))
