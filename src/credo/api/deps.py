"""Request dependencies: the runtime, the caller, and role checks."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from starlette.concurrency import run_in_threadpool

from credo.access.services import Principal, Role, authenticate, hash_token
from credo.api.problems import Problem
from credo.runtime import Runtime


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in
# the thread pool, a hop (and a wait for the GIL) per dependency per request.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


T = TypeVar("T")


async def shared_load(
    loading: dict[Hashable, asyncio.Future[T]], key: Hashable, load: Callable[[], Awaitable[T]]
) -> T:
    """``load()``, or the result of the load of ``key`` already under way: when a cached entry
    expires under load, the requests that find it gone wait for one read, not one each (32 at
    once took 32 database connections, most of them new)."""
    task = loading.get(key)
    if task is None:
        task = loading[key] = asyncio.ensure_future(load())
        task.add_done_callback(lambda _: loading.pop(key, None))
    return await asyncio.shield(task)  # a waiter that goes away does not cancel the others' read


class TokenCache:
    """The principals of tokens read from the database in the last ``seconds``, per worker.

    Reading a token's row costs a database read (and a hop to the thread pool) per request;
    within ``seconds`` of that read a worker answers the same token from memory. Revoking a
    token therefore takes effect on a running server within ``seconds`` (the setting
    ``token_cache_seconds``; 0: every request reads its token, revocation at once). Only
    tokens that authenticated are kept (an unknown token is read again every time), keyed
    by their SHA-256 as in the database, at most ``size`` of them.
    """

    def __init__(
        self, seconds: float, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.size = size
        self.clock = clock
        self.entries: dict[str, tuple[float, Principal]] = {}
        self.loading: dict[Hashable, asyncio.Future[Principal | None]] = {}

    def get(self, digest: str) -> Principal | None:
        entry = self.entries.get(digest)
        if entry is None:
            return None
        if self.clock() - entry[0] >= self.seconds:
            del self.entries[digest]
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal, read_at: float) -> None:
        if self.seconds <= 0:
            return
        if len(self.entries) >= self.size:
            self.entries.clear()
        self.entries[digest] = (read_at, principal)


def _read_principal(runtime: Runtime, token: str) -> Principal | None:
    with runtime.db.read() as conn:
        return authenticate(conn, token)


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, None if it is not one."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


async def get_principal(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]) -> Principal:
    token = bearer_token(request.headers.get("authorization", ""))
    if token is None:
        raise Problem(401, "Unauthorized", "send Authorization: Bearer <token>")
    cache: TokenCache = request.app.state.token_cache  # made by create_app
    digest = hash_token(token)
    principal = cache.get(digest)
    if principal is None:

        async def read() -> Principal | None:
            read_at = cache.clock()  # before the read: a revocation committed after it is seen next time
            # The database is read in the thread pool, never on the event loop.
            found = await run_in_threadpool(_read_principal, runtime, token)
            if found is not None:
                cache.put(digest, found, read_at)
            return found

        principal = await shared_load(cache.loading, digest, read)
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
