"""Principals and their bearer tokens.

A token is shown once, when created, and stored only as its SHA-256: a
stolen database does not give anyone a way in. Revoking one takes effect
with its transaction (an API worker answers a token it read less than
``token_cache_seconds`` ago from memory, so a running server refuses it
within that time) and is recorded: one append-only row of
``token_revocations`` says when, by whom and why.

>>> Role("agency").value
'agency'
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select, update

from credo.store.tables import subjects, token_revocations, tokens

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


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never the token, only the start of its hash."""

    id: int
    role: str
    agency: str | None
    relying_party: str | None
    subject: str | None
    jurisdiction: str | None
    label: str
    hash_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: How ``credo token list`` shows a token's hash, and how ``credo token revoke`` takes it back.
HASH_SHOWN = 12
HASH_REF = re.compile(r"^sha256:([0-9a-f]{8,64})$")


def find_tokens(
    conn: Connection,
    *,
    token_id: int | None = None,
    hash_prefix: str | None = None,
    token: str | None = None,
    role: Role | str | None = None,
    agency: str | None = None,
    relying_party: str | None = None,
    subject_id: int | None = None,
    jurisdiction: str | None = None,
    label: str | None = None,
    live_only: bool = False,
) -> list[TokenInfo]:
    """Tokens matching every criterion given (all of them when none is), oldest first."""
    query = (
        select(
            tokens,
            (subjects.c.kind + ":" + subjects.c.identifier).label("subject"),
            token_revocations.c.revoked_by,
            token_revocations.c.reason,
        )
        .outerjoin(subjects, subjects.c.id == tokens.c.subject_id)
        .outerjoin(token_revocations, token_revocations.c.token_id == tokens.c.id)
        .order_by(tokens.c.id)
    )
    exact = {
        tokens.c.id: token_id,
        tokens.c.token_hash: None if token is None else hash_token(token),
        tokens.c.role: None if role is None else str(role),
        tokens.c.agency: agency,
        tokens.c.relying_party: relying_party,
        tokens.c.subject_id: subject_id,
        tokens.c.jurisdiction: jurisdiction,
        tokens.c.label: label,
    }
    for column, value in exact.items():
        if value is not None:
            query = query.where(column == value)
    if hash_prefix is not None:
        query = query.where(tokens.c.token_hash.startswith(hash_prefix.lower(), autoescape=True))
    if live_only:
        query = query.where(tokens.c.revoked_at.is_(None))
    shown = [name for name in TokenInfo.__dataclass_fields__ if name != "hash_prefix"]
    return [
        TokenInfo(hash_prefix=row.token_hash[:HASH_SHOWN], **{name: row._mapping[name] for name in shown})
        for row in conn.execute(query)
    ]


def resolve_token_ref(conn: Connection, ref: str) -> TokenInfo:
    """The one token ``ref`` names: its id, ``sha256:`` and at least 8 hex digits of its hash
    (as ``credo token list`` shows it), or the token itself."""
    found: list[TokenInfo]
    if ref.isdigit():
        found = find_tokens(conn, token_id=int(ref))
    elif ref.startswith(TOKEN_PREFIX):
        found = find_tokens(conn, token=ref)
    elif match := HASH_REF.match(ref.lower()):
        found = find_tokens(conn, hash_prefix=match.group(1))
        if len(found) > 1:
            ids = ", ".join(str(t.id) for t in found)
            raise AccessError(f"token: {ref} matches tokens {ids}; give more of the hash or the id")
    else:
        raise AccessError(
            f"token: expected an id, sha256:<at least 8 hex digits of its hash> or the token, got {ref!r}"
        )
    if not found:
        raise AccessError(f"token: no token {ref}")
    return found[0]


def revoke_tokens(conn: Connection, token_ids: Sequence[int], *, by: str, reason: str = "") -> list[int]:
    """Revoke each live token of ``token_ids`` and record who did it and why.

    Returns the ids revoked now (a token revoked before is left as it was).
    Takes effect with the transaction: the next request with the token is a 401.
    """
    now = datetime.now(UTC)
    revoked = []
    for token_id in token_ids:
        result = conn.execute(
            update(tokens)
            .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if result.rowcount == 1:
            revoked.append(token_id)
    if revoked:
        conn.execute(
            insert(token_revocations),
            [{"token_id": i, "revoked_at": now, "revoked_by": by, "reason": reason} for i in revoked],
        )
    return revoked


def revoke_token(conn: Connection, token_id: int, *, by: str = "", reason: str = "") -> bool:
    """Revoke one token; ``False`` when it does not exist or was revoked before."""
    return bool(revoke_tokens(conn, [token_id], by=by, reason=reason))
