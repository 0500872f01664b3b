"""Agencies: send batches of records, read their own quarantine."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from credo.access.services import Principal, Role
from credo.api.deps import MAX_ID, RuntimeDep, require
from credo.api.ingest import ingest_batch
from credo.api.problems import Problem
from credo.ledger.services import quarantine_rows
from credo.ledger.validate import RECORD_FIELDS

router = APIRouter(prefix="/api/v1", tags=["agency"])
AgencyDep = Annotated[Principal, Depends(require(Role.AGENCY))]


class RecordIn(BaseModel):
    """One record as an agency sends it (see the README for every column)."""

    agency_ref: str = Field(description=RECORD_FIELDS["agency_ref"], max_length=128)
    kind: str = Field("incident", description=RECORD_FIELDS["kind"])
    subject_kind: str | None = Field(None, description=RECORD_FIELDS["subject_kind"])
    subject: str | None = Field(None, description=RECORD_FIELDS["subject"])
    rule: str | None = Field(None, description=RECORD_FIELDS["rule"])
    jurisdiction: str | None = Field(None, description=RECORD_FIELDS["jurisdiction"])
    occurred_on: str = Field(description=RECORD_FIELDS["occurred_on"], examples=["2026-03-01"])
    evidence: str = Field("", description=RECORD_FIELDS["evidence"])
    target_ref: str | None = Field(None, description=RECORD_FIELDS["target_ref"])
    target_seq: int | None = Field(None, description=RECORD_FIELDS["target_seq"])


class ItemOutcome(BaseModel):
    index: int
    status: str = Field(description="accepted, duplicate or rejected")
    agency_ref: str | None
    seq: int | None = Field(None, description="ledger sequence number (accepted: new; duplicate: original)")
    reasons: list[str] | None = Field(None, description="rejected: every reason, naming the field")
    quarantine_id: int | None = None


class BatchOut(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    tree_size: int
    checkpoint: str | None = Field(description="the signed tree head after this batch (C2SP checkpoint)")
    items: list[ItemOutcome]


def _lenient(schema: dict[str, Any]) -> dict[str, Any]:
    """The record schema as documentation only: each item is judged on its own, never the batch.

    An item of the wrong shape (not an object, a field of the wrong kind, a
    missing field) is not a 422 for the whole batch: it comes back
    ``rejected`` with every reason and is kept in quarantine, like a bad row
    of ``credo ingest``. So the request schema constrains only the batch.
    """
    required = set(schema.get("required", []))
    properties = {}
    for name, field in schema["properties"].items():
        kinds = field.get("type") or " or ".join(a.get("type", "?") for a in field.get("anyOf", []))
        note = "required" if name in required else f"default {field.get('default')!r}"
        properties[name] = {
            "title": field.get("title", name),
            "description": f"{field.get('description', '').removesuffix('; required')} ({kinds}; {note})",
            **({"examples": field["examples"]} if "examples" in field else {}),
        }
    return {
        "title": schema.get("title", "Record"),
        "description": (schema.get("description") or "")
        + " An item that does not fit is rejected into quarantine with its reasons, not the batch.",
        "properties": properties,
    }


_BATCH_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": _lenient(RecordIn.model_json_schema()),
                    "maxItems": 10_000,
                    "example": [
                        {
                            "agency_ref": "HZTP-2026-000123",
                            "subject": "11010519491231002X",
                            "rule": "CN-ZJ-HZ.TRAFFIC-RED-LIGHT",
                            "occurred_on": "2026-03-01",
                            "evidence": "https://evidence.example/ticket/123",
                        }
                    ],
                }
            }
        },
    }
}


@router.post(
    "/records",
    response_model=BatchOut,
    openapi_extra=_BATCH_SCHEMA,
    responses={413: {"description": "more records than max_batch"}},
)
async def post_records(request: Request, runtime: RuntimeDep, agency: AgencyDep) -> Response:
    """Append a batch; each item is accepted, a duplicate, or rejected into quarantine.

    The answer is sent only after the batch committed durably.
    """
    body = await request.body()
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "Malformed JSON", f"body: {exc}") from None
    if not isinstance(items, list):
        raise Problem(422, "Invalid request", "body: must be a JSON array of records")
    limit = int(runtime.settings.max_batch)
    if len(items) > limit:
        raise Problem(413, "Batch too large", f"body: at most {limit} records per call, got {len(items)}")
    assert agency.agency is not None

    processes = getattr(request.app.state, "ingest_processes", None)
    if processes is not None:  # in a process of its own: see credo.api.ingest
        answer = await processes.run(agency.agency, agency.token_id, body)
        return Response(answer, media_type="application/json")
    out = await run_in_threadpool(ingest_batch, runtime, agency.agency, agency.token_id, items)
    return Response(orjson.dumps(out), media_type="application/json")


@router.get("/quarantine")
def get_quarantine(
    runtime: RuntimeDep,
    agency: AgencyDep,
    open_only: Annotated[bool, Query(description="only items no retry has released")] = False,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The calling agency's own quarantined items, oldest first."""
    with runtime.db.read() as conn:
        rows = quarantine_rows(
            conn, agency=agency.agency, open_only=open_only, after_id=after_id, limit=limit
        )
    return [{**r, "received_at": r["received_at"].isoformat()} for r in rows]
