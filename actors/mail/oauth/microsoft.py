"""Microsoft 365 sign-in through msal: app-only (client credentials) and delegated
(a refresh token, replaced at every use), plus the device-code sign-in the wizard runs.

Each fetch builds its msal application afresh (one discovery request, then the token
request): msal keeps app tokens in a cache of its own and would hand a refused token
back; our ``TokenSource`` is the only cache. The authority is
``[oauth] microsoft_authority`` + ``/`` + the practice's ``oauth_tenant`` (a tenant
GUID or domain), with instance discovery off, so a local authority works in tests.
msal reports refusals as dicts: they become ``OAuthError`` with the AADSTS code and
Microsoft's own sentence (``AADSTS700082: The refresh token has expired due to
inactivity...``), without msal's trace and correlation ids.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msal
import requests

from actors.mail.oauth.errors import OAuthError
from actors.mail.oauth.http import provider_session
from actors.mail.oauth.source import DEFAULT_LIFETIME, DelegatedSource, Fetched, TokenSource
from events.clock import Clock

APP_SCOPES = ("https://outlook.office365.com/.default",)
"""Client credentials: the app's granted Exchange Online permissions (IMAP.AccessAsApp,
SMTP.SendAsApp)."""
DELEGATED_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
)
"""Delegated: IMAP and SMTP as the signed-in person (msal adds offline_access itself)."""

_AADSTS = re.compile(r"AADSTS\d+")
_TRAILER = re.compile(r"\s*(Trace ID|Correlation ID|Timestamp):.*", re.DOTALL)
_MAX_WORDS = 300
_DESCRIPTION = re.compile(r'"error_description":\s*"((?:[^"\\]|\\.)*)"')
_ERROR = re.compile(r'"error":\s*"([^"]*)"')


@dataclass(frozen=True, slots=True)
class MicrosoftEndpoint:
    """Where and how to reach the Microsoft identity platform."""

    authority: str  # scheme, host, port: "https://login.microsoftonline.com"
    ca_file: str
    timeout: float

    def tenant_url(self, tenant: str) -> str:
        if not tenant:
            raise OAuthError("Microsoft sign-in needs the tenant (oauth_tenant is empty)")
        return f"{self.authority.rstrip('/')}/{tenant.strip('/')}"


def refusal(result: Mapping[str, Any], secrets: tuple[str, ...] = ()) -> OAuthError:
    """The one-line ``OAuthError`` for msal's error ``result``: ``AADSTS…: sentence``
    (Microsoft's words, without trace ids), or ``error: description``. Pure."""
    error = str(result.get("error") or "error")
    words = " ".join(_TRAILER.sub("", str(result.get("error_description") or "")).split())
    for secret in secrets:
        if secret:
            words = words.replace(secret, "***")
    if len(words) > _MAX_WORDS:
        words = words[: _MAX_WORDS - 3] + "..."
    found = _AADSTS.search(words)
    code = found.group() if found else error
    text = words if found and words.startswith(code) else f"{error}: {words}" if words else error
    return OAuthError(f"Microsoft sign-in failed: {text}", code=code)


def _unreachable(exc: Exception, endpoint: MicrosoftEndpoint) -> OAuthError:
    host = endpoint.authority.split("://", 1)[-1].split("/", 1)[0]
    if isinstance(exc, requests.Timeout):
        return OAuthError(
            f"no answer from the Microsoft sign-in service at {host} in {endpoint.timeout:g} s"
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return OAuthError(
            f"the certificate of the Microsoft sign-in service at {host} is not trusted"
        )
    if isinstance(exc, requests.RequestException):
        return OAuthError(f"cannot reach the Microsoft sign-in service at {host}")
    # msal raises ValueError when discovery fails (an unknown tenant, an authority that
    # is not one); its text names the URL and quotes Microsoft's answer, never a secret.
    text = " ".join(str(exc).split())
    answer = f"{text} {exc.__context__}"  # msal re-raises, the answer in the first error
    said = _DESCRIPTION.search(answer)
    if said is not None:
        error = _ERROR.search(answer)
        return refusal(
            {"error": error.group(1) if error else "error", "error_description": said.group(1)}
        )
    return OAuthError(f"Microsoft sign-in failed: {text[:_MAX_WORDS]}")


def _call(endpoint: MicrosoftEndpoint, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except (requests.RequestException, ValueError) as exc:
        raise _unreachable(exc, endpoint) from None


def _token(result: Any, secrets: tuple[str, ...]) -> Fetched:
    if not isinstance(result, Mapping) or "access_token" not in result:
        raise refusal(result if isinstance(result, Mapping) else {}, secrets)
    return Fetched(str(result["access_token"]), float(result.get("expires_in") or DEFAULT_LIFETIME))


class MicrosoftAppSource(TokenSource):
    """App-only: client credentials (a client secret), scope ``.default``; the mailbox
    (``oauth_account``) is the XOAUTH2 user."""

    provider = "microsoft"
    flow = "app"

    def __init__(
        self,
        endpoint: MicrosoftEndpoint,
        *,
        tenant: str,
        client_id: str,
        client_secret: str,
        mailbox: str,
        clock: Clock,
        margin: float,
    ) -> None:
        super().__init__(mailbox, clock=clock, margin=margin)
        self._endpoint = endpoint
        self._tenant = tenant
        self._client_id = client_id
        self._secret = client_secret

    def _fetch(self) -> Fetched:
        endpoint = self._endpoint
        if not self._secret:
            raise OAuthError(
                "Microsoft app sign-in needs the client secret (oauth_client_secret is empty)"
            )

        def run() -> Any:
            app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=self._secret,
                authority=endpoint.tenant_url(self._tenant),
                http_client=provider_session(endpoint.ca_file, endpoint.timeout),
                instance_discovery=False,
            )
            return app.acquire_token_for_client(list(APP_SCOPES))

        return _token(_call(endpoint, run), (self._secret,))


class MicrosoftDelegatedSource(DelegatedSource):
    """Delegated: the person's refresh token. Every use gives a new refresh token, which
    replaces the old one at once (``save_refresh_token`` is called with it before the
    access token is used), so a token left unused for 90 days is the only way to lose it.
    A client secret, when set, makes it a confidential client."""

    provider = "microsoft"
    flow = "delegated"

    def __init__(
        self,
        endpoint: MicrosoftEndpoint,
        *,
        tenant: str,
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
        self._tenant = tenant
        self._client_id = client_id
        self._secret = client_secret

    def _fetch(self) -> Fetched:
        endpoint = self._endpoint
        if not self.refresh_token:
            raise OAuthError(
                "Microsoft sign-in has no refresh token: sign in again in the Email Setup Wizard"
            )
        secrets = (self._secret, self.refresh_token)

        def run() -> Any:
            app = _application(endpoint, self._tenant, self._client_id, self._secret)
            return app.acquire_token_by_refresh_token(self.refresh_token, list(DELEGATED_SCOPES))

        result = _call(endpoint, run)
        fetched = _token(result, secrets)
        self._replaced(str(result.get("refresh_token") or ""))
        return fetched


def _application(endpoint: MicrosoftEndpoint, tenant: str, client_id: str, secret: str) -> Any:
    common: dict[str, Any] = {
        "authority": endpoint.tenant_url(tenant),
        "http_client": provider_session(endpoint.ca_file, endpoint.timeout),
        "instance_discovery": False,
    }
    if secret:
        return msal.ConfidentialClientApplication(client_id, client_credential=secret, **common)
    return msal.PublicClientApplication(client_id, **common)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A finished delegated sign-in: what the wizard saves."""

    account: str  # the mailbox signed in as (preferred_username)
    refresh_token: str

    def __repr__(self) -> str:
        return f"SignedIn(account={self.account!r}, refresh_token='***')"


class DeviceSignIn:
    """The device-code sign-in (usable over SSH): ``message`` tells the person where to
    go and which code to enter; ``finish()`` waits (polling, as the provider asks) until
    they did, and returns the refresh token and the account. Raises ``OAuthError``."""

    def __init__(
        self, endpoint: MicrosoftEndpoint, tenant: str, client_id: str, client_secret: str = ""
    ) -> None:
        self._endpoint = endpoint
        self._secret = client_secret
        self._app = _call(
            endpoint, lambda: _application(endpoint, tenant, client_id, client_secret)
        )
        flow = _call(
            endpoint, lambda: self._app.initiate_device_flow(scopes=list(DELEGATED_SCOPES))
        )
        if "user_code" not in flow:
            raise refusal(flow, (client_secret,))
        self._flow = flow
        self.message = str(flow.get("message") or "")
        self.user_code = str(flow["user_code"])
        self.verification_uri = str(flow.get("verification_uri") or "")

    def finish(self, *, give_up: Callable[[], bool] = lambda: False) -> SignedIn:
        """Wait for the person; ``give_up()`` returning True stops the wait."""
        result = _call(
            self._endpoint,
            lambda: self._app.acquire_token_by_device_flow(
                self._flow,
                exit_condition=lambda flow: give_up() or flow.get("expires_at", 0) < time.time(),
            ),
        )
        if "refresh_token" not in result:
            raise refusal(result, (self._secret,))
        claims = result.get("id_token_claims") or {}
        account = str(
            claims.get("preferred_username") or claims.get("upn") or claims.get("email") or ""
        )
        return SignedIn(account, str(result["refresh_token"]))
