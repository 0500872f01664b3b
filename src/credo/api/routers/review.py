"""Reviewers decide appeals before their deadlines; agencies and reviewers decide rectifications."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy import select

from credo.access.services import Principal, Role
from credo.api.deps import MAX_ID, NO_NUL, RuntimeDep, one_of, require
from credo.api.openapi import problems
from credo.api.problems import Problem
from credo.lists.refresh import refresh
from credo.process import appeals as appeal_service
from credo.process import rectification, stats
from credo.store.tables import appeals, records

router = APIRouter(prefix="/api/v1", tags=["review"])
ReviewerDep = Annotated[Principal, Depends(require(Role.REVIEWER))]
DeciderDep = Annotated[Principal, Depends(require(Role.REVIEWER, Role.AGENCY))]
StatsDep = Annotated[Principal, Depends(require(Role.AUDITOR, Role.ADMIN, Role.REVIEWER))]


class DecisionIn(BaseModel):
    outcome: str = Field(description="upheld, overturned or amended", pattern=one_of(appeal_service.OUTCOMES))
    reasons: str = Field(
        min_length=1, max_length=10_000, pattern=NO_NUL, description="written reasons, shown to the subject"
    )
    correction: dict[str, Annotated[str, Field(pattern=NO_NUL)]] | None = Field(
        None, description="amended: the corrected fields (rule, occurred_on, evidence)"
    )


class RectificationDecisionIn(BaseModel):
    approve: StrictBool  # true or false, not 0 or "yes"
    reasons: str = Field(min_length=1, max_length=10_000, pattern=NO_NUL)


def reviewer_of(principal: Principal) -> appeal_service.Reviewer:
    assert principal.jurisdiction is not None
    return appeal_service.Reviewer(
        principal.label or f"reviewer#{principal.token_id}", principal.jurisdiction, principal.agency
    )


@router.get("/review/queue")
def review_queue(runtime: RuntimeDep, principal: ReviewerDep) -> list[dict[str, Any]]:
    """Open appeals in my jurisdiction, soonest deadline first, with days left."""
    with runtime.db.read() as conn:
        return appeal_service.queue(conn, runtime.catalogs, reviewer_of(principal), datetime.now(UTC))


@router.post("/review/appeals/{appeal_id}/decision", responses=problems(404, 409))
def decide_appeal(
    appeal_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: DecisionIn,
    runtime: RuntimeDep,
    principal: ReviewerDep,
) -> dict[str, Any]:
    """Decide with reasons; an overturned record stops counting at once and its listings end."""
    now = datetime.now(UTC)
    try:
        with runtime.db.begin() as conn:
            decision = appeal_service.decide(
                conn,
                runtime.catalogs,
                runtime.log,
                reviewer_of(principal),
                appeal_id,
                outcome=body.outcome,
                reasons=body.reasons,
                now=now,
                correction=body.correction,
            )
            refresh(conn, runtime.catalogs, now, [decision["subject_id"]])
    except appeal_service.AppealError as exc:
        raise Problem(exc.status, "Decision refused", str(exc)) from None
    return {k: v for k, v in decision.items() if k != "subject_id"}


def decider_of(principal: Principal) -> rectification.Decider:
    """An agency decides for its own records; a reviewer for its jurisdiction's."""
    return rectification.Decider(
        principal.label or f"{principal.role.value}#{principal.token_id}",
        agency=principal.agency if principal.role is Role.AGENCY else None,
        jurisdiction=principal.jurisdiction if principal.role is Role.REVIEWER else None,
    )


@router.post("/rectifications/{request_id}/decision", responses=problems(404, 409))
def decide_rectification(
    request_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: RectificationDecisionIn,
    runtime: RuntimeDep,
    principal: DeciderDep,
) -> dict[str, Any]:
    """The reporting agency, or a reviewer of the jurisdiction, approves (a restoration record) or refuses."""
    now = datetime.now(UTC)
    decider = decider_of(principal)
    try:
        with runtime.db.begin() as conn:
            decision = rectification.decide(
                conn,
                runtime.catalogs,
                runtime.log,
                decider,
                request_id,
                approve=body.approve,
                reasons=body.reasons,
                now=now,
            )
            refresh(conn, runtime.catalogs, now, [decision["subject_id"]])
    except appeal_service.AppealError as exc:
        raise Problem(exc.status, "Decision refused", str(exc)) from None
    return {k: v for k, v in decision.items() if k != "subject_id"}


@router.get("/agency/decisions")
def agency_decisions(
    runtime: RuntimeDep, principal: Annotated[Principal, Depends(require(Role.AGENCY))]
) -> list[dict[str, Any]]:
    """Appeal decisions on my agency's records: how the agency is told."""
    with runtime.db.read() as conn:
        rows = conn.execute(
            select(
                appeals.c.id,
                appeals.c.record_seq,
                appeals.c.outcome,
                appeals.c.decided_at,
                appeals.c.reasons,
                appeals.c.amended_seq,
                records.c.agency_ref,
            )
            .join(records, records.c.seq == appeals.c.record_seq)
            .where(records.c.agency == principal.agency, appeals.c.decided_at.is_not(None))
            .order_by(appeals.c.decided_at.desc())
        ).all()
    return [{**r._mapping, "decided_at": r.decided_at.isoformat()} for r in rows]


@router.get("/stats")
def statistics(runtime: RuntimeDep, _: StatsDep) -> dict[str, Any]:
    """Records by category and jurisdiction, listings over time, appeals by outcome, overturn share."""
    with runtime.db.read() as conn:
        return stats.summary(conn, runtime.catalogs)
