"""Helpers the tests import by name (``conftest`` is ambiguous: several folders have one).

A test imports from here, never from ``conftest``: which ``conftest`` module Python finds
depends on which tests ran first in the process.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from credo.settings import PROJECT_ROOT
from credo.store.db import make_engine

POSTGRES_URL = os.environ.get("CREDO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_available() -> str | None:
    try:
        engine = make_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        return str(exc).splitlines()[0]
    return None


@contextmanager
def postgres_schema(prefix: str = "credo_test") -> Iterator[str]:
    """A PostgreSQL schema of its own for the block, dropped after it. Skips the test when
    PostgreSQL is unreachable, and fails it under ``CI=true``."""
    problem = _postgres_available()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable under CI=true: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    schema = f"{prefix}_{secrets.token_hex(4)}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def bench_module(name: str) -> Any:
    """``bench/{name}.py``, loaded as a module (the benchmarks are scripts, not a package)."""
    path = PROJECT_ROOT / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
