"""The OpenAPI document says every answer an operation can give, errors included.

Every error is an RFC 9457 problem (``application/problem+json``, schema
``Problem``). What each operation documents is derived from the code, so it
cannot drift from it:

- every operation: 413 (body too large), 429 and 503 with ``Retry-After``
  (the guard in front of every request);
- an operation with parameters or a body: 422; one that parses its JSON
  body itself: 400 for malformed JSON;
- an operation that needs a bearer token: 401 and the ``bearer`` security
  scheme; one limited to some roles: 403;
- what the domain may refuse (404, 409, ...): declared on the route with
  ``responses=problems(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute

from credo.api.deps import ROLE_CHECKS, get_principal
from credo.api.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details: what went wrong and, in `detail`, which field.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "422: every invalid field and why",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

DESCRIPTIONS = {
    400: "Malformed JSON body",
    401: "No bearer token, or an unknown or revoked one",
    403: "The token's role (or binding) may not do this",
    404: "Not found (or not yours)",
    409: "Conflicts with the current state (already decided, already filed)",
    413: "Body or batch too large",
    422: "Invalid request: `detail` names the field",
    429: "Over the token's rate limit; retry after `Retry-After` seconds",
    503: "Server busy; retry after `Retry-After` seconds",
}

_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait", "required": True, "schema": {"type": "integer"}}
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the problems its domain code may answer."""
    return {status: {"description": DESCRIPTIONS[status]} for status in statuses}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _statuses(route: APIRoute) -> set[int]:
    found = {413, 429, 503}
    body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})
    if body or get_flat_params(route.dependant):
        found.add(422)
    if body:
        found.add(400)  # a body that is not JSON (or not UTF-8)
    calls = set(_calls(route.dependant))
    if get_principal in calls:
        found.add(401)
    if calls & ROLE_CHECKS:
        found.add(403)
    return found


def _complete(routers: Iterable[APIRouter], doc: dict[str, Any]) -> dict[str, Any]:
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from `credo token create`, bound to one role (and agency, party or subject).",
    }
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    routes = [route for router in routers for route in router.routes]
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = doc["paths"][route.path_format][method.lower()]
            responses = operation["responses"]
            statuses = _statuses(route)
            if 401 in statuses:
                operation["security"] = [{"bearer": []}]
            for status in statuses | {int(s) for s in responses if s.isdigit() and int(s) >= 400}:
                entry = responses.setdefault(str(status), {})
                if entry.get("description") in (None, "", "Validation Error", "Additional Response"):
                    entry["description"] = DESCRIPTIONS.get(status, "Error")
                entry["content"] = problem
                if status in (429, 503):
                    entry["headers"] = _RETRY_AFTER
    # FastAPI's own validation error shapes are never sent: ours is a Problem.
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc


def document(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Make ``app.openapi()`` return the completed document (built once)."""
    build = app.openapi
    routers = tuple(routers)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _complete(routers, build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
