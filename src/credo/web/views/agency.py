"""The agency console: upload a file of records, read the quarantine, fix and retry,
retract a record, and name the organisations the agency reports on.

Uploads go through :func:`credo.process.intake.ingest_and_notify` in batches,
exactly like ``credo ingest``: the records, their notices and the listings
they move commit together, and refused rows wait in quarantine.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from sqlalchemy import insert, select, update
from starlette.responses import Response

from credo.access.services import Role
from credo.ids import IdentifierError, parse_subject_ref
from credo.ledger.readers import ReadError, detect_format, iter_file
from credo.ledger.services import quarantine_rows
from credo.ledger.validate import RECORD_FIELDS
from credo.process.intake import ingest_and_notify, resend_with_notice, retry_with_notice
from credo.store.tables import organisation_names, records, subjects
from credo.web.page import CsrfDep, Page, WebError, require

router = APIRouter(prefix="/agency")
AgencyPage = Annotated[Page, Depends(require(Role.AGENCY))]
BATCH = 1000
SHOWN_REJECTS = 200


def _agency(page: Page) -> str:
    code = page.user.agency
    if code is None:
        raise WebError(403, "This page is for agencies.")
    return code


def _recent(page: Page, agency: str, limit: int = 20) -> list[dict[str, Any]]:
    with page.runtime.db.read() as conn:
        rows = conn.execute(
            select(
                records.c.seq,
                records.c.agency_ref,
                records.c.kind,
                records.c.rule,
                records.c.occurred_on,
                records.c.recorded_at,
                records.c.target_seq,
                subjects.c.kind.label("subject_kind"),
                subjects.c.identifier,
            )
            .join(subjects, subjects.c.id == records.c.subject_id)
            .where(records.c.agency == agency)
            .order_by(records.c.seq.desc())
            .limit(limit)
        ).all()
        retracted = set(
            conn.execute(
                select(records.c.target_seq).where(
                    records.c.kind == "retraction", records.c.target_seq.in_([r.seq for r in rows])
                )
            ).scalars()
        )
    return [{**r._mapping, "retracted": r.seq in retracted} for r in rows]


def _console(page: Page, status: int = 200, **extra: Any) -> Response:
    agency = _agency(page)
    with page.runtime.db.read() as conn:
        open_items = quarantine_rows(conn, agency=agency, open_only=True, limit=1000)
    context: dict[str, Any] = {
        "agency": agency,
        "recent": _recent(page, agency),
        "open_quarantine": len(open_items),
        "result": None,
        "retraction": None,
        "naming": None,
        **extra,
    }
    return page.render("agency/console.html", status=status, **context)


@router.get("")
def console(page: AgencyPage) -> Response:
    return _console(page)


@router.post("/upload")
def upload(page: AgencyPage, _: CsrfDep, file: Annotated[UploadFile, File()]) -> Response:
    agency = _agency(page)
    name = Path(file.filename or "upload").name
    result: dict[str, Any] = {"file": name, "accepted": 0, "duplicate": 0, "rejected": 0, "rejects": []}
    try:
        fmt = detect_format(Path(name))
    except ReadError:
        result["error"] = "Name the file .csv, .jsonl or .parquet so its format is known."
        return _upload_answer(page, result, 422)
    with tempfile.TemporaryDirectory(prefix="credo-upload-") as tmp:
        path = Path(tmp) / f"upload.{fmt}"
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        try:
            rows = iter_file(path, fmt)
            while True:
                chunk = list(islice(rows, BATCH))
                if not chunk:
                    break
                with page.runtime.db.begin() as conn:
                    batch = ingest_and_notify(
                        conn,
                        page.runtime.catalogs,
                        page.runtime.log,
                        agency,
                        [item for _, item in chunk],
                        source=f"web:{name}",
                        lines=[line for line, _ in chunk],
                    )
                for key, value in batch.counts().items():
                    result[key] += value
                for outcome in batch.outcomes:
                    if outcome.status == "rejected" and len(result["rejects"]) < SHOWN_REJECTS:
                        result["rejects"].append(
                            {
                                "line": chunk[outcome.index][0],
                                "agency_ref": outcome.agency_ref,
                                "reasons": list(outcome.reasons),
                                "quarantine_id": outcome.quarantine_id,
                            }
                        )
                result["tree_size"] = batch.tree_size
        except ReadError as exc:
            result["error"] = str(exc)
            return _upload_answer(page, result, 422)
    return _upload_answer(page, result, 200)


def _upload_answer(page: Page, result: dict[str, Any], status: int) -> Response:
    if page.request.headers.get("x-credo-fragment") == "1":
        return page.render("agency/_result.html", status=status, result=result)
    return _console(page, result=result, status=status)


@router.get("/quarantine")
def quarantine(page: AgencyPage) -> Response:
    agency = _agency(page)
    with page.runtime.db.read() as conn:
        items = quarantine_rows(conn, agency=agency, open_only=True, limit=1000)
    return page.render("agency/quarantine.html", items=items, retried=None)


@router.post("/quarantine/retry")
def retry(page: AgencyPage, _: CsrfDep) -> Response:
    """Run every open item again as it is (after a catalog fix, or a record it needed arrived)."""
    agency = _agency(page)
    with page.runtime.db.begin() as conn:
        counts = retry_with_notice(conn, page.runtime.catalogs, page.runtime.log, agency=agency)
    with page.runtime.db.read() as conn:
        items = quarantine_rows(conn, agency=agency, open_only=True, limit=1000)
    return page.render("agency/quarantine.html", items=items, retried=counts)


def _open_item(page: Page, item_id: int) -> dict[str, Any]:
    agency = _agency(page)
    with page.runtime.db.read() as conn:
        found = quarantine_rows(conn, agency=agency, open_only=True, after_id=item_id - 1, limit=1)
    if not found or found[0]["id"] != item_id:
        raise WebError(404, "No open quarantined item of yours with this number.")
    return found[0]


@router.get("/quarantine/{item_id}")
def fix_form(item_id: int, page: AgencyPage) -> Response:
    item = _open_item(page, item_id)
    raw = item["raw"] if isinstance(item["raw"], dict) else {}
    return page.render("agency/fix.html", item=item, raw=raw, fields=RECORD_FIELDS, outcome=None)


@router.post("/quarantine/{item_id}")
def fix(
    item_id: int,
    page: AgencyPage,
    _: CsrfDep,
    agency_ref: Annotated[str, Form(max_length=128)] = "",
    kind: Annotated[str, Form(max_length=16)] = "",
    subject_kind: Annotated[str, Form(max_length=16)] = "",
    subject: Annotated[str, Form(max_length=100)] = "",
    rule: Annotated[str, Form(max_length=96)] = "",
    jurisdiction: Annotated[str, Form(max_length=32)] = "",
    occurred_on: Annotated[str, Form(max_length=32)] = "",
    evidence: Annotated[str, Form(max_length=2000)] = "",
    target_ref: Annotated[str, Form(max_length=128)] = "",
    target_seq: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Send the corrected row; the original is released to what became of it."""
    item = _open_item(page, item_id)
    given: dict[str, Any] = {
        "agency_ref": agency_ref,
        "kind": kind,
        "subject_kind": subject_kind,
        "subject": subject,
        "rule": rule,
        "jurisdiction": jurisdiction,
        "occurred_on": occurred_on,
        "evidence": evidence,
        "target_ref": target_ref,
        "target_seq": target_seq,
    }
    corrected = {k: v.strip() for k, v in given.items() if v.strip()}
    if corrected.get("target_seq", "").isdigit():
        corrected["target_seq"] = int(corrected["target_seq"])
    agency = _agency(page)
    with page.runtime.db.begin() as conn:
        outcome = resend_with_notice(
            conn, page.runtime.catalogs, page.runtime.log, agency, item_id, corrected
        )
    if outcome is None:  # released meanwhile, e.g. by a retry in another tab
        raise WebError(404, "No open quarantined item of yours with this number.")
    if outcome.status == "rejected":
        return page.redirect(f"/agency/quarantine/{outcome.quarantine_id}")
    return page.render(
        "agency/fix.html", item=item, raw=corrected, fields=RECORD_FIELDS, outcome=outcome.as_dict()
    )


@router.post("/retract")
def retract(
    page: AgencyPage,
    _: CsrfDep,
    seq: Annotated[int, Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A retraction is a new record that withdraws one of the agency's own records."""
    agency = _agency(page)
    jurisdiction = page.runtime.catalogs.agency_jurisdiction(agency)
    now = datetime.now(UTC)
    item = {
        "agency_ref": f"retract-{seq}-{now:%Y%m%dT%H%M%S}",
        "kind": "retraction",
        "target_seq": seq,
        "occurred_on": page.today(jurisdiction).isoformat(),
        "evidence": reason.strip() or "retracted in the agency console",
    }
    with page.runtime.db.begin() as conn:
        batch = ingest_and_notify(
            conn, page.runtime.catalogs, page.runtime.log, agency, [item], source="web:retract", now=now
        )
    outcome = batch.outcomes[0].as_dict()
    return _console(page, retraction=outcome, status=200 if outcome["status"] != "rejected" else 422)


@router.post("/names")
def name_organisation(
    page: AgencyPage,
    _: CsrfDep,
    subject: Annotated[str, Form(max_length=100)],
    name: Annotated[str, Form(max_length=300)],
) -> Response:
    """The registered name of an organisation this agency reports on (for the public lookup)."""
    agency = _agency(page)
    try:
        sid = parse_subject_ref(subject.strip())
    except IdentifierError as exc:
        return _console(page, naming={"error": f"subject: {exc}"}, status=422)
    if sid.kind != "organisation" or not name.strip():
        return _console(
            page,
            naming={"error": "Give an organisation's Unified Social Credit Code and its name."},
            status=422,
        )
    now = datetime.now(UTC)
    with page.runtime.db.begin() as conn:
        number = conn.execute(
            select(subjects.c.id)
            .join(records, records.c.subject_id == subjects.c.id)
            .where(
                subjects.c.kind == sid.kind,
                subjects.c.identifier == sid.identifier,
                records.c.agency == agency,
            )
            .limit(1)
        ).scalar()
        if number is None:
            return _console(
                page, naming={"error": "Your agency has no record about this organisation."}, status=422
            )
        known = conn.execute(
            select(organisation_names.c.name).where(
                organisation_names.c.subject_id == number, organisation_names.c.agency == agency
            )
        ).first()
        values = {"name": name.strip(), "recorded_at": now}
        if known is None:
            conn.execute(insert(organisation_names).values(subject_id=number, agency=agency, **values))
        else:
            conn.execute(
                update(organisation_names)
                .where(organisation_names.c.subject_id == number, organisation_names.c.agency == agency)
                .values(**values)
            )
    return _console(page, naming={"ok": f"{sid}: {name.strip()}"})


def raw_text(raw: Any) -> str:
    return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, sort_keys=True)
