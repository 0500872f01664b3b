"""Request dependencies: the runtime, the caller, and role checks."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant

from credo.access.services import Principal, Role, authenticate
from credo.api.problems import Problem
from credo.runtime import Runtime


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in
# the thread pool, a hop (and a wait for the GIL) per dependency per request.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_principal(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "Unauthorized", "send Authorization: Bearer <token>")
    with runtime.db.read() as conn:
        principal = authenticate(conn, token.strip())
    if principal is None:
        raise Problem(401, "Unauthorized", "unknown or revoked token")
    request.state.principal = principal
    return principal


#: The largest id or sequence number a request may name: every integer parameter is bounded by
#: it, so a larger one is a 422, not an overflow in the database driver (columns are signed 64
#: bits). 2**53 - 1 is the largest integer every JSON reader keeps exact (RFC 8259 section 6).
MAX_ID = 2**53 - 1

#: Text a request may carry: anything but NUL, which PostgreSQL text cannot hold (a ``pattern``
#: of every free-text field, so the OpenAPI document says it too).
NO_NUL = r"^[^\x00]*$"


def one_of(values: Iterable[str]) -> str:
    """A ``pattern`` that admits exactly ``values`` (and documents them)."""
    return "^(" + "|".join(re.escape(v) for v in values) + ")$"


#: Every dependency ``require`` made: the OpenAPI document marks their operations 403.
ROLE_CHECKS: set[Callable[..., Awaitable[Principal]]] = set()


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets only ``roles`` through (403 otherwise)."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise Problem(403, "Forbidden", f"role {principal.role.value} may not do this")
        return principal

    ROLE_CHECKS.add(check)
    return check


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


_QUERY_NAMES: dict[int, frozenset[str]] = {}


async def plain_parameters(request: Request) -> None:
    """422 for a query parameter the operation does not declare (a typo must not be ignored
    silently), and for a NUL character in any query or path parameter."""
    for where, values in (("path", request.path_params), ("query", request.query_params)):
        for name, value in values.items():
            if "\x00" in str(value) or "\x00" in name:
                label = repr(name) if "\x00" in name else name
                raise Problem(422, "Invalid request", f"{where}.{label}: contains a NUL character")
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _QUERY_NAMES.get(id(dependant))
    if known is None:
        known = _QUERY_NAMES[id(dependant)] = frozenset(_query_names(dependant))
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise Problem(
            422,
            "Invalid request",
            f"query.{unknown[0]}: unknown parameter (this operation takes: {expected})",
            errors=[{"field": f"query.{name}", "message": "unknown parameter"} for name in unknown],
        )


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
