"""Principals and their bearer tokens.

A token is shown once, when created, and stored only as its SHA-256: a
stolen database does not give anyone a way in.

>>> Role("agency").value
'agency'
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Connection, insert, select, update

from credo.store.tables import tokens

TOKEN_PREFIX = "credo_"  # noqa: S105 - a prefix, not a secret


class Role(StrEnum):
    AGENCY = "agency"
    RELYING_PARTY = "relying_party"
    SUBJECT = "subject"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"
    ADMIN = "admin"


class AccessError(ValueError):
    """A token request that does not fit the role; the message says which field."""


@dataclass(frozen=True)
class Principal:
    token_id: int
    role: Role
    agency: str | None = None
    relying_party: str | None = None
    subject_id: int | None = None
    jurisdiction: str | None = None
    label: str = ""


# Which binding each role needs: an agency token acts for one agency, etc.
_BINDING = {
    Role.AGENCY: "agency",
    Role.RELYING_PARTY: "relying_party",
    Role.SUBJECT: "subject_id",
    Role.REVIEWER: "jurisdiction",
}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    conn: Connection,
    role: Role | str,
    *,
    agency: str | None = None,
    relying_party: str | None = None,
    subject_id: int | None = None,
    jurisdiction: str | None = None,
    label: str = "",
) -> str:
    """Create a token bound to its principal and return it (the only time it is seen)."""
    try:
        role = Role(role)
    except ValueError:
        raise AccessError(f"role: must be one of {', '.join(r.value for r in Role)}, got {role!r}") from None
    given = {
        "agency": agency,
        "relying_party": relying_party,
        "subject_id": subject_id,
        "jurisdiction": jurisdiction,
    }
    needed = _BINDING.get(role)
    if needed is not None and given[needed] is None:
        raise AccessError(f"{needed}: required for role {role.value}")
    # A reviewer may belong to an agency: they may then not decide on its records.
    optional = {"agency"} if role is Role.REVIEWER else set()
    extra = [k for k, v in given.items() if v is not None and k != needed and k not in optional]
    if extra:
        raise AccessError(f"{extra[0]}: not allowed for role {role.value}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        insert(tokens).values(
            token_hash=hash_token(token),
            role=role.value,
            label=label,
            created_at=datetime.now(UTC),
            **given,
        )
    )
    return token


def authenticate(conn: Connection, token: str) -> Principal | None:
    row = conn.execute(
        select(tokens).where(tokens.c.token_hash == hash_token(token), tokens.c.revoked_at.is_(None))
    ).first()
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


def revoke_token(conn: Connection, token_id: int) -> bool:
    result = conn.execute(
        update(tokens)
        .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return result.rowcount == 1
