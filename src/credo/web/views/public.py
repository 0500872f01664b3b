"""The public lookup (no sign-in): is this person or organisation on a public list today?

It answers exactly what ``GET /api/v1/public/lists/{code}`` answers (the same
function), and finds organisations by a registered name as well.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from starlette.responses import Response

from credo.api.problems import Problem
from credo.api.routers.lists import public_list
from credo.ids import IdentifierError, parse_subject_ref
from credo.store.tables import organisation_names, subjects
from credo.web.page import PageDep

router = APIRouter()
MAX_NAME_HITS = 20


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@router.get("/public")
def lookup(
    page: PageDep,
    q: Annotated[str, Query(max_length=200)] = "",
    list_code: Annotated[str, Query(alias="list", max_length=96)] = "",
) -> Response:
    catalogs = page.runtime.catalogs
    public = [
        lst
        for j in catalogs.jurisdictions()
        for lst in catalogs.lists_for(j.code)
        if lst.public and catalogs.list_jurisdiction(lst.code) == j.code
    ]
    chosen = list_code or (public[0].code if public else "")
    query = q.strip()
    results: list[dict[str, Any]] = []
    error: str | None = None
    searched = bool(query)
    if query and chosen:
        try:
            parse_subject_ref(query)
            looks_like_id = True
        except IdentifierError as exc:
            looks_like_id, id_error = False, str(exc)
        if looks_like_id:
            try:
                results.append({"name": None, **public_list(chosen, page.runtime, query)})
            except Problem as exc:
                error = exc.detail
        elif len(query) >= 2:
            with page.runtime.db.read() as conn:
                hits = conn.execute(
                    select(organisation_names.c.name, subjects.c.kind, subjects.c.identifier)
                    .join(subjects, subjects.c.id == organisation_names.c.subject_id)
                    .where(organisation_names.c.name.like(_like(query), escape="\\"))
                    .order_by(organisation_names.c.name)
                    .limit(MAX_NAME_HITS)
                ).all()
            seen: set[str] = set()
            for hit in hits:
                ref = f"{hit.kind}:{hit.identifier}"
                if ref in seen:
                    continue
                seen.add(ref)
                try:
                    found = public_list(chosen, page.runtime, ref)
                except Problem:
                    continue
                if found["listed"]:
                    results.append({"name": hit.name, **found})
            if not hits and query[:1].isdigit():
                error = id_error
        else:
            error = "Type an identifier, or at least two characters of an organisation's name."
    return page.render(
        "public.html",
        lists=public,
        chosen=chosen,
        q=query,
        results=results,
        error=error,
        searched=searched,
    )
