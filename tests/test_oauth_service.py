"""The running service (the supervision tree of ``serve``, in process) signs in with the
authority its ``[oauth]`` keys name: a queued row is sent over AUTH XOAUTH2 and mail is
imported from Dovecot's ``oauth2`` passdb, both with no change but the configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from actors.mail.settings import EmailSettings
from actors.practice_db import make_engine
from actors.practice_schema import (
    SINGLE_ROW_ID,
    email_messages,
    email_settings,
    init_practice_database,
)
from config import load_settings
from supervisor.service import start_tree, stop_tree
from tests.dovecot import Dovecot, imap_settings_for, make_message
from tests.mail_helpers import queue_row, read_row, settings_for, wait_until
from tests.oauth_servers import OAuthAuthority, sign_in_settings
from tests.smtp_servers import RecordingSmtpServer
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_mail"]

USER = "reception"


@pytest.fixture
def authority(certs: CertificateSet) -> Iterator[OAuthAuthority]:
    with OAuthAuthority(certs) as started:
        yield started


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'practices' / 'Smile.sqlite3'}"
    (tmp_path / "practices").mkdir()
    init_practice_database(url, practice_name="Smile Dental")
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_the_service_sends_and_imports_signed_in_with_the_configured_authority(
    tmp_path: Path, certs: CertificateSet, authority: OAuthAuthority, practice: Engine
) -> None:
    dovecot = Dovecot(tmp_path / "dovecot", introspection_url=authority.introspection_url)
    dovecot.start()
    dovecot.add_user(USER, "set-up-only")
    dovecot.append(USER, make_message("From a patient", message_id="<patient@test>"))
    try:
        with RecordingSmtpServer("starttls", certs, oauth=authority) as smtp:
            smtp_part = dataclasses.asdict(settings_for(smtp, smtp_auth="oauth2"))
            imap = imap_settings_for(dovecot, USER, imap_auth="oauth2", imap_password="")
            imap_part = {k: v for k, v in dataclasses.asdict(imap).items() if k.startswith("imap")}
            columns = sign_in_settings(authority, "microsoft-app", USER)
            with practice.begin() as conn:
                conn.execute(
                    update(email_settings)
                    .where(email_settings.c.id == SINGLE_ROW_ID)
                    .values(
                        **dataclasses.asdict(EmailSettings(**{**smtp_part, **imap_part, **columns}))
                    )
                )
            row_id = queue_row(practice)
            settings = load_settings(
                environ={},
                overrides={
                    "service.event_store": f"sqlite:///{tmp_path / 'events.sqlite3'}",
                    "databases.server_url": f"sqlite:///{tmp_path / 'practices'}",
                    "health.checkin_seconds": 3.0,
                    "mail.io_timeout_seconds": 3.0,
                    "mail.ca_file": str(certs.ca_cert),
                    "oauth.microsoft_authority": authority.microsoft_authority,
                    "oauth.ca_file": authority.ca_cert,
                    "http.listen": "127.0.0.1:0",
                },
            )
            tree = start_tree(settings)
            try:
                wait_until(
                    lambda: read_row(practice, row_id)["status"] == "sent", "the row sent", 30
                )
                wait_until(lambda: _imported(practice) == ["<patient@test>"], "the import", 30)
            finally:
                stop_tree(tree, "test over")
            assert [m.authenticated_as for m in smtp.messages] == [USER]
    finally:
        dovecot.remove()


def _imported(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        found = conn.execute(
            select(email_messages.c.message_id).where(email_messages.c.folder == "inbox")
        ).scalars()
        return [str(m) for m in found]
