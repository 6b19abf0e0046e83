"""Writing a replaced refresh token back to the practice database: the one place that
does (the encryption of secret columns is applied here when it lands)."""

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
    """Store ``token`` as ``email_settings.oauth_refresh_token`` (row id 1), in the
    caller's transaction. Plain text for now."""
    conn.execute(_save(token))
