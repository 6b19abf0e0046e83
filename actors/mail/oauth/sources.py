"""The token source a practice's settings call for, kept for the life of the process.

``TokenSources`` (one per process, in the mail work's dependencies) holds one source per
practice database: ``for_settings(db, settings, save)`` returns the kept source while
the sign-in settings are the same (the access token survives a re-read of the settings,
a rebuilt sender, a new incarnation), and a new one when they changed. A refresh token
in the settings that the source never held is a new sign-in (the wizard saved one) and
is taken up (``DelegatedSource.adopt``).

``token_source(settings, ...)`` builds one source without keeping it (the wizard's
connection test).

The provider modules (and msal, google-auth) are imported where a source or an endpoint
is made, not here: a service with no practice signed in with OAuth never loads them
(``actors.mail.oauth``'s docstring).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors.mail.oauth.errors import OAuthError
from actors.mail.oauth.source import DelegatedSource, Fetched, TokenSource
from actors.mail.settings import EmailSettings
from config.settings import OAuthSettings, Settings
from events.clock import Clock, SystemClock

if TYPE_CHECKING:
    from actors.mail.oauth.google import GoogleEndpoint
    from actors.mail.oauth.microsoft import MicrosoftEndpoint

SaveRefreshToken = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class OAuthEndpoints:
    """The providers' addresses (``[oauth]``) and the timeout of every call to them."""

    oauth: OAuthSettings
    timeout: float

    @classmethod
    def for_service(cls, settings: Settings) -> OAuthEndpoints:
        """The service's: ``[oauth]``, and ``mail.io_timeout_seconds`` for every call."""
        return cls(settings.oauth, settings.mail.io_timeout_seconds)

    @property
    def microsoft(self) -> MicrosoftEndpoint:
        from actors.mail.oauth.microsoft import MicrosoftEndpoint  # msal: on first use

        return MicrosoftEndpoint(self.oauth.microsoft_authority, self.oauth.ca_file, self.timeout)

    @property
    def google(self) -> GoogleEndpoint:
        from actors.mail.oauth.google import GoogleEndpoint  # google-auth: on first use

        return GoogleEndpoint(self.oauth.google_token_uri, self.oauth.ca_file, self.timeout)


def sign_in_user(settings: EmailSettings) -> str:
    """The mailbox to sign in as (for SMTP and IMAP alike): ``oauth_account``, else
    ``smtp_username``, else ``imap_username``."""
    return settings.oauth_account or settings.smtp_username or settings.imap_username


def token_source(
    settings: EmailSettings,
    endpoints: OAuthEndpoints,
    *,
    save_refresh_token: SaveRefreshToken | None = None,
    clock: Clock | None = None,
) -> TokenSource:
    """A new token source for ``settings``' provider and flow. Raises ``OAuthError``
    (one line, naming the column) when the sign-in settings are incomplete."""
    # The provider's library only once a practice is signed in with it (the docstring).
    from actors.mail.oauth.google import GoogleDelegatedSource, GoogleServiceAccountSource
    from actors.mail.oauth.microsoft import MicrosoftAppSource, MicrosoftDelegatedSource

    clock = clock or SystemClock()
    margin = endpoints.oauth.refresh_margin_seconds
    mailbox = sign_in_user(settings)
    if not mailbox:
        raise OAuthError(
            "OAuth 2.0 sign-in needs the mailbox to sign in as (oauth_account is empty)"
        )
    if not settings.oauth_client_id and not (
        settings.oauth_provider == "google" and settings.oauth_flow == "app"
    ):
        raise OAuthError("OAuth 2.0 sign-in needs the app's client ID (oauth_client_id is empty)")
    if settings.oauth_provider == "microsoft" and settings.oauth_flow == "app":
        return MicrosoftAppSource(
            endpoints.microsoft,
            tenant=settings.oauth_tenant,
            client_id=settings.oauth_client_id,
            client_secret=settings.oauth_client_secret,
            mailbox=mailbox,
            clock=clock,
            margin=margin,
        )
    if settings.oauth_provider == "microsoft" and settings.oauth_flow == "delegated":
        return MicrosoftDelegatedSource(
            endpoints.microsoft,
            tenant=settings.oauth_tenant,
            client_id=settings.oauth_client_id,
            client_secret=settings.oauth_client_secret,
            refresh_token=settings.oauth_refresh_token,
            mailbox=mailbox,
            save_refresh_token=save_refresh_token,
            clock=clock,
            margin=margin,
        )
    if settings.oauth_provider == "google" and settings.oauth_flow == "delegated":
        return GoogleDelegatedSource(
            endpoints.google,
            client_id=settings.oauth_client_id,
            client_secret=settings.oauth_client_secret,
            refresh_token=settings.oauth_refresh_token,
            mailbox=mailbox,
            save_refresh_token=save_refresh_token,
            clock=clock,
            margin=margin,
        )
    if settings.oauth_provider == "google" and settings.oauth_flow == "app":
        return GoogleServiceAccountSource(
            endpoints.google,
            key_json=settings.oauth_client_secret,
            mailbox=mailbox,
            clock=clock,
            margin=margin,
        )
    if not settings.oauth_provider:
        raise OAuthError(
            "OAuth 2.0 sign-in needs the provider (oauth_provider is empty: microsoft or google)"
        )
    raise OAuthError(
        "OAuth 2.0 sign-in needs the way to sign in (oauth_flow is empty: app or delegated)"
    )


class UnusableSource(TokenSource):
    """A source for sign-in settings that cannot work: ``token()`` raises why."""

    def __init__(self, user: str, error: OAuthError, *, clock: Clock) -> None:
        super().__init__(user, clock=clock, margin=0.0)
        self._error = error

    def _fetch(self) -> Fetched:
        raise OAuthError(str(self._error), code=self._error.code)


def _identity(settings: EmailSettings) -> tuple[str, ...]:
    """What makes a source: everything but the refresh token (which it may rotate)."""
    secret = hashlib.sha256(settings.oauth_client_secret.encode()).hexdigest()
    return (
        settings.oauth_provider,
        settings.oauth_flow,
        settings.oauth_tenant,
        settings.oauth_client_id,
        secret,
        sign_in_user(settings),
    )


class TokenSources:
    """The process's token sources, one per practice database; see the module docstring."""

    def __init__(self, endpoints: OAuthEndpoints, clock: Clock | None = None) -> None:
        self.endpoints = endpoints
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[tuple[str, ...], TokenSource]] = {}

    def for_settings(
        self, db: str, settings: EmailSettings, save_refresh_token: SaveRefreshToken | None = None
    ) -> TokenSource:
        """The source for ``db``'s ``settings`` (kept or new). Incomplete sign-in settings
        give a source whose every ``token()`` raises the ``OAuthError`` that says why."""
        identity = _identity(settings)
        with self._lock:
            kept = self._kept.get(db)
            if kept is not None and kept[0] == identity:
                source = kept[1]
                if isinstance(source, DelegatedSource):
                    source.adopt(settings.oauth_refresh_token)
                    source.save_refresh_token = save_refresh_token
                return source
            try:
                source = token_source(
                    settings,
                    self.endpoints,
                    save_refresh_token=save_refresh_token,
                    clock=self._clock,
                )
            except OAuthError as exc:
                source = UnusableSource(sign_in_user(settings), exc, clock=self._clock)
            self._kept[db] = (identity, source)
            return source

    def drop(self, db: str) -> None:
        """Forget ``db``'s source (the database is no longer served)."""
        with self._lock:
            self._kept.pop(db, None)
