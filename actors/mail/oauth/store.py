"""Writing a replaced refresh token back to the practice database: the one place that
does. The caller encrypts it first (``Secrets.encrypt_for_storage``, as ``MailWork`` does)."""

from __future__ import annotations

from sqlalchemy import Connection, Update, update

from actors.practice_schema import SINGLE_ROW_ID, email_settings
from actors.statements import statement


@statement("oauth.save_refresh_token", "0.AAB-refresh-token")
def _save(token: str) -> Update:
    return (
        update(email_settings)
        .where(email_settings.c.id == SINGLE_ROW_ID)
        .values(oauth_refresh_token=token)
    )


def save_refresh_token(conn: Connection, token: str) -> None:
    """Store ``token`` (in the form to store: ``enc:v1:...``) as
    ``email_settings.oauth_refresh_token`` (row id 1), in the caller's transaction."""
    conn.execute(_save(token))
