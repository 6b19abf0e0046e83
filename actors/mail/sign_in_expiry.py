"""A known sign-in expiry as a diagnostic line: a warning ahead of time, an error once past.

``oauth_expires_at`` (CONTRACT.md) is when the practice's sign-in is known to stop working:
a Microsoft app's client secret's end date, a Google service account key's, or a
delegated sign-in's expected end (a Google refresh token unused for months). From
``WARN_DAYS`` before it, the self-test adds a ``warning`` line to the diagnostics, which
leaves the light steady (a warning is not a failure); once it has passed, an ``error``
line, and the database is not available with that reason. Pure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actors.mail.settings import EmailSettings
from actors.mail.sign_in_words import WIZARD
from events.types import Diagnostic

WARN_DAYS = 14
"""How many days ahead a known expiry is announced."""


def _what(settings: EmailSettings) -> tuple[str, str]:
    """What expires, and what to do about it."""
    if settings.oauth_flow == "app" and settings.oauth_provider == "google":
        return (
            "the Google service account's key",
            "create a new key in the Google Cloud console and enter it in " + WIZARD,
        )
    if settings.oauth_flow == "app":
        return (
            "the Microsoft app's client secret",
            "create a new one (Entra admin centre, App registrations, Certificates & "
            "secrets) and enter it in " + WIZARD,
        )
    who = settings.oauth_account or settings.from_address or "this mailbox"
    provider = "Google" if settings.oauth_provider == "google" else "Microsoft"
    return f"the {provider} sign-in of {who}", f"sign in with {provider} again in {WIZARD}"


def _component(settings: EmailSettings) -> str | None:
    """The component that signs in with OAuth (sending first), or None when none does."""
    if settings.smtp_configured and settings.smtp_auth == "oauth2":
        return "smtp"
    if settings.imap_enabled and settings.imap_auth == "oauth2":
        return "imap"
    return None


def _days(left: timedelta) -> str:
    days = left.days
    if days >= 1:
        return f"in {days} day{'s' if days != 1 else ''}"
    return "within a day"


def expiry_diagnostic(settings: EmailSettings, now: datetime) -> Diagnostic | None:
    """The line ``settings``' known expiry calls for at ``now``, or None. Pure.

    ``now``: aware, or naive UTC (as ``oauth_expires_at`` is read).
    """
    expires = settings.oauth_expires_at
    component = _component(settings)
    if expires is None or component is None:
        return None
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    what, todo = _what(settings)
    when = f"{expires:%Y-%m-%d %H:%M} UTC"
    left = expires - now
    if left <= timedelta(0):
        return Diagnostic(component, "error", f"{what} expired on {when}: {todo}")
    if left <= timedelta(days=WARN_DAYS):
        return Diagnostic(component, "warning", f"{what} expires on {when} ({_days(left)}): {todo}")
    return None
