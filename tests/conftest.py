"""Shared fixtures: every storage test runs on SQLite and on a real PostgreSQL.

Each database is migrated once per test session; each test runs inside an
outer transaction that is rolled back at its end, and every write the code
under test commits becomes a savepoint (``Database.bound``). Tests stay
independent and never see each other's rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import POSTGRES_URL, postgres_schema
from sqlalchemy import Engine

from credo.catalog.registry import Registry, load_catalogs
from credo.runtime import Runtime, sync_catalogs
from credo.settings import PROJECT_ROOT, Settings, load_settings
from credo.store import migrate
from credo.store.db import Database, make_engine

CATALOGS = PROJECT_ROOT / "catalogs"


def _postgres_engine(schema: str) -> Engine:
    return make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "restarts_postgres: stops and starts the PostgreSQL cluster; runs last in the session"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart PostgreSQL go last, when nothing else of the session uses it any more."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_postgres") is not None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under pytest-xdist, "last" is only last on one worker: the others still use PostgreSQL."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if item.get_closest_marker("restarts_postgres") and workers > 1:
        pytest.fail(
            "restarts PostgreSQL, which other pytest-xdist workers are using: run it alone, "
            "without -n (`make pytest` runs -m 'not restarts_postgres' on every CPU, then this)"
        )


@pytest.fixture(scope="session")
def catalogs() -> Registry:
    registry, errors = load_catalogs([CATALOGS])
    assert registry is not None, errors
    return registry


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory, catalogs: Registry) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'credo.db'}")
    db = Database(engine)
    with db.begin() as conn:
        migrate.upgrade(conn)
        sync_catalogs(conn, catalogs)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgresql_engine(catalogs: Registry) -> Iterator[Engine]:
    with postgres_schema() as schema:
        engine = _postgres_engine(schema)
        with Database(engine).begin() as conn:
            migrate.upgrade(conn)
            sync_catalogs(conn, catalogs)
        yield engine
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated registry database, rolled back after the test."""
    engine: Engine = request.getfixturevalue(f"{request.param}_engine")
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield Database.bound(conn)
        finally:
            outer.rollback()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # No background clock in tests: they call the scheduler's tick themselves.
    return load_settings({}).replace(signing_key_path=tmp_path / "keys" / "log.key", scheduler_interval=0)


@pytest.fixture
def runtime(db: Database, catalogs: Registry, settings: Settings) -> Runtime:
    return Runtime(settings=settings, db=db, catalogs=catalogs)
