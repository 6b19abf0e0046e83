"""Google sign-in through google-auth: delegated (a person's refresh token) and a
Workspace service account with domain-wide delegation (the key acts as the mailbox).

Both ask ``[oauth] google_token_uri`` (Google's token endpoint unless a test points it at
a local one), through ``provider_session`` with the service's timeout. Refusals become
``OAuthError`` keeping Google's words: ``invalid_grant: Token has been expired or
revoked.``. Google does not replace refresh tokens as Microsoft does; should it hand a
new one back, it is saved the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import google.oauth2.service_account

from actors.mail.oauth.errors import OAuthError
from actors.mail.oauth.http import provider_session
from actors.mail.oauth.source import DEFAULT_LIFETIME, DelegatedSource, Fetched, TokenSource
from events.clock import Clock

MAIL_SCOPE = "https://mail.google.com/"
"""IMAP and SMTP (a restricted scope)."""
_MAX_WORDS = 300


@dataclass(frozen=True, slots=True)
class GoogleEndpoint:
    """Where and how to reach Google's token endpoint."""

    token_uri: str
    ca_file: str
    timeout: float


class _Request(google.auth.transport.requests.Request):
    """google-auth's transport with our session and our timeout on every call (its own
    default is 120 s)."""

    def __init__(self, endpoint: GoogleEndpoint) -> None:
        super().__init__(session=provider_session(endpoint.ca_file, endpoint.timeout))
        self._timeout = endpoint.timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        return super().__call__(url, method, body, headers, timeout=self._timeout, **kwargs)  # type: ignore[no-untyped-call]


def refusal(exc: Exception, secrets: tuple[str, ...] = ()) -> OAuthError:
    """The one-line ``OAuthError`` for a google-auth failure. Pure."""
    first = exc.args[0] if exc.args else exc
    words = " ".join(str(first).split())
    for secret in secrets:
        if secret:
            words = words.replace(secret, "***")
    if len(words) > _MAX_WORDS:
        words = words[: _MAX_WORDS - 3] + "..."
    if isinstance(exc, google.auth.exceptions.TransportError):
        return OAuthError(f"cannot reach Google's sign-in service ({words})")
    code = words.split(":", 1)[0] if ":" in words else ""
    return OAuthError(f"Google sign-in failed: {words}", code=code)


def _lifetime(expiry: datetime | None, now: datetime) -> float:
    if expiry is None:
        return DEFAULT_LIFETIME
    # google-auth keeps expiry as naive UTC
    return (expiry.replace(tzinfo=UTC) - now).total_seconds()


class GoogleDelegatedSource(DelegatedSource):
    """Delegated: the person's refresh token and the OAuth client's id and secret."""

    provider = "google"
    flow = "delegated"

    def __init__(
        self,
        endpoint: GoogleEndpoint,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        mailbox: str,
        save_refresh_token: Callable[[str], None] | None,
        clock: Clock,
        margin: float,
    ) -> None:
        super().__init__(
            mailbox,
            refresh_token=refresh_token,
            save_refresh_token=save_refresh_token,
            clock=clock,
            margin=margin,
        )
        self._endpoint = endpoint
        self._client_id = client_id
        self._secret = client_secret

    def _fetch(self) -> Fetched:
        if not self.refresh_token:
            raise OAuthError(
                "Google sign-in has no refresh token: sign in again in the Email Setup Wizard"
            )
        credentials = google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
            None,
            refresh_token=self.refresh_token,
            token_uri=self._endpoint.token_uri,
            client_id=self._client_id,
            client_secret=self._secret,
            scopes=[MAIL_SCOPE],
        )
        now = datetime.now(UTC)
        try:
            credentials.refresh(_Request(self._endpoint))  # type: ignore[no-untyped-call]
        except google.auth.exceptions.GoogleAuthError as exc:
            raise refusal(exc, (self._secret, self.refresh_token)) from None
        self._replaced(credentials.refresh_token or "")
        return Fetched(str(credentials.token or ""), _lifetime(credentials.expiry, now))


class GoogleServiceAccountSource(TokenSource):
    """A Workspace service account with domain-wide delegation: the key file's JSON
    (``oauth_client_secret``) signs a JWT whose subject is the mailbox."""

    provider = "google"
    flow = "app"

    def __init__(
        self,
        endpoint: GoogleEndpoint,
        *,
        key_json: str,
        mailbox: str,
        clock: Clock,
        margin: float,
    ) -> None:
        super().__init__(mailbox, clock=clock, margin=margin)
        self._endpoint = endpoint
        self._key_json = key_json

    def _credentials(self) -> Any:
        try:
            info = json.loads(self._key_json)
            if not isinstance(info, dict):
                raise ValueError("not an object")
            info = {**info, "token_uri": self._endpoint.token_uri}
            return google.oauth2.service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=[MAIL_SCOPE], subject=self.user
            )
        except (ValueError, KeyError, TypeError) as exc:
            # Never the key's text: only what is wrong with it.
            what = (
                f"the field {exc.args[0]!r} is missing"
                if isinstance(exc, KeyError)
                else "it is not a service account key file"
            )
            raise OAuthError(
                f"the Google service account key (oauth_client_secret) cannot be used: {what}"
            ) from None

    def _fetch(self) -> Fetched:
        if not self.user:
            raise OAuthError(
                "a Google service account needs the mailbox to act as (oauth_account is empty)"
            )
        credentials = self._credentials()
        now = datetime.now(UTC)
        try:
            credentials.refresh(_Request(self._endpoint))
        except google.auth.exceptions.GoogleAuthError as exc:
            raise refusal(exc, (self._key_json,)) from None
        return Fetched(str(credentials.token or ""), _lifetime(credentials.expiry, now))
