"""Fixtures for IMAP tests: one real Dovecot per test session, a fresh user per test.

Load with ``pytest_plugins = ["tests.conftest_imap"]`` in a test module. The session's
Dovecot serves plain IMAP and STARTTLS on ``dovecot.port`` and implicit TLS on
``dovecot.tls_port``, with a throwaway certificate authority (``tests.tls_certs``) that
``mail_settings.ca_file`` trusts; it says "Still here" in IDLE every second.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from actors.mail.settings import EmailSettings
from config.settings import MailSettings
from tests.dovecot import Dovecot, imap_settings_for, new_practice_engine
from tests.tls_certs import CertificateSet, make_certificates

_users = itertools.count(1)


@pytest.fixture(scope="session")
def imap_certs(tmp_path_factory: pytest.TempPathFactory) -> CertificateSet:
    """The session's throwaway authority and Dovecot's certificate for 127.0.0.1."""
    return make_certificates(tmp_path_factory.mktemp("imap-pki"))


@pytest.fixture(scope="session")
def dovecot(
    tmp_path_factory: pytest.TempPathFactory, imap_certs: CertificateSet
) -> Iterator[Dovecot]:
    """A Dovecot for the whole test session (plain, STARTTLS and TLS)."""
    server = Dovecot(tmp_path_factory.mktemp("dovecot"), certs=imap_certs, idle_notify_seconds=1)
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def own_dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A Dovecot of this test's own (plain IMAP), for tests that stop or start it."""
    server = Dovecot(tmp_path / "own-dovecot", idle_notify_seconds=1)
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def imap_user(dovecot: Dovecot) -> str:
    """A user of its own on the session's Dovecot, password ``pw-<user>``."""
    user = f"user{next(_users)}"
    dovecot.add_user(user, f"pw-{user}")
    return user


@pytest.fixture
def mail_settings(imap_certs: CertificateSet) -> MailSettings:
    """``[mail]`` with short timeouts, the test authority trusted, poison limit 3."""
    return MailSettings(
        outbox_poll_seconds=5.0,
        outbox_batch=50,
        inbox_poll_seconds=30.0,
        io_timeout_seconds=10.0,
        ca_file=str(imap_certs.ca_cert),
        poison_limit=3,
    )


@pytest.fixture
def imap_settings(dovecot: Dovecot, imap_user: str) -> EmailSettings:
    """Plain IMAP settings for this test's user, folder INBOX, keep after import."""
    return imap_settings_for(dovecot, imap_user)


@pytest.fixture
def inbox_engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite practice database, incarnation 1 claimed."""
    engine = new_practice_engine(f"sqlite:///{tmp_path / 'practice.sqlite3'}")
    try:
        yield engine
    finally:
        engine.dispose()
