"""The secret columns of ``email_settings`` as stored: encrypted on the way in, decrypted on
the way out, with the host's keys (``config.secret_box``, ``config.key_file``).

``Secrets`` is the one door: the service holds one (in ``MailDeps``) over its key file,
the wizard and the demo make one with ``Secrets.for_writing``. Everyone who writes a secret
column writes ``encrypt_for_storage(column, plain)``'s result (a rotated OAuth refresh
token too); everyone who reads ``email_settings`` for mail work reads through ``open``.
Plain text written by older practice software is read as it is; an empty value stays
empty (there is no secret in it, and "no password" must stay recognisable).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from actors.mail.settings import SECRET_FIELDS, EmailSettings
from config.key_file import KeyFile, KeyFileError, ensure_key_file
from config.secret_box import PREFIX, KeyRing, SecretError, decrypt, encrypt, is_encrypted

SECRET_COMPONENTS = {
    "smtp_password": "smtp",
    "imap_password": "imap",
    "sms_password": "sms",
}
"""The self-test component whose set-up a secret column belongs to (OAuth's: by use)."""

_WHAT = {
    "smtp_password": "SMTP password",
    "imap_password": "IMAP password",
    "sms_password": "SMS gateway password",
    "oauth_client_secret": "sign-in client secret",
    "oauth_refresh_token": "sign-in refresh token",
}


STORED_MAX = 500
"""The longest stored value the contract's secret columns hold (``Unicode(500)``); a
password column is the tightest, the two OAuth columns are long text."""
_LONG_COLUMNS = frozenset({"oauth_client_secret", "oauth_refresh_token"})


def stored_length(plain: str) -> int:
    """How long ``plain`` is once encrypted: ``enc:v1:`` and base64url of 32 + its bytes."""
    raw = 32 + len(plain.encode("utf-8"))
    return len(PREFIX) + (raw * 4 + 2) // 3


class SecretUnreadable(SecretError):
    """A secret column of ``email_settings`` cannot be decrypted; ``column`` says which and
    ``component`` which part of the self-test it belongs to. ``str()`` is one line."""

    def __init__(self, message: str, column: str, component: str) -> None:
        super().__init__(message)
        self.column = column
        self.component = component


def component_of(column: str, settings: EmailSettings) -> str:
    """The component (``smtp``/``imap``/``sms``) that needs ``column``."""
    if column in SECRET_COMPONENTS:
        return SECRET_COMPONENTS[column]
    return "imap" if settings.imap_auth == "oauth2" and settings.smtp_auth != "oauth2" else "smtp"


def what_to_do(db: str) -> str:
    """The advice for a secret that cannot be decrypted."""
    return (
        f"enter it again with the Email Setup Wizard (email-service setup --db {db}), "
        "or restore the key file it was saved with (service.key_file)"
    )


class Secrets:
    """Encrypts and decrypts secret columns with the keys ``keys()`` gives (read each time,
    so a rotated or restored key file is used at once); ``writing_keys()``, when given,
    for encrypting (it may make the key file on first use)."""

    def __init__(
        self, keys: Callable[[], KeyRing], writing_keys: Callable[[], KeyRing] | None = None
    ) -> None:
        self._keys = keys
        self._writing_keys = writing_keys or keys

    @classmethod
    def for_service(cls, key_file: Path) -> Secrets:
        """The service's: the key file is watched, never created; a missing or unreadable
        one makes every encrypted value unreadable, with the reason."""
        return cls(KeyFile(key_file).ring)

    @classmethod
    def for_writing(cls, key_file: Path) -> Secrets:
        """The wizard's and the demo's: the key file is created (0600) when it is missing.
        Raises ``KeyFileError`` (one line) for one that cannot be read or made."""
        ensure_key_file(key_file)  # made now, so a fault is told before any question

        def keys() -> KeyRing:
            # Read again at each use: a rotation that finished meanwhile dropped the key
            # read at the start, and a value saved with it would be lost.
            try:
                return ensure_key_file(key_file)[0]
            except KeyFileError as exc:
                return KeyRing(problem=str(exc))

        return cls(keys)

    def ring(self) -> KeyRing:
        """The keys now."""
        return self._keys()

    def encrypt_for_storage(self, column: str, plain: str) -> str:
        """``plain`` as ``column`` should be stored: ``enc:v1:...`` with the current key;
        "" stays "", a value already encrypted stays as it is. Raises ``SecretError``
        when there is no key."""
        if not plain or is_encrypted(plain):
            return plain
        if column not in _LONG_COLUMNS and stored_length(plain) > STORED_MAX:
            most = (STORED_MAX - len(PREFIX)) * 3 // 4 - 32
            raise SecretError(
                f"the {_WHAT.get(column, column)} is too long to save encrypted "
                f"(at most {most} bytes)"
            )
        ring = self._writing_keys()
        if ring.current is None:
            raise SecretError(f"cannot encrypt email_settings.{column}: {ring.problem}")
        return encrypt(ring.current, column, plain)

    def seal_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (column to value) with every secret column encrypted."""
        return {
            column: self.encrypt_for_storage(column, value)
            if column in SECRET_FIELDS and isinstance(value, str)
            else value
            for column, value in values.items()
        }

    def open(self, settings: EmailSettings, db: str) -> EmailSettings:
        """``settings`` with every secret decrypted. Raises ``SecretUnreadable`` for the
        first one that cannot be (its line names the column and says what to do)."""
        ring: KeyRing | None = None  # read only when a value is encrypted
        plain: dict[str, Any] = {}
        for column in sorted(SECRET_FIELDS):
            stored = getattr(settings, column)
            if not is_encrypted(stored):
                continue
            ring = ring or self._keys()
            try:
                plain[column] = decrypt(ring, column, stored)
            except SecretError as exc:
                raise SecretUnreadable(
                    f"Email is not set up for this practice: the saved {_WHAT[column]} "
                    f"cannot be decrypted ({exc}); {what_to_do(db)}",
                    column,
                    component_of(column, settings),
                ) from None
        return dataclasses.replace(settings, **plain) if plain else settings

    def open_row(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """``row`` with its secrets decrypted; a secret that cannot be is left out (so the
        wizard asks for it again) with one line saying why."""
        ring: KeyRing | None = None
        opened: dict[str, Any] = {}
        problems: list[str] = []
        for column, value in row.items():
            if column in SECRET_FIELDS and isinstance(value, str) and is_encrypted(value):
                ring = ring or self._keys()
                try:
                    value = decrypt(ring, column, value)
                except SecretError as exc:
                    problems.append(f"{exc}; enter it again")
                    continue
            opened[column] = value
        return opened, tuple(problems)


NO_KEYS = Secrets(lambda: KeyRing(problem="the service was given no key file"))
"""Secrets without a key: plain text reads, every encrypted value is unreadable."""
