"""A practice's mail set-up: the ``email_settings`` row (id 1) as one frozen value.

``EmailSettings`` holds secrets (``smtp_password``, ``imap_password``, ``sms_password``):
its ``repr`` masks them, and nothing may put them in an event, a log line or a diagnostic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text

from actors.mail.outbox_row import parse_time
from actors.practice_schema import SINGLE_ROW_ID, email_settings
from actors.statements import constant, driver_form

SECURITY_CHOICES = ("none", "starttls", "tls")
"""The values of ``smtp_security`` and ``imap_security``."""

SECRET_FIELDS = frozenset(
    {"smtp_password", "imap_password", "sms_password", "oauth_client_secret", "oauth_refresh_token"}
)
"""The secret columns (CONTRACT.md): plain text or ``enc:v1:...``; never shown anywhere."""

SMTP_AUTH_CHOICES = ("password", "oauth2", "none")
"""``smtp_auth``: a password (the default; no AUTH when there is no user name), OAuth 2.0
sign-in, or never AUTH."""
IMAP_AUTH_CHOICES = ("password", "oauth2")
OAUTH_PROVIDERS = ("microsoft", "google")
OAUTH_FLOWS = ("app", "delegated")

# Words compared case-insensitively: the practice software may write "OAuth2" or "Microsoft".
_WORD_CHOICES: dict[str, tuple[str, ...]] = {
    "smtp_auth": SMTP_AUTH_CHOICES,
    "imap_auth": IMAP_AUTH_CHOICES,
    "oauth_provider": ("", *OAUTH_PROVIDERS),
    "oauth_flow": ("", *OAUTH_FLOWS),
}


class EmailSettingsError(ValueError):
    """The practice's ``email_settings`` row cannot be used; the message says which column."""


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """One practice's ``email_settings`` row, checked. ``None`` text columns read as ""."""

    sending_enabled: bool = True
    send_window: str = ""
    max_per_minute: int = 30
    from_address: str = ""
    from_name: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    imap_enabled: bool = False
    imap_host: str = ""
    imap_port: int = 993
    imap_security: str = "tls"
    imap_username: str = ""
    imap_password: str = field(default="", repr=False)
    imap_folder: str = "INBOX"
    imap_after_import: str = "keep"
    sms_enabled: bool = False
    sms_gateway: str = ""
    sms_username: str = ""
    sms_password: str = field(default="", repr=False)
    sms_from: str = ""
    sms_region: str = ""
    smtp_auth: str = "password"
    imap_auth: str = "password"
    oauth_provider: str = ""
    oauth_flow: str = ""
    oauth_tenant: str = ""
    oauth_client_id: str = ""
    oauth_client_secret: str = field(default="", repr=False)
    oauth_refresh_token: str = field(default="", repr=False)
    oauth_account: str = ""
    oauth_expires_at: datetime | None = None

    @property
    def uses_oauth(self) -> bool:
        """Whether SMTP or IMAP signs in with OAuth 2.0 rather than a password."""
        return self.smtp_auth == "oauth2" or self.imap_auth == "oauth2"

    @property
    def smtp_configured(self) -> bool:
        """Whether there is a mail server to send through at all."""
        return bool(self.smtp_host)

    @property
    def after_import_folder(self) -> str | None:
        """The folder of ``imap_after_import = move:FOLDER``, else None."""
        action, _, folder = self.imap_after_import.partition(":")
        return folder if action == "move" else None


def settings_from_row(row: dict[str, Any]) -> EmailSettings:
    """Return the settings in ``row`` (column name to value), checked. Pure.

    Missing columns take their defaults; NULL text reads as "". Raises
    ``EmailSettingsError`` naming the column for a security word that is not one of
    ``SECURITY_CHOICES``, a port outside 1..65535, a negative ``max_per_minute`` or an
    ``imap_after_import`` that is not ``keep``, ``delete`` or ``move:FOLDER``.
    """
    values: dict[str, Any] = {}
    for f in fields(EmailSettings):
        if f.name not in row or row[f.name] is None:
            continue
        value = row[f.name]
        if f.name == "oauth_expires_at":
            # SQLite hands the driver's text back; the practice software may write any
            # common format. An unreadable expiry is a warning's loss, not a reason to stop.
            value = parse_time(value)
        elif f.name in _WORD_CHOICES:
            value = str(value).strip().lower()
            if not value and f.name in ("smtp_auth", "imap_auth"):
                continue  # "" is the default, as NULL is
        elif isinstance(f.default, bool):
            value = bool(value)
        elif isinstance(f.default, int):
            value = int(value)
        else:
            value = str(value).strip() if f.name not in SECRET_FIELDS else str(value)
        values[f.name] = value
    settings = EmailSettings(**values)
    for column in ("smtp_security", "imap_security"):
        if getattr(settings, column) not in SECURITY_CHOICES:
            raise EmailSettingsError(
                f"email_settings.{column} is {getattr(settings, column)!r}; "
                f"expected one of {', '.join(SECURITY_CHOICES)}"
            )
    for column, choices in _WORD_CHOICES.items():
        if getattr(settings, column) not in choices:
            raise EmailSettingsError(
                f"email_settings.{column} is {getattr(settings, column)!r}; "
                f"expected one of {', '.join(c for c in choices if c)}"
            )
    for column in ("smtp_port", "imap_port"):
        if not 1 <= getattr(settings, column) <= 65535:
            raise EmailSettingsError(
                f"email_settings.{column} is {getattr(settings, column)}; expected 1 to 65535"
            )
    if settings.max_per_minute < 0:
        raise EmailSettingsError(
            f"email_settings.max_per_minute is {settings.max_per_minute}; expected 0 or more"
        )
    action, sep, folder = settings.imap_after_import.partition(":")
    if not (
        (action in ("keep", "delete") and not sep) or (action == "move" and sep and folder.strip())
    ):
        raise EmailSettingsError(
            f"email_settings.imap_after_import is {settings.imap_after_import!r}; "
            "expected keep, delete or move:FOLDER"
        )
    return settings


READ_SETTINGS = constant(
    "settings.read", select(email_settings).where(email_settings.c.id == SINGLE_ROW_ID)
)
constant(
    "settings.read_plain",
    text(f"SELECT * FROM {email_settings.name} WHERE id = {SINGLE_ROW_ID}"),
)


def read_settings(conn: Connection) -> EmailSettings | None:
    """Return the practice's settings (row id 1), or None when there is no such row."""
    row = conn.execute(READ_SETTINGS).first()
    return None if row is None else settings_from_row(dict(row._mapping))


def read_settings_plain(conn: Connection) -> EmailSettings | None:
    """``read_settings`` at the driver's level: no SQLAlchemy types, compiled SQL or result
    processing, none of which a thousand engines should keep for a read made twice a
    minute (``settings_from_row`` turns the driver's values into the right types)."""
    result = conn.exec_driver_sql(*driver_form("settings.read_plain", conn.dialect, {}))
    row = result.fetchone()
    if row is None:
        return None
    return settings_from_row(dict(zip(result.keys(), row, strict=True)))
