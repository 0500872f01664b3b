"""What every page handler gets: the runtime, the session, the signed-in principal,
the language, and helpers that render a template or redirect (and send the
session cookie with either)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Depends, Path, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from credo.access.services import Principal, Role
from credo.api.deps import MAX_ID
from credo.runtime import Runtime
from credo.web import TEMPLATES
from credo.web.auth import principal_for_token_id
from credo.web.i18n import LANGUAGES, negotiate, translate
from credo.web.session import LANG_COOKIE, Sessions, WebSession, load_or_create_key, session_key_path

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class WebError(Exception):
    """An error page: ``status`` and a message (in English; the page translates it)."""

    def __init__(self, status: int, message: str, **values: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.values = values


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


ENV = _environment()


def sessions_for(request: Request) -> Sessions:
    state = request.app.state
    sessions: Sessions | None = getattr(state, "web_sessions", None)
    if sessions is None:
        runtime: Runtime = state.runtime
        sessions = Sessions(load_or_create_key(session_key_path(runtime.settings.signing_key_path)))
        state.web_sessions = sessions
    return sessions


@dataclass
class Page:
    request: Request
    runtime: Runtime
    session: WebSession
    principal: Principal | None
    lang: str

    # -- text, dates, names --------------------------------------------------

    def t(self, text: str, **values: Any) -> str:
        return translate(self.lang, text, **values)

    def zone(self, scheme: str | None = None) -> ZoneInfo:
        if scheme and self.runtime.catalogs.jurisdiction(scheme) is not None:
            return ZoneInfo(self.runtime.catalogs.policy(scheme).timezone)
        return self.runtime.zone

    def when(self, moment: datetime | str | None, scheme: str | None = None) -> str:
        """An instant as local time in the scheme's timezone, e.g. ``2026-03-01 14:05 CST``."""
        if moment is None:
            return "—"
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.zone(scheme)).strftime("%Y-%m-%d %H:%M %Z")

    def day(self, value: date | str | None) -> str:
        if value is None:
            return "—"
        return value if isinstance(value, str) else value.isoformat()

    def today(self, scheme: str | None = None) -> date:
        return datetime.now(UTC).astimezone(self.zone(scheme)).date()

    def named(self, obj: Any, field: str = "name") -> str:
        """A catalog object's name (or title) in the page's language, English as fallback."""
        if obj is None:
            return ""
        value = getattr(obj, f"{field}_{self.lang}", None) or getattr(obj, f"{field}_en", "")
        return str(value)

    def named_dict(self, data: Mapping[str, Any], field: str = "name") -> str:
        return str(data.get(f"{field}_{self.lang}") or data.get(f"{field}_en") or "")

    def rule_title(self, code: str, on: date | None = None) -> str:
        versions = self.runtime.catalogs.rule_versions(code)
        rule = self.runtime.catalogs.rule(code, on) if on is not None else None
        rule = rule or (versions[-1] if versions else None)
        return self.named(rule, "title") if rule is not None else code

    def list_name(self, code: str) -> str:
        return self.named(self.runtime.catalogs.list(code)) or code

    def measure_name(self, code: str) -> str:
        return self.named(self.runtime.catalogs.measure(code)) or code

    def agency_name(self, code: str) -> str:
        return self.named(self.runtime.catalogs.agency(code)) or code

    def jurisdiction_name(self, code: str) -> str:
        return self.named(self.runtime.catalogs.jurisdiction(code)) or code

    # -- responses -----------------------------------------------------------

    def finish(self, response: Response) -> Response:
        sessions_for(self.request).save(self.request, response, self.session)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        html = ENV.get_template(template).render(
            page=self,
            _=self.t,
            lang=self.lang,
            languages=LANGUAGES,
            csrf=self.session.csrf,
            principal=self.principal,
            path=self.request.url.path,
            **context,
        )
        return self.finish(HTMLResponse(html, status_code=status))

    def redirect(self, url: str, status: int = 303) -> Response:
        return self.finish(RedirectResponse(url, status_code=status))

    @property
    def user(self) -> Principal:
        """The signed-in principal (pages behind :func:`require` only)."""
        if self.principal is None:
            raise LoginRequired(self.request.url.path)
        return self.principal

    def require_subject(self) -> int:
        if self.principal is None or self.principal.subject_id is None:
            raise WebError(403, "This page is for subjects.")
        return self.principal.subject_id


def load_page(request: Request) -> Page:
    runtime: Runtime = request.app.state.runtime
    session = sessions_for(request).load(request)
    principal = None
    if session.token_id is not None:
        with runtime.db.read() as conn:
            principal = principal_for_token_id(conn, session.token_id)
        if principal is None:  # revoked since: the session ends
            session.sign_out()
    lang = negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language", ""))
    page = Page(request, runtime, session, principal, lang)
    request.state.web_page = page
    if principal is not None:
        request.state.principal = principal  # for the request log, like the API's bearer tokens
    return page


PageDep = Annotated[Page, Depends(load_page)]


def require(*roles: Role) -> Callable[[Page], Page]:
    """A dependency: the page, for a principal of one of ``roles``; otherwise sign in first."""

    def check(page: PageDep) -> Page:
        if page.principal is None:
            target = page.request.url.path
            if page.request.url.query:
                target += "?" + page.request.url.query
            raise LoginRequired(target)
        if page.principal.role not in roles:
            raise WebError(403, "Your role may not open this page.")
        return page

    return check


async def verify_csrf(request: Request, page: PageDep) -> Page:
    """Every form posts its CSRF token; a POST without the session's token is refused (403)."""
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not page.session.csrf_ok(sent):
        raise WebError(403, "The form expired or did not come from this site. Reload the page and try again.")
    return page


CsrfDep = Annotated[Page, Depends(verify_csrf)]

#: A row number a page names: past any stored one (PostgreSQL's bigint) it is a 422, not a 500.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a local path may follow sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def login_url(next_url: str) -> str:
    return "/login?next=" + quote(next_url, safe="/")


def home_for(principal: Principal) -> str:
    return {
        Role.SUBJECT: "/me",
        Role.AGENCY: "/agency",
        Role.REVIEWER: "/review",
        Role.AUDITOR: "/dashboard",
        Role.ADMIN: "/dashboard",
    }.get(principal.role, "/public")
