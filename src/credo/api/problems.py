"""Errors as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from credo.store.db import Overloaded

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.extra = extra


def problem_response(
    status: int, title: str, detail: str = "", *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers or None)


def install(app: FastAPI, routers: Iterable[APIRouter] = ()) -> None:
    # Path pattern -> methods, for the ``Allow`` header of a 405.
    methods = [
        (route.path_regex, route.methods or set())
        for router in routers
        for route in router.routes
        if isinstance(route, Route)
    ]

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, **exc.extra)

    # The database is saturated (SQLite's writer queue is full; PostgreSQL's pool has no free
    # connection in time): shed the request with 503 rather than fail it with 500.
    @app.exception_handler(Overloaded)
    async def _overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        return problem_response(503, "Server busy", str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(PoolTimeout)
    async def _pool(_: Request, exc: PoolTimeout) -> JSONResponse:
        detail = "no database connection free in time; retry shortly"
        return problem_response(503, "Server busy", detail, headers={"Retry-After": "1"})

    # The database went away (PostgreSQL restarting, a connection cut): nothing was committed,
    # so the request may be sent again. Other operational errors stay 500s.
    @app.exception_handler(OperationalError)
    async def _unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        if not database_unavailable(exc):
            raise exc
        detail = "the database is unavailable; nothing was done; retry shortly"
        return problem_response(503, "Service unavailable", detail, headers={"Retry-After": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        try:
            title = HTTPStatus(exc.status_code).phrase
        except ValueError:
            title = "Error"
        # Keep the exception's headers; a 405's ``Allow`` names the methods of every route on the
        # path (Starlette's names only the first route's, and GET and POST are routes of their own).
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            path = request.url.path
            allowed = {m for regex, ms in methods if regex.match(path) for m in ms}
            if allowed:  # else (a page's path) Starlette's own
                headers["Allow"] = ", ".join(sorted(allowed))
        return problem_response(exc.status_code, title, str(exc.detail or ""), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(422, "Invalid request", detail, errors=errors)


def database_unavailable(exc: OperationalError) -> bool:
    """The connection to the database was lost or could not be made (not a bad statement)."""
    if exc.connection_invalidated:
        return True
    # psycopg's OperationalError is about the connection (refused, terminated, server starting
    # up or shutting down); sqlite3's also covers bad statements, which are bugs (500).
    return type(exc.orig).__module__.split(".")[0] == "psycopg"
