"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.mail.stored_secrets import Secrets
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


KEY_FILE_VARIABLE = "EMAIL_SERVICE_SERVICE_KEY_FILE"


@pytest.fixture(autouse=True)
def _key_file_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test's commands keep their key file (``service.key_file``) in a folder of
    their own, never in ``var/`` of the working directory."""
    before = os.environ.get(KEY_FILE_VARIABLE)
    os.environ[KEY_FILE_VARIABLE] = str(tmp_path_factory.mktemp("key") / "secret.key")
    yield
    if before is None:
        os.environ.pop(KEY_FILE_VARIABLE, None)
    else:
        os.environ[KEY_FILE_VARIABLE] = before


def host_secrets() -> Secrets:
    """The ``Secrets`` of the key file this test's commands use (made when missing)."""
    return Secrets.for_writing(Path(os.environ[KEY_FILE_VARIABLE]))
