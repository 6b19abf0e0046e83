"""A person's sign-in from the wizard: Microsoft's device code and Google's browser sign-in.

``ProviderSignIns`` starts them against the configured providers (``[oauth]``):

- ``microsoft_device``: msal's device-code flow (``actors.mail.oauth.DeviceSignIn``): a
  message says which page to open, on any device, and which code to enter; works over SSH.
- ``google_browser``: Google's installed-app flow (a *Desktop app* client; PKCE; offline
  access): the person opens ``url`` in a browser and signs in; Google sends the browser back
  to ``http://localhost:PORT/`` where a small server on this computer (loopback only) takes
  the answer. Over SSH the browser runs elsewhere, so that address does not load there:
  either forward the port first (``ssh -L PORT:localhost:PORT``), or copy the address the
  browser ended on and paste it into the wizard (``finish(pasted)``).

Each gives a refresh token (``SignedIn``); no token is ever printed. Failures are
``OAuthError`` with the provider's words.
"""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Protocol

import requests
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from actors.mail.oauth import DeviceSignIn, OAuthEndpoints, OAuthError, SignedIn
from actors.mail.oauth.google import MAIL_SCOPE, GoogleEndpoint
from actors.mail.oauth.http import _ContextAdapter, tls_context

GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
LOOPBACK_PORT = 8765
"""The loopback port Google's answer comes back to (another free one when it is taken)."""


class DeviceCode(Protocol):
    """A device-code sign-in under way."""

    message: str

    def finish(self) -> SignedIn:
        """Wait until the person signed in; raises ``OAuthError``."""
        ...


class BrowserSignIn(Protocol):
    """A browser sign-in under way."""

    url: str
    port: int

    def received(self) -> str:
        """The address the browser came back to on this computer ("" when none yet)."""
        ...

    def finish(self, response_url: str) -> SignedIn:
        """Trade the answer in ``response_url`` for a refresh token; raises ``OAuthError``."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...


class SignIns(Protocol):
    """Starts a person's sign-in (the wizard's seam; tests give the real one)."""

    def microsoft_device(self, tenant: str, client_id: str, client_secret: str) -> DeviceCode:
        """Start Microsoft's device-code sign-in; raises ``OAuthError``."""
        ...

    def google_browser(self, client_id: str, client_secret: str, account: str) -> BrowserSignIn:
        """Start Google's browser sign-in for ``account``; raises ``OAuthError``."""
        ...


class _Answer(BaseHTTPRequestHandler):
    """Takes the browser's return to ``http://localhost:PORT/?code=...`` once."""

    server: _LoopbackServer

    def do_GET(self) -> None:
        self.server.answer = f"http://localhost:{self.server.server_port}{self.path}"
        body = b"The sign-in is complete: you may close this window and go back to the wizard.\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line holds the one-time code: never logged


class _LoopbackServer(HTTPServer):
    answer = ""


def _listen(port: int) -> _LoopbackServer:
    try:
        return _LoopbackServer(("127.0.0.1", port), _Answer)
    except OSError:
        return _LoopbackServer(("127.0.0.1", 0), _Answer)


class GoogleBrowserSignIn:
    """See the module docstring."""

    def __init__(
        self,
        endpoint: GoogleEndpoint,
        client_id: str,
        client_secret: str,
        account: str,
        *,
        auth_uri: str = GOOGLE_AUTH_URI,
        port: int = LOOPBACK_PORT,
    ) -> None:
        self._endpoint = endpoint
        self._secrets = (client_secret,)
        context = tls_context(endpoint.ca_file)  # raises OAuthError before anything starts
        self._server = _listen(port)
        self.port = int(self._server.server_port)
        redirect = f"http://localhost:{self.port}/"
        config = {
            "installed": {
                "client_id": client_id,
                "client_secret": client_secret,
                "auth_uri": auth_uri,
                "token_uri": endpoint.token_uri,
                "redirect_uris": [redirect],
            }
        }
        self._flow = Flow.from_client_config(
            config, [MAIL_SCOPE], redirect_uri=redirect, autogenerate_code_verifier=True
        )
        # The code is traded at the token endpoint through the flow's own requests
        # session: verified as every provider call is (the system's store plus
        # [oauth] ca_file), without the environment's CA bundle or proxy variables.
        session = self._flow.oauth2session
        session.trust_env = False
        session.mount("https://", _ContextAdapter(context))
        self.url, _state = self._flow.authorization_url(
            access_type="offline", prompt="consent", login_hint=account
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def received(self) -> str:
        return self._server.answer

    def finish(self, response_url: str) -> SignedIn:
        url = response_url.strip()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        if "error" in query:
            raise OAuthError(f"Google sign-in failed: {query['error'][0]}", code=query["error"][0])
        if "code" not in query:
            raise OAuthError(
                "that address holds no sign-in answer (no code=...): paste the whole address "
                "the browser ended on, starting with http://localhost"
            )
        if url.startswith("http:"):  # oauthlib takes only https; the loopback answer is http
            url = "https:" + url[5:]
        try:
            # The client's ID and secret in the form, as Google's installed-app guide shows.
            self._flow.fetch_token(
                authorization_response=url,
                timeout=self._endpoint.timeout,
                include_client_id=True,
            )
        except (OAuth2Error, requests.RequestException, ValueError) as exc:
            words = " ".join(str(exc).split())
            for secret in self._secrets:
                if secret:
                    words = words.replace(secret, "***")
            raise OAuthError(f"Google sign-in failed: {words[:300]}") from None
        refresh = self._flow.credentials.refresh_token
        if not refresh:
            raise OAuthError(
                "Google gave no refresh token: remove the app's access in the Google account "
                "(Security, Third-party access) and sign in again"
            )
        return SignedIn("", str(refresh))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class ProviderSignIns:
    """The real ``SignIns``: the providers configured in ``[oauth]``."""

    def __init__(self, endpoints: OAuthEndpoints) -> None:
        self._endpoints = endpoints

    def microsoft_device(self, tenant: str, client_id: str, client_secret: str) -> DeviceCode:
        return DeviceSignIn(self._endpoints.microsoft, tenant, client_id, client_secret)

    def google_browser(self, client_id: str, client_secret: str, account: str) -> BrowserSignIn:
        return GoogleBrowserSignIn(self._endpoints.google, client_id, client_secret, account)
