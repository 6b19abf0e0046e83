"""Reading and saving a practice's ``email_settings`` row (id 1) for the wizard.

``read_row`` returns the row as column values, as stored (or None when the practice
software has not created it); ``read_saved`` returns it with its secrets decrypted, and a
line for each secret that cannot be (left out, so the wizard asks for it again);
``save_settings`` writes every wizard column in one transaction, inserting the row when it
is missing, every secret column encrypted (``actors.mail.stored_secrets``): a password that
older practice software saved as plain text is encrypted by saving it again. Each opens its
own engine and disposes of it. SQLAlchemy's errors are raised as they are (the command line
turns them into one masked line).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, Update, insert, update

from actors.commands_table import WAITING_RESTART, insert_restart
from actors.mail.settings import READ_SETTINGS, EmailSettings
from actors.mail.stored_secrets import Secrets
from actors.practice_db import make_engine
from actors.practice_schema import SINGLE_ROW_ID, email_settings
from actors.statements import statement
from supervisor.setup.draft import as_row

DB_TIMEOUT_SECONDS = 10.0


@statement("setup.save", as_row(EmailSettings()))
def _save(values: dict[str, Any]) -> Update:
    """The settings row's new values."""
    return update(email_settings).where(email_settings.c.id == SINGLE_ROW_ID).values(**values)


@statement("setup.save_first", as_row(EmailSettings()))
def _save_first(values: dict[str, Any]) -> Insert:
    """The settings row, where the database had none."""
    return insert(email_settings).values(id=SINGLE_ROW_ID, **values)


def read_row(url: str) -> dict[str, Any] | None:
    """Return the ``email_settings`` row with id 1 of the database at ``url``, or None."""
    engine = make_engine(url, timeout=DB_TIMEOUT_SECONDS, pooled=False)
    try:
        with engine.connect() as conn:
            row = conn.execute(READ_SETTINGS).first()
    finally:
        engine.dispose()
    return None if row is None else dict(row._mapping)


def read_saved(url: str, secrets: Secrets) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """Return the ``email_settings`` row with id 1, its secrets decrypted (None when there
    is none), and one line per secret that cannot be decrypted (left out of the row)."""
    row = read_row(url)
    if row is None:
        return None, ()
    return secrets.open_row(row)


def save_settings(
    url: str, settings: EmailSettings, secrets: Secrets, requested_by: str = "setup"
) -> None:
    """Write ``settings`` into the row with id 1 (inserting it if missing), every secret
    column encrypted with ``secrets``, and ask the running service to take them up at once,
    in one transaction: either every column changes and the request is queued, or nothing
    happens.

    The request is a ``restart`` row in ``email_service_commands`` (unless one is already
    waiting): the database's mailbox restarts, reads the new settings and tests them at
    once (a person's restart may probe the provider straight away), so a workstation
    sees the result within one check-in interval instead of at the next settings read.
    """
    values = secrets.seal_row(as_row(settings))
    engine = make_engine(url, timeout=DB_TIMEOUT_SECONDS, pooled=False)
    try:
        with engine.begin() as conn:
            changed = conn.execute(_save(values)).rowcount
            if changed == 0:
                conn.execute(_save_first(values))
            if conn.execute(WAITING_RESTART).first() is None:
                conn.execute(insert_restart(requested_by))
    finally:
        engine.dispose()
