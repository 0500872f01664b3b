"""Every page, on one router (kept out of the OpenAPI schema), and the error pages."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from credo.web.page import LoginRequired, Page, WebError, load_page, login_url
from credo.web.views import agency, dashboard, public, review, signin, subject

router = APIRouter(include_in_schema=False)
for module in (signin, public, subject, agency, review, dashboard):
    router.include_router(module.router)


def _page(request: Request) -> Page:
    page: Page | None = getattr(request.state, "web_page", None)
    return page if page is not None else load_page(request)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return _page(request).redirect(login_url(exc.next_url))

    @app.exception_handler(WebError)
    async def _error(request: Request, exc: WebError) -> Response:
        page = _page(request)
        return page.render("error.html", status=exc.status, message=page.t(exc.message, **exc.values))
