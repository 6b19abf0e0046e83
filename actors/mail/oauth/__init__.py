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
"""

from actors.mail.oauth.errors import OAuthError
from actors.mail.oauth.google import MAIL_SCOPE as GOOGLE_MAIL_SCOPE
from actors.mail.oauth.google import (
    GoogleDelegatedSource,
    GoogleEndpoint,
    GoogleServiceAccountSource,
)
from actors.mail.oauth.google_sign_in import GoogleSignIn
from actors.mail.oauth.microsoft import (
    APP_SCOPES as MICROSOFT_APP_SCOPES,
)
from actors.mail.oauth.microsoft import (
    DELEGATED_SCOPES as MICROSOFT_DELEGATED_SCOPES,
)
from actors.mail.oauth.microsoft import (
    DeviceSignIn,
    MicrosoftAppSource,
    MicrosoftDelegatedSource,
    MicrosoftEndpoint,
    SignedIn,
)
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
