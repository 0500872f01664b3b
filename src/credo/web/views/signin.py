"""The front page, sign-in (a token or a one-time link), sign-out, the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from starlette.responses import Response

from credo.access.services import Role, authenticate
from credo.web.auth import peek_login_link, redeem_login_link
from credo.web.i18n import LANGUAGES
from credo.web.page import CsrfDep, PageDep, home_for, safe_next
from credo.web.session import LANG_COOKIE

router = APIRouter()


@router.get("/")
def index(page: PageDep) -> Response:
    if page.principal is not None:
        return page.redirect(home_for(page.principal))
    return page.render("index.html")


@router.get("/login")
def login_form(page: PageDep, next: Annotated[str | None, Query()] = None) -> Response:
    return page.render("login.html", next=safe_next(next, ""), error=None)


@router.post("/login")
def login(
    page: CsrfDep,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    with page.runtime.db.read() as conn:
        principal = authenticate(conn, token.strip()) if token.strip() else None
    if principal is None:
        return page.render(
            "login.html", status=401, next=safe_next(next, ""), error="Unknown or revoked token."
        )
    if principal.role is Role.RELYING_PARTY:
        return page.render(
            "login.html",
            status=403,
            next="",
            error="Relying parties use the check API; there are no pages for them.",
        )
    page.session.sign_in(principal.token_id)
    return page.redirect(safe_next(next, home_for(principal)))


@router.get("/login/link/{secret}")
def link_form(secret: str, page: PageDep) -> Response:
    with page.runtime.db.read() as conn:
        principal = peek_login_link(conn, secret)
    if principal is None:
        return page.render("link.html", status=410, secret=None, who=None)
    return page.render("link.html", secret=secret, who=principal)


@router.post("/login/link/{secret}")
def link_login(secret: str, page: CsrfDep) -> Response:
    with page.runtime.db.begin() as conn:
        principal = redeem_login_link(conn, secret)
    if principal is None or principal.role is Role.RELYING_PARTY:
        return page.render("link.html", status=410, secret=None, who=None)
    page.session.sign_in(principal.token_id)
    return page.redirect(home_for(principal))


@router.post("/logout")
def logout(page: CsrfDep) -> Response:
    page.session.sign_out()
    return page.redirect("/")


@router.post("/lang")
def set_language(
    page: CsrfDep, lang: Annotated[str, Form()] = "en", next: Annotated[str, Form()] = "/"
) -> Response:
    response = page.redirect(safe_next(next))
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            samesite="lax",
            secure=page.request.url.scheme == "https",
            path="/",
        )
    return response
