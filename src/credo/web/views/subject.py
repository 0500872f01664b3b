"""The subject portal: score and why, the file, listings, notices, who checked me,
appeals, rectification and the download of the whole file.

Every page reads only the signed-in subject's own rows: an id in a URL that
belongs to someone else is answered 404, exactly like one that does not exist.
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
from credo.api.routers.lists import my_check, my_checks
from credo.ids import SubjectId
from credo.lists.services import listing_views
from credo.process import appeals as appeal_service
from credo.process import rectification
from credo.process.export import subject_file, subject_file_pdf
from credo.process.notices import render as render_notice
from credo.scoring.online import ScoreReport, default_schemes, score_subject
from credo.store.tables import notices, records, subjects
from credo.web.page import CsrfDep, Page, RowId, WebError, require

router = APIRouter(prefix="/me")
SubjectPage = Annotated[Page, Depends(require(Role.SUBJECT))]


def _who(page: Page) -> SubjectId:
    sid = page.require_subject()
    with page.runtime.db.read() as conn:
        row = conn.execute(select(subjects.c.kind, subjects.c.identifier).where(subjects.c.id == sid)).one()
    return SubjectId(row.kind, row.identifier)


def _scores(page: Page, with_forecast: bool = True) -> list[ScoreReport]:
    sid = page.require_subject()
    with page.runtime.db.read() as conn:
        return [
            score_subject(
                conn,
                page.runtime.catalogs,
                sid,
                scheme,
                with_forecast=with_forecast,
                ranks=page.runtime.ranks,
            )
            for scheme in default_schemes(conn, page.runtime.catalogs, sid)
        ]


def _now_decision(page: Page, measure: str, who: SubjectId) -> str:
    """What a relying party asking today would be told (from the live check index)."""
    keeper = getattr(page.request.app.state, "index_keeper", None)
    if keeper is None:
        return "unknown"
    keeper.refresh_if_changed()  # cheap when nothing changed; current right after a decision
    return str(keeper.current().decide(measure, str(who)))


@router.get("")
def overview(page: SubjectPage) -> Response:
    sid = page.require_subject()
    who = _who(page)
    scores = _scores(page)
    with page.runtime.db.read() as conn:
        views = listing_views(conn, page.runtime.catalogs, subject_ids=[sid])
        notice_count = len(conn.execute(select(notices.c.id).where(notices.c.subject_id == sid)).all())
    current = [v for v in views if v.in_force(page.today(v.scheme))]
    checks = my_checks(page.runtime, page.user, limit=5)
    return page.render(
        "me/overview.html",
        who=who,
        scores=scores,
        listings=current,
        checks=checks,
        notice_count=notice_count,
    )


@router.get("/score")
def score(page: SubjectPage) -> Response:
    return page.render("me/score.html", scores=_scores(page))


@router.get("/file")
def my_file(page: SubjectPage) -> Response:
    sid = page.require_subject()
    with page.runtime.db.read() as conn:
        data = subject_file(
            conn, page.runtime.catalogs, sid, ranks=page.runtime.ranks, check_log=page.runtime.check_log_db
        )
    status: dict[int, list[dict[str, Any]]] = {}
    for s in data["scores"]:
        for r in s["records"]:
            status.setdefault(r["seq"], []).append({**r, "scheme": s["scheme"]})
    appealed = {a["record_seq"]: a for a in data["appeals"]}
    rectifying = {r["record_seq"]: r for r in data["rectification_requests"] if r["decided_at"] is None}
    return page.render(
        "me/file.html",
        data=data,
        statuses=status,
        appealed=appealed,
        rectifying=rectifying,
        rectifiable=_rectifiable(page, data["records"]),
    )


def _rectifiable(page: Page, rows: list[dict[str, Any]]) -> set[int]:
    out = set()
    for r in rows:
        if r["kind"] != "incident":
            continue
        versions = {v.version: v for v in page.runtime.catalogs.rule_versions(r["rule"])}
        rule = versions.get(r["rule_version"])
        if rule is not None and rule.rectifiable and rule.points < 0:
            out.add(int(r["seq"]))
    return out


@router.get("/listings")
def my_listings(page: SubjectPage) -> Response:
    sid = page.require_subject()
    with page.runtime.db.read() as conn:
        views = listing_views(conn, page.runtime.catalogs, subject_ids=[sid])
    return page.render("me/listings.html", listings=list(reversed(views)))


@router.get("/notices")
def my_notices(page: SubjectPage) -> Response:
    sid = page.require_subject()
    with page.runtime.db.read() as conn:
        rows = conn.execute(
            select(notices).where(notices.c.subject_id == sid).order_by(notices.c.id.desc())
        ).all()
    items = [
        {
            "id": n.id,
            "kind": n.kind,
            "issued_at": n.issued_at,
            "record_seq": n.record_seq,
            "listing_id": n.listing_id,
            "text": render_notice(json.loads(n.body), page.lang),
        }
        for n in rows
    ]
    return page.render("me/notices.html", notices=items)


@router.get("/checks")
def checks(page: SubjectPage) -> Response:
    rows = my_checks(page.runtime, page.user, limit=500)
    return page.render("me/checks.html", checks=rows)


@router.get("/checks/{ref}")
def check(ref: str, page: SubjectPage) -> Response:
    try:
        detail = my_check(ref, page.runtime, page.user)
    except Problem:
        raise WebError(404, "No such check about you.") from None
    today = _now_decision(page, detail["measure"], _who(page))
    return page.render("me/check.html", check=detail, today=today)


# -- appeals -----------------------------------------------------------------


def _record_of(page: Page, seq: int) -> dict[str, Any]:
    sid = page.require_subject()
    with page.runtime.db.read() as conn:
        row = conn.execute(select(records).where(records.c.seq == seq, records.c.subject_id == sid)).first()
    if row is None:
        raise WebError(404, "No such record in your file.")
    return dict(row._mapping)


@router.get("/appeals")
def appeals(page: SubjectPage) -> Response:
    sid = page.require_subject()
    with page.runtime.db.read() as conn:
        rows = appeal_service.appeals_of(conn, sid)
    return page.render("me/appeals.html", appeals=list(reversed(rows)))


@router.get("/appeals/new")
def appeal_form(
    page: SubjectPage,
    record: Annotated[int | None, Query()] = None,
    listing: Annotated[int | None, Query()] = None,
) -> Response:
    sid = page.require_subject()
    seq = record
    if listing is not None:
        with page.runtime.db.read() as conn:
            views = listing_views(conn, page.runtime.catalogs, subject_ids=[sid])
        found = [v for v in views if v.id == listing]
        if not found:
            raise WebError(404, "No such listing of yours.")
        seq = found[0].cause_seq
    target = _record_of(page, seq) if seq is not None else None
    return page.render("me/appeal_form.html", record=target, listing=listing, error=None, grounds="")


@router.post("/appeals")
def file_appeal(
    page: SubjectPage,
    _: CsrfDep,
    grounds: Annotated[str, Form(max_length=10_000)] = "",
    record: Annotated[int | None, Form()] = None,
    listing: Annotated[int | None, Form()] = None,
    attachments: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    sid = page.require_subject()
    links = [line.strip() for line in attachments.splitlines() if line.strip()][:20]
    try:
        with page.runtime.db.begin() as conn:
            appeal_id = appeal_service.file_appeal(
                conn,
                page.runtime.catalogs,
                sid,
                grounds=grounds,
                now=datetime.now(UTC),
                record_seq=record if listing is None else None,
                listing_id=listing,
                attachments=links,
            )
    except appeal_service.AppealError as exc:
        target = _record_of(page, record) if record is not None else None
        return page.render(
            "me/appeal_form.html",
            status=exc.status if exc.status in (404, 409, 422) else 422,
            record=target,
            listing=listing,
            error=str(exc),
            grounds=grounds,
        )
    return page.redirect(f"/me/appeals/{appeal_id}")


@router.get("/appeals/{appeal_id}")
def appeal(appeal_id: RowId, page: SubjectPage) -> Response:
    sid = page.require_subject()
    with page.runtime.db.read() as conn:
        found = [a for a in appeal_service.appeals_of(conn, sid) if a["id"] == appeal_id]
    if not found:
        raise WebError(404, "No such appeal of yours.")
    item = found[0]
    return page.render("me/appeal.html", appeal=item, record=_record_of(page, int(item["record_seq"])))


# -- rectification -----------------------------------------------------------


@router.get("/rectifications")
def rectifications(page: SubjectPage, record: Annotated[int | None, Query()] = None) -> Response:
    sid = page.require_subject()
    with page.runtime.db.read() as conn:
        rows = rectification.requests_of(conn, sid)
    target = _record_of(page, record) if record is not None else None
    return page.render(
        "me/rectifications.html",
        requests=list(reversed(rows)),
        record=target,
        acts=rectification.ACTS,
        error=None,
    )


@router.post("/rectifications")
def request_rectification(
    page: SubjectPage,
    _: CsrfDep,
    record: Annotated[int, Form()],
    act: Annotated[str, Form(max_length=64)] = "",
    evidence: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    sid = page.require_subject()
    try:
        with page.runtime.db.begin() as conn:
            rectification.request(
                conn, page.runtime.catalogs, sid, record, act=act, evidence=evidence, now=datetime.now(UTC)
            )
    except appeal_service.AppealError as exc:
        with page.runtime.db.read() as conn:
            rows = rectification.requests_of(conn, sid)
        return page.render(
            "me/rectifications.html",
            status=exc.status if exc.status in (404, 409, 422) else 422,
            requests=list(reversed(rows)),
            record=_record_of(page, record),
            acts=rectification.ACTS,
            error=str(exc),
        )
    return page.redirect("/me/rectifications")


# -- download ----------------------------------------------------------------


@router.get("/export.{fmt}")
def export(fmt: str, page: SubjectPage) -> Response:
    if fmt not in ("json", "pdf"):
        raise WebError(404, "Download as JSON or PDF.")
    sid = page.require_subject()
    with page.runtime.db.read() as conn:
        data = subject_file(
            conn, page.runtime.catalogs, sid, ranks=page.runtime.ranks, check_log=page.runtime.check_log_db
        )
    if fmt == "pdf":
        body, media = subject_file_pdf(data), "application/pdf"
    else:
        body, media = json.dumps(data, ensure_ascii=False, indent=2).encode(), "application/json"
    response = Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="credo-file.{fmt}"'}
    )
    return page.finish(response)
