"""``POST /api/v1/checks`` for a caller already known, past FastAPI's routing and dependencies.

A manifest is the API's hottest call. Through FastAPI it passes Starlette's exception
middleware, the router's match of every route, the request/response wrappers and the
dependency solver: on this machine about a third of what the worker spends on a manifest
of 300 outside the HTTP server, for no work of its own. This middleware answers the call
itself when the caller's token is in the token cache (``deps.TokenCache``) as a relying
party and the request has no query string: the same function as the route
(``routers.lists.check_answers``), the same answer, the same errors rendered by the app's
own exception handlers. Everything else (the first call of a token, an unknown or revoked
token, another role, a query parameter, another method) goes on to the FastAPI route,
which stays the one that is documented (OpenAPI) and the one that reads tokens.

It sits inside ``GuardMiddleware`` and ``MetricsMiddleware``: the request id, the size,
saturation and rate limits, the access-log row and the metrics are theirs, as for any call.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from credo.access.services import Principal, Role, hash_token
from credo.api.deps import TokenCache, bearer_token
from credo.api.routers.lists import check_answers

PATH = "/api/v1/checks"
_JSON = (b"content-type", b"application/json")


class ChecksFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.served = 0  # calls answered here (the rest went to the route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope["query_string"]
            or (principal := self._known(scope)) is None
        ):
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        state = scope.setdefault("state", {})
        state["principal"] = principal  # for the access-log row, as the route's dependency does
        self.served += 1
        try:
            answers = await check_answers(scope["app"].state, principal, body, state)
        except Exception as exc:
            handler = _handler(scope["app"].exception_handlers, exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(answers)).encode()), _JSON],
            }
        )
        await send({"type": "http.response.body", "body": answers})

    @staticmethod
    def _known(scope: Scope) -> Principal | None:
        """The relying party whose token the cache holds, else None (the route decides)."""
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        token = bearer_token(header.decode("latin-1"))
        if token is None:
            return None
        cache: TokenCache = scope["app"].state.token_cache
        principal = cache.get(hash_token(token))
        return principal if principal is not None and principal.role is Role.RELYING_PARTY else None


async def _body(receive: Receive) -> bytes:
    """The request's body, as ``Request.body`` reads it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _handler(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The app's exception handler for ``exc`` (the nearest class), as Starlette looks it up."""
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
