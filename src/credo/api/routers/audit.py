"""The Merkle log, for anyone who wants to check the registry kept its word."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import select
from starlette.responses import PlainTextResponse

from credo.access.services import Principal, Role
from credo.api.deps import MAX_ID, PrincipalDep, RuntimeDep, require
from credo.api.openapi import problems
from credo.api.problems import Problem
from credo.ledger import audit
from credo.ledger.log import latest_tree_head
from credo.store.tables import access_log

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def _size(runtime: RuntimeDep) -> int:
    with runtime.db.read() as conn:
        head = latest_tree_head(conn)
    return 0 if head is None else int(head["size"])


@router.get("/tree-head", response_class=PlainTextResponse, responses=problems(404))
def tree_head(runtime: RuntimeDep, _: PrincipalDep) -> str:
    """The newest signed tree head as a C2SP checkpoint (text/plain)."""
    with runtime.db.read() as conn:
        head = latest_tree_head(conn)
    if head is None:
        raise Problem(404, "Not Found", "the ledger is empty: no tree head yet")
    return str(head["checkpoint"])


@router.get("/key")
def verifier_key(runtime: RuntimeDep) -> dict[str, str]:
    """The note verifier key that checks every checkpoint's signature."""
    return {"verifier_key": runtime.log.signer.verifier_key(), "origin": runtime.log.origin}


@router.get("/proof/{seq}", responses=problems(404))
def proof(
    seq: Annotated[int, Path(ge=1, le=MAX_ID)],
    runtime: RuntimeDep,
    _: PrincipalDep,
    size: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="tree size (default: newest tree head)")
    ] = None,
) -> dict[str, Any]:
    """Inclusion proof of record ``seq`` (RFC 9162 section 2.1.3)."""
    size = size or _size(runtime)
    with runtime.db.read() as conn:
        try:
            return audit.inclusion(conn, seq, size)
        except ValueError as exc:
            raise Problem(404, "Not Found", str(exc)) from None


@router.get("/consistency")
def consistency(
    runtime: RuntimeDep,
    _: PrincipalDep,
    from_: Annotated[int, Query(alias="from", ge=1, le=MAX_ID)],
    to: Annotated[int, Query(ge=1, le=MAX_ID)],
) -> dict[str, Any]:
    """Consistency proof between two tree sizes (RFC 9162 section 2.1.4)."""
    with runtime.db.read() as conn:
        try:
            return audit.consistency(conn, from_, to)
        except ValueError as exc:
            raise Problem(422, "Invalid request", f"from/to: {exc}") from None


@router.get("/access")
def access_records(
    runtime: RuntimeDep,
    _: Annotated[Principal, Depends(require(Role.AUDITOR))],
    after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    """The access log, oldest first: every request, allowed or denied (auditors only)."""
    with runtime.db.read() as conn:
        rows = conn.execute(
            select(access_log).where(access_log.c.id > after_id).order_by(access_log.c.id).limit(limit)
        ).all()
    return [{**r._mapping, "at": r.at.isoformat()} for r in rows]
