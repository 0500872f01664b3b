"""Tokens: shown once, stored as hashes, bound to one principal."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from credo.access.services import AccessError, Role, authenticate, create_token, hash_token, revoke_token
from credo.store.db import Database
from credo.store.tables import tokens


def test_token_is_stored_only_as_its_hash(db: Database) -> None:
    with db.begin() as conn:
        token = create_token(conn, "agency", agency="CN-SPC")
        stored = conn.execute(select(tokens.c.token_hash)).scalars().all()
    assert token not in stored
    assert hash_token(token) in stored


def test_token_authenticates_as_its_principal_until_revoked(db: Database) -> None:
    with db.begin() as conn:
        token = create_token(conn, Role.REVIEWER, jurisdiction="CN-ZJ-YW", label="clerk")
        principal = authenticate(conn, token)
        assert principal is not None
        assert (principal.role, principal.jurisdiction, principal.agency) == (Role.REVIEWER, "CN-ZJ-YW", None)
        assert authenticate(conn, token + "x") is None
        assert revoke_token(conn, principal.token_id)
        assert authenticate(conn, token) is None


@pytest.mark.parametrize(
    ("role", "kwargs", "message"),
    [
        ("agency", {}, "agency: required for role agency"),
        ("relying_party", {}, "relying_party: required"),
        ("subject", {}, "subject_id: required"),
        ("reviewer", {}, "jurisdiction: required"),
        ("auditor", {"agency": "CN-SPC"}, "agency: not allowed for role auditor"),
        ("agency", {"agency": "CN-SPC", "subject_id": 1}, "subject_id: not allowed"),
        ("reviewer", {"jurisdiction": "CN", "subject_id": 1}, "subject_id: not allowed"),
        ("wizard", {}, "role: must be one of"),
    ],
)
def test_token_binding_must_fit_the_role(
    db: Database, role: str, kwargs: dict[str, object], message: str
) -> None:
    with db.begin() as conn, pytest.raises(AccessError, match=message):
        create_token(conn, role, **kwargs)  # type: ignore[arg-type]


def test_a_reviewer_may_belong_to_an_agency(db: Database) -> None:
    with db.begin() as conn:
        token = create_token(conn, "reviewer", jurisdiction="CN", agency="CN-SPC")
        principal = authenticate(conn, token)
    assert principal is not None and principal.agency == "CN-SPC"
