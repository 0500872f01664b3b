"""Liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from credo.api.deps import RuntimeDep
from credo.store.tables import records

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> dict[str, object]:
    """Up, with the database reachable and the catalogs in force."""
    with runtime.db.read() as conn:
        size = conn.execute(select(func.count()).select_from(records)).scalar_one()
    return {
        "status": "ok",
        "database": runtime.db.dialect,
        "catalog_digest": runtime.catalogs.digest,
        "jurisdictions": sorted(j.code for j in runtime.catalogs.jurisdictions()),
        "ledger_size": size,
    }


@router.get("/livez")
def livez() -> dict[str, str]:
    """The process answers (no database): load balancers, and the benchmarks' ceiling."""
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
