"""Tokens: shown once, stored as hashes, bound to one principal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, text

from credo.access.services import (
    AccessError,
    Role,
    authenticate,
    create_token,
    find_tokens,
    hash_token,
    resolve_token_ref,
    revoke_token,
    revoke_tokens,
)
from credo.ids import parse_subject_ref
from credo.ledger.subjects import subject_number
from credo.store import migrate
from credo.store.db import Database
from credo.store.tables import token_revocations, tokens


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


def test_a_revocation_is_recorded_once_with_who_and_why(db: Database) -> None:
    with db.begin() as conn:
        first = create_token(conn, "agency", agency="CN-SPC")
        second = create_token(conn, "agency", agency="CN-SPC")
        other = create_token(conn, "auditor", label="inspector")
        ids = [t.id for t in find_tokens(conn, agency="CN-SPC")]
        assert revoke_tokens(conn, ids, by="cli:ops", reason="leaked") == ids
        assert revoke_tokens(conn, ids, by="cli:ops") == []  # the first revocation stands
        assert not revoke_token(conn, 10**9)
        assert [authenticate(conn, t) is None for t in (first, second, other)] == [True, True, False]
        rows = conn.execute(select(token_revocations).order_by(token_revocations.c.token_id)).all()
        assert [(r.token_id, r.revoked_by, r.reason) for r in rows] == [(i, "cli:ops", "leaked") for i in ids]
        shown = find_tokens(conn, agency="CN-SPC")
        assert {(t.revoked_by, t.reason) for t in shown} == {("cli:ops", "leaked")}
        assert all(t.revoked_at is not None for t in shown)
        assert [t.label for t in find_tokens(conn, live_only=True)] == ["inspector"]


def test_a_token_is_named_by_id_hash_prefix_or_itself(db: Database) -> None:
    with db.begin() as conn:
        token = create_token(conn, "subject", subject_id=_a_subject(conn))
        (info,) = find_tokens(conn, token=token)
        assert info.subject == "person:11010519491231002X"
        assert info.hash_prefix == hash_token(token)[:12]
        assert resolve_token_ref(conn, str(info.id)) == info
        assert resolve_token_ref(conn, token) == info
        assert resolve_token_ref(conn, f"sha256:{hash_token(token)[:8].upper()}") == info
        for ref, message in [
            ("sha256:1234567", "expected an id"),  # too short to name one token
            ("credo_nope", "no token credo_nope"),
            ("tok", "expected an id"),
            ("999999999", "no token"),
        ]:
            with pytest.raises(AccessError, match=message):
                resolve_token_ref(conn, ref)


def test_a_hash_prefix_naming_two_tokens_is_refused(db: Database) -> None:
    with db.begin() as conn:
        for n in range(2):
            conn.execute(
                tokens.insert().values(
                    token_hash=f"abcdef01{n}" + "0" * 55,
                    role="auditor",
                    label="",
                    created_at=datetime.now(UTC),
                )
            )
        with pytest.raises(AccessError, match=r"matches tokens .*, .*give more of the hash"):
            resolve_token_ref(conn, "sha256:abcdef01")


def _a_subject(conn: Connection) -> int:
    number = subject_number(conn, parse_subject_ref("person:11010519491231002X"), create=True)
    assert number is not None
    return number


def test_migration_0007_records_tokens_revoked_before_it(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        with db.begin() as conn:
            migrate.upgrade(conn, "0006")
            create_token(conn, "auditor", label="kept")
            conn.execute(
                text(
                    "INSERT INTO tokens (token_hash, role, label, created_at, revoked_at) "
                    "VALUES ('h', 'auditor', 'gone', '2025-01-01 00:00:00', '2025-02-01 00:00:00')"
                )
            )
            migrate.upgrade(conn)
            rows = conn.execute(select(token_revocations.c.revoked_by, tokens.c.label).join(tokens)).all()
        assert [tuple(r) for r in rows] == [("before 0007", "gone")]
    finally:
        db.dispose()
