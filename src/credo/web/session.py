"""Sessions in signed cookies, CSRF tokens, and the key that signs them.

The cookie holds only the id of the token the visitor signed in with and a
CSRF secret; it is signed (itsdangerous, HMAC-SHA1 over a key derived with a
salt) and expires after :data:`MAX_AGE`. Every request reads the token row
again, so revoking the token ends the web session too.

The key is a file of 32 random bytes beside the log's signing key
(``web-session.key`` next to ``CREDO_SIGNING_KEY_PATH``), created on first
use with mode 0600, so every worker of one registry shares it.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "credo_session"
LANG_COOKIE = "credo_lang"
MAX_AGE = 12 * 3600
KEY_FILE = "web-session.key"


def session_key_path(signing_key_path: Path) -> Path:
    return signing_key_path.with_name(KEY_FILE)


def load_or_create_key(path: Path) -> bytes:
    """The session key at ``path``; created (0600) when missing, race-free across workers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) < 32:
            raise RuntimeError(f"{path}: a web session key must hold at least 32 bytes") from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


@dataclass
class WebSession:
    """What the cookie carries: who signed in (a token id) and the CSRF secret."""

    token_id: int | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    changed: bool = False
    cleared: bool = False

    def sign_in(self, token_id: int) -> None:
        # A new CSRF secret at sign-in: nothing planted before it carries over.
        self.token_id = token_id
        self.csrf = secrets.token_urlsafe(24)
        self.changed = True

    def sign_out(self) -> None:
        self.token_id = None
        self.csrf = secrets.token_urlsafe(24)
        self.changed = True
        self.cleared = True

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(str(sent), self.csrf)


class Sessions:
    def __init__(self, key: bytes) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt="credo-web-session")

    def load(self, request: Request) -> WebSession:
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data: Any = self._serializer.loads(raw, max_age=MAX_AGE)
            except BadSignature:
                data = None
            if isinstance(data, dict) and isinstance(data.get("c"), str):
                tid = data.get("t")
                return WebSession(token_id=tid if isinstance(tid, int) else None, csrf=data["c"])
        # No (valid) cookie yet: a fresh anonymous session, sent with the response.
        return WebSession(changed=True)

    def save(self, request: Request, response: Response, session: WebSession) -> None:
        if not session.changed:
            return
        value = self._serializer.dumps({"t": session.token_id, "c": session.csrf})
        response.set_cookie(
            COOKIE,
            value,
            max_age=MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
