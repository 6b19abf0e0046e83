"""The two ways of reading ``email_settings`` agree on every backend: through SQLAlchemy's
types, and at the driver's level (what the service runs twice a minute per database)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from actors.mail.settings import (
    EmailSettingsError,
    read_settings,
    read_settings_plain,
    settings_from_row,
)
from actors.practice_db import make_engine
from actors.practice_schema import SINGLE_ROW_ID, email_settings, init_practice_database
from tests.servers import fresh_database


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(request.param, tmp_path) as url:
        init_practice_database(url, practice_name="Zahnarztpraxis Müller")
        made = make_engine(url)
        try:
            yield made
        finally:
            made.dispose()


def test_the_plain_read_equals_the_typed_read(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(email_settings)
            .where(email_settings.c.id == SINGLE_ROW_ID)
            .values(
                sending_enabled=False,
                max_per_minute=12,
                from_name="Praxis Müller",
                smtp_host="mail.example",
                smtp_port=465,
                smtp_security="tls",
                smtp_password="s3cret ü",
                imap_enabled=True,
                imap_after_import="move:Archiv",
            )
        )
    with engine.connect() as conn:
        typed = read_settings(conn)
        plain = read_settings_plain(conn)
    assert plain == typed
    assert plain is not None
    assert (plain.sending_enabled, plain.imap_enabled, plain.smtp_port) == (False, True, 465)


def test_the_sign_in_columns_read_the_same_both_ways(engine: Engine) -> None:
    expires = datetime(2027, 3, 1, 12, 30)
    with engine.begin() as conn:
        conn.execute(
            update(email_settings)
            .where(email_settings.c.id == SINGLE_ROW_ID)
            .values(
                smtp_auth="OAuth2",
                imap_auth="oauth2",
                oauth_provider="Microsoft",
                oauth_flow="app",
                oauth_tenant="0d3f5c2e-0000-4000-8000-000000000001",
                oauth_client_id="client-1",
                oauth_client_secret="x" * 3000,
                oauth_account="reception@practice.example",
                oauth_expires_at=expires,
            )
        )
    with engine.connect() as conn:
        typed = read_settings(conn)
        plain = read_settings_plain(conn)
    assert plain == typed
    assert plain is not None
    assert (plain.smtp_auth, plain.oauth_provider, plain.uses_oauth) == (
        "oauth2",
        "microsoft",
        True,
    )
    assert len(plain.oauth_client_secret) == 3000
    assert plain.oauth_expires_at == expires


def test_no_sign_in_columns_mean_passwords() -> None:
    settings = settings_from_row({"smtp_auth": None, "imap_auth": ""})
    assert (settings.smtp_auth, settings.imap_auth, settings.uses_oauth) == (
        "password",
        "password",
        False,
    )


def test_an_unknown_sign_in_word_names_its_column() -> None:
    with pytest.raises(EmailSettingsError, match=r"email_settings\.smtp_auth is 'kerberos'"):
        settings_from_row({"smtp_auth": "kerberos"})


def test_an_unreadable_expiry_reads_as_unknown() -> None:
    assert settings_from_row({"oauth_expires_at": "next spring"}).oauth_expires_at is None


def test_the_sign_in_secrets_stay_out_of_repr() -> None:
    shown = repr(
        settings_from_row({"oauth_client_secret": "c-s3cr3t", "oauth_refresh_token": "rt-1"})
    )
    assert "c-s3cr3t" not in shown
    assert "rt-1" not in shown
