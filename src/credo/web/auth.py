"""Web sign-in: who a session's token is, and one-time sign-in links.

A link is a random secret shown once (``credo token create --link``); only
its SHA-256 is stored, like a token's. It signs its holder in as the token's
principal once, before it expires, and never after the token is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from credo.access.services import Principal, Role, hash_token
from credo.store.tables import login_links, tokens

LINK_TTL = timedelta(hours=24)


def principal_for_token_id(conn: Connection, token_id: int) -> Principal | None:
    """The principal of a live (unrevoked) token, by its id."""
    row = conn.execute(select(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    return Principal(
        token_id=row.id,
        role=Role(row.role),
        agency=row.agency,
        relying_party=row.relying_party,
        subject_id=row.subject_id,
        jurisdiction=row.jurisdiction,
        label=row.label,
    )


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_login_link(
    conn: Connection, token: str, *, ttl: timedelta = LINK_TTL, now: datetime | None = None
) -> str:
    """A one-time sign-in secret for the principal of ``token``; the path is ``/login/link/<secret>``."""
    token_id = conn.execute(select(tokens.c.id).where(tokens.c.token_hash == hash_token(token))).scalar()
    if token_id is None:
        raise ValueError("token: unknown token")
    now = now or datetime.now(UTC)
    secret = secrets.token_urlsafe(32)
    conn.execute(
        insert(login_links).values(
            secret_hash=_hash(secret), token_id=token_id, created_at=now, expires_at=now + ttl
        )
    )
    return secret


def peek_login_link(conn: Connection, secret: str, *, now: datetime | None = None) -> Principal | None:
    """Whom an unused, unexpired link would sign in (without using it)."""
    now = now or datetime.now(UTC)
    row = conn.execute(
        select(login_links.c.token_id, login_links.c.expires_at).where(
            login_links.c.secret_hash == _hash(secret), login_links.c.used_at.is_(None)
        )
    ).first()
    if row is None or _aware(row.expires_at) <= now:
        return None
    return principal_for_token_id(conn, row.token_id)


def redeem_login_link(conn: Connection, secret: str, *, now: datetime | None = None) -> Principal | None:
    """Use a link: its principal, once; ``None`` when unknown, used, expired or revoked."""
    now = now or datetime.now(UTC)
    principal = peek_login_link(conn, secret, now=now)
    if principal is None:
        return None
    used = conn.execute(
        update(login_links)
        .where(login_links.c.secret_hash == _hash(secret), login_links.c.used_at.is_(None))
        .values(used_at=now)
    )
    return principal if used.rowcount == 1 else None


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
