"""OAuth 2.0 sign-in for SMTP and IMAP: access tokens from Microsoft and Google.

A ``TokenSource`` gives one mailbox's access token (``token()``), kept in memory only,
fetched again before it expires and after a mail server refused it (``refused(token)``).
The four practices (``oauth_provider``/``oauth_flow``):

- ``microsoft``/``app``: client credentials (msal ``ConfidentialClientApplication``),
  scope ``https://outlook.office365.com/.default``; the unattended server's way.
- ``microsoft``/``delegated``: a person's refresh token (msal); every use replaces it,
  and the new one is saved at once (``store.save_refresh_token``).
- ``google``/``delegated``: a person's refresh token (google-auth ``Credentials``).
- ``google``/``app``: a Workspace service account acting as the mailbox (domain-wide
  delegation; the key file's JSON in ``oauth_client_secret``).

``TokenSources`` keeps one source per practice database for the process;
``token_source`` builds one for a single use (the wizard). ``DeviceSignIn`` is the
Microsoft device-code sign-in, ``GoogleSignIn`` Google's installed-app sign-in (loopback
redirect, or the address pasted back over SSH). ``xoauth2_string``/``smtp_authobject``
build the SASL XOAUTH2 response. Failures are ``OAuthError``: one line, the provider's
own words, never a token or a secret. Every call to a provider times out
(``OAuthEndpoints.timeout``, the service's ``mail.io_timeout_seconds``) and beats
(``actors.progress``).

The provider modules (``microsoft``, ``google``, ``google_sign_in``) and their libraries
(msal, google-auth, google-auth-oauthlib, requests) are imported when one of their names
is first used (``__getattr__`` below), not with this package: the service uses them only
for a practice signed in with OAuth, and every process (``serve`` before READY, the read
commands) would otherwise pay for them at start (issue 11; ``tests/test_cli_imports.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from actors.mail.oauth.errors import OAuthError
from actors.mail.oauth.source import DelegatedSource, Fetched, TokenSource
from actors.mail.oauth.sources import (
    OAuthEndpoints,
    SaveRefreshToken,
    TokenSources,
    sign_in_user,
    token_source,
)
from actors.mail.oauth.store import save_refresh_token
from actors.mail.oauth.xoauth2 import smtp_authobject, xoauth2_base64, xoauth2_string

if TYPE_CHECKING:
    from actors.mail.oauth.google import MAIL_SCOPE as GOOGLE_MAIL_SCOPE
    from actors.mail.oauth.google import (
        GoogleDelegatedSource,
        GoogleEndpoint,
        GoogleServiceAccountSource,
    )
    from actors.mail.oauth.google_sign_in import GoogleSignIn
    from actors.mail.oauth.microsoft import APP_SCOPES as MICROSOFT_APP_SCOPES
    from actors.mail.oauth.microsoft import DELEGATED_SCOPES as MICROSOFT_DELEGATED_SCOPES
    from actors.mail.oauth.microsoft import (
        DeviceSignIn,
        MicrosoftAppSource,
        MicrosoftDelegatedSource,
        MicrosoftEndpoint,
        SignedIn,
    )

_PROVIDER_NAMES: dict[str, tuple[str, str]] = {
    "GOOGLE_MAIL_SCOPE": ("google", "MAIL_SCOPE"),
    "GoogleDelegatedSource": ("google", "GoogleDelegatedSource"),
    "GoogleEndpoint": ("google", "GoogleEndpoint"),
    "GoogleServiceAccountSource": ("google", "GoogleServiceAccountSource"),
    "GoogleSignIn": ("google_sign_in", "GoogleSignIn"),
    "MICROSOFT_APP_SCOPES": ("microsoft", "APP_SCOPES"),
    "MICROSOFT_DELEGATED_SCOPES": ("microsoft", "DELEGATED_SCOPES"),
    "DeviceSignIn": ("microsoft", "DeviceSignIn"),
    "MicrosoftAppSource": ("microsoft", "MicrosoftAppSource"),
    "MicrosoftDelegatedSource": ("microsoft", "MicrosoftDelegatedSource"),
    "MicrosoftEndpoint": ("microsoft", "MicrosoftEndpoint"),
    "SignedIn": ("microsoft", "SignedIn"),
}
"""Each provider name this package gives: its module and its name there."""


def __getattr__(name: str) -> Any:
    """A provider's name, importing its module (and library) on first use."""
    if name not in _PROVIDER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _PROVIDER_NAMES[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value
    return value


__all__ = [
    "GOOGLE_MAIL_SCOPE",
    "MICROSOFT_APP_SCOPES",
    "MICROSOFT_DELEGATED_SCOPES",
    "DelegatedSource",
    "DeviceSignIn",
    "Fetched",
    "GoogleDelegatedSource",
    "GoogleEndpoint",
    "GoogleServiceAccountSource",
    "GoogleSignIn",
    "MicrosoftAppSource",
    "MicrosoftDelegatedSource",
    "MicrosoftEndpoint",
    "OAuthEndpoints",
    "OAuthError",
    "SaveRefreshToken",
    "SignedIn",
    "TokenSource",
    "TokenSources",
    "save_refresh_token",
    "sign_in_user",
    "smtp_authobject",
    "token_source",
    "xoauth2_base64",
    "xoauth2_string",
]
