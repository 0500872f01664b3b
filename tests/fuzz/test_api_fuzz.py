"""Schemathesis over the OpenAPI document, as every role, on SQLite and PostgreSQL.

Each operation is fuzzed once per role (anonymous, subject, agency,
relying_party, reviewer, auditor, admin) with ``EXAMPLES // 7 + 1``
generated cases each (so at least ``EXAMPLES`` per operation), plus the
coverage phase's boundary cases and the schema's examples for every role;
positive and negative data; a fixed seed. Every default check runs, plus
``problem_details`` (every error is RFC 9457 ``application/problem+json``)
and ``request_validation_agrees_with_schema``.

Two adjustments, narrow and on purpose:

- ``positive_data_acceptance`` also accepts 422 when the *domain* refuses a
  schema-valid request (a consistency proof from 5 to 3, an appeal outside
  its window, an identifier with a wrong check character: rules JSON
  Schema cannot state). ``request_validation_agrees_with_schema`` keeps
  what that check is for: a schema-valid request never fails FastAPI's own
  request validation (whose 422 carries ``errors``).
- ``negative_data_rejection`` also accepts 413 for a batch or manifest
  over its ``maxItems``: "too large" is the truthful answer.

``CREDO_FUZZ_EXAMPLES`` raises the count (``make fuzz`` runs 1,000).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fuzz.registry import ROLES, DeferredApp, Seeded, fresh_database, openapi_document, seeded_registry
from hypothesis import HealthCheck, settings

from credo.api.app import create_app
from credo.catalog.registry import Registry

SEED = 20261126
EXAMPLES = int(os.environ.get("CREDO_FUZZ_EXAMPLES", "100"))

APP = DeferredApp()
schema = schemathesis.openapi.from_dict(openapi_document())
schema.app = APP
schema.config.seed = SEED
checks = schema.config.checks
checks.positive_data_acceptance.expected_statuses = [
    *checks.positive_data_acceptance.expected_statuses,
    "422",
]
checks.negative_data_rejection.expected_statuses = [*checks.negative_data_rejection.expected_statuses, "413"]


@schemathesis.check
def problem_details(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """Every error is an RFC 9457 problem: its media type, and type, title and status in the body."""
    if response.status_code < 400:
        return None
    media_type = response.headers.get("content-type", [""])[0].split(";")[0]
    assert media_type == "application/problem+json", f"{response.status_code} sent as {media_type!r}"
    body = response.json()
    assert isinstance(body, dict) and {"type", "title", "status"} <= body.keys(), body
    assert body["status"] == response.status_code, body
    return None


@schemathesis.check
def request_validation_agrees_with_schema(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """A schema-valid request passes FastAPI's request validation (its 422 carries ``errors``)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    body = response.json()
    assert "errors" not in body, f"schema-valid request failed request validation: {body['detail']}"
    return None


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, catalogs: Registry
) -> Iterator[Seeded]:
    """A fresh registry of each kind (PostgreSQL: a schema of its own in the test database)."""
    with fresh_database(request, request.param) as url:
        seeded = seeded_registry(tmp_path_factory.mktemp("fuzz"), catalogs, database_url=url)
        yield seeded
        seeded.runtime.db.dispose()


@pytest.fixture(scope="module")
def app(fuzz_registry: Seeded) -> Iterator[FastAPI]:
    target = create_app(fuzz_registry.runtime)
    with TestClient(target):  # the app's lifespan, once: its background writer and index keeper
        APP.target = target
        yield target
        APP.target = None


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES // len(ROLES) + 1,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(case: schemathesis.Case, role: str, fuzz_registry: Seeded, app: FastAPI) -> None:
    case.call_and_validate(
        headers=fuzz_registry.headers(role),
        additional_checks=[problem_details, request_validation_agrees_with_schema],
    )
