"""The two ways of reading ``email_settings`` agree on every backend: through SQLAlchemy's
types, and at the driver's level (what the service runs twice a minute per database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from actors.mail.settings import read_settings, read_settings_plain
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
