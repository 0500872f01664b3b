"""Token authentication answered from memory for at most ``token_cache_seconds``."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from fastapi.testclient import TestClient

from credo.access.services import Principal, Role, authenticate, create_token, revoke_token
from credo.api.app import create_app
from credo.api.deps import TokenCache, shared_load
from credo.runtime import Runtime


def _agency(runtime: Runtime) -> tuple[str, int]:
    with runtime.db.begin() as conn:
        token = create_token(conn, "agency", agency="CN-ZJ-HZ-TP")
    with runtime.db.read() as conn:
        principal = authenticate(conn, token)
    assert principal is not None
    return token, principal.token_id


def test_a_revoked_token_is_refused_within_token_cache_seconds(runtime: Runtime) -> None:
    now = [100.0]
    app = create_app(runtime)
    app.state.token_cache = TokenCache(1.0, clock=lambda: now[0])
    client = TestClient(app)
    token, token_id = _agency(runtime)

    def status() -> int:
        return client.get("/api/v1/quarantine", headers={"Authorization": f"Bearer {token}"}).status_code

    assert status() == 200  # read from the database, kept for a second
    with runtime.db.begin() as conn:
        assert revoke_token(conn, token_id)
    now[0] += 0.9
    assert status() == 200  # answered from memory: no database read within the second
    now[0] += 0.1
    assert status() == 401  # a second after the read: read again, and refused
    now[0] += 5
    assert status() == 401  # a refused token is never kept


def test_with_token_cache_seconds_0_a_revocation_is_a_401_at_once(runtime: Runtime) -> None:
    settings = runtime.settings.replace(token_cache_seconds=0)
    client = TestClient(create_app(Runtime(settings=settings, db=runtime.db, catalogs=runtime.catalogs)))
    token, token_id = _agency(runtime)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/quarantine", headers=headers).status_code == 200
    with runtime.db.begin() as conn:
        assert revoke_token(conn, token_id)
    assert client.get("/api/v1/quarantine", headers=headers).status_code == 401


def test_the_token_cache_is_bounded() -> None:
    cache = TokenCache(60.0, size=3, clock=lambda: 0.0)
    for i in range(5):
        cache.put(f"h{i}", Principal(i, Role.AUDITOR), 0.0)
    assert len(cache.entries) <= 3 and cache.get("h4") is not None


def test_requests_that_find_an_entry_expired_wait_for_one_read() -> None:
    reads = 0

    async def read() -> str:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return "principal"

    async def many() -> list[str]:
        loading: dict[Hashable, asyncio.Future[str]] = {}
        found = await asyncio.gather(*(shared_load(loading, "digest", read) for _ in range(32)))
        assert not loading  # nothing left behind
        return found

    assert asyncio.run(many()) == ["principal"] * 32
    assert reads == 1
