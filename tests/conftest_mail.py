"""Fixtures for the outbox and SMTP tests (load with ``pytest_plugins``).

Real servers only: aiosmtpd (``tests.smtp_servers``), Postfix's ``smtp-sink``, the fault
proxy, and SQLite practice databases made by ``init_practice_database`` with an
incarnation claimed. Plain helpers are in ``tests.mail_helpers``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.fault_proxy import FaultProxy
from tests.mail_helpers import claimed_engine
from tests.smtp_servers import RecordingSmtpServer, Security, SmtpSinkServer
from tests.tls_certs import CertificateSet, make_certificates


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertificateSet:
    """A throwaway CA and a certificate for localhost/127.0.0.1, for the whole session."""
    return make_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def make_smtp_server(
    certs: CertificateSet,
) -> Iterator[Callable[..., RecordingSmtpServer]]:
    """Start recording SMTP servers (``security``, ``users``); all stopped after the test."""
    started: list[RecordingSmtpServer] = []

    def make(
        security: Security = "none", users: dict[str, str] | None = None
    ) -> RecordingSmtpServer:
        server = RecordingSmtpServer(security, certs, users).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(make_smtp_server: Callable[..., RecordingSmtpServer]) -> RecordingSmtpServer:
    """A recording SMTP server without TLS or AUTH."""
    return make_smtp_server()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSinkServer]:
    """Postfix's smtp-sink: stores each message and never answers the final '.'."""
    with SmtpSinkServer() as sink:
        yield sink


@pytest.fixture
def make_proxy() -> Iterator[Callable[[str, int], FaultProxy]]:
    """Start fault proxies in front of a server; all stopped after the test."""
    started: list[FaultProxy] = []

    def make(host: str, port: int) -> FaultProxy:
        proxy = FaultProxy(host, port).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def outbox_engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite practice database with ``INCARNATION`` claimed."""
    engine = claimed_engine(f"sqlite:///{tmp_path / 'practice.db'}")
    yield engine
    engine.dispose()
