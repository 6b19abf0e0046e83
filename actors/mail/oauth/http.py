"""The HTTP client every provider call goes through (msal and google-auth take it).

``provider_session(ca_file, timeout)`` is a ``requests.Session`` that

- verifies certificates against the system's store plus ``ca_file`` (a context of our
  own, not ``verify=``: requests replaces ``verify`` with ``REQUESTS_CA_BUNDLE`` or
  ``CURL_CA_BUNDLE`` when they are set, silently, OAUTH2.md 3a), and so ignores the
  environment (``trust_env`` off: no proxy or CA bundle variables);
- gives every request ``timeout`` seconds (connect and each read) unless the caller set
  one; the service passes ``mail.io_timeout_seconds``, at most half the hang limit;
- beats (``actors.progress``) after every answer, so a mailbox waiting on a slow
  provider is busy, not hung.
"""

from __future__ import annotations

import ssl
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from actors import progress
from actors.mail.oauth.errors import OAuthError


class _ContextAdapter(HTTPAdapter):
    """An adapter that verifies with our own ``ssl.SSLContext``."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)
        # requests points urllib3 at certifi's bundle; our context already holds the
        # system's store and ca_file, and its own verification settings.
        conn.ca_certs = None
        conn.ca_cert_dir = None


class ProviderSession(requests.Session):
    """See the module docstring."""

    def __init__(self, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__()
        self.trust_env = False
        self.timeout = timeout
        adapter = _ContextAdapter(context)
        self.mount("https://", adapter)
        self.mount("http://", HTTPAdapter(max_retries=0))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        response = super().request(method, url, *args, **kwargs)
        progress.beat()
        return response


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """A verifying client context: the system's authorities plus ``ca_file``.

    Raises ``OAuthError`` when ``ca_file`` cannot be read.
    """
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise OAuthError(
                f"the CA file {ca_file!r} (oauth.ca_file) cannot be read ({exc})"
            ) from None
    return context


def provider_session(ca_file: str, timeout: float) -> ProviderSession:
    """A session for the providers; see the module docstring."""
    return ProviderSession(tls_context(ca_file), timeout)
