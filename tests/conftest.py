"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from events.clock import FakeClock
from tests.servers import fresh_postgres_database

# Fixture modules shared by several test files (registered here, so pytest rewrites their
# asserts before any test module imports them).
pytest_plugins = ["tests.http_fixtures"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped after it."""
    with fresh_postgres_database() as url:
        yield url
