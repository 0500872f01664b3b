"""Populations shared by the simulate tests: generated once per session (they are pure)."""

from __future__ import annotations

from datetime import date

import pytest

from credo.catalog.registry import Registry
from credo.simulate.population import Params, Population, generate

END = date(2025, 6, 30)


@pytest.fixture(scope="session")
def small(catalogs: Registry) -> Population:
    """About 500 records: small enough to ingest in every test database."""
    return generate(catalogs, Params(subjects=1500, years=3, seed=12, end=END))


@pytest.fixture(scope="session")
def large(catalogs: Registry) -> Population:
    """About 20,000 records: enough for the rates to settle."""
    return generate(catalogs, Params(subjects=40_000, years=4, seed=5, end=END))
