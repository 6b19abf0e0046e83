"""Google's installed-app sign-in (the wizard's way for Google delegated): the person opens
``authorization_url`` in a browser, signs in and agrees; Google sends the browser to
``http://localhost:PORT/?code=...&state=...``.

Two ways to finish:

- ``wait_on_loopback()``: listen on ``127.0.0.1:PORT`` for that redirect (a console
  with a browser on this machine, or ``ssh -L PORT:localhost:PORT`` from the person's);
- ``finish(url)``: the person copies the address the browser could not open (over SSH
  without a tunnel) and pastes it; ``http:`` is read as ``https:``, as oauthlib wants.

Either way the code is exchanged for a refresh token at ``[oauth] google_token_uri``
(with PKCE, through our verifying session and timeout). The device-code flow cannot do
this: Google refuses Gmail scopes there (OAUTH2.md 2). Raises ``OAuthError``.
"""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import requests
from google_auth_oauthlib.flow import InstalledAppFlow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from actors.mail.oauth.errors import OAuthError
from actors.mail.oauth.google import MAIL_SCOPE, GoogleEndpoint
from actors.mail.oauth.http import _ContextAdapter, tls_context
from actors.mail.oauth.microsoft import SignedIn

GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
LOOPBACK_PORT = 8765
_DONE_PAGE = b"Signed in. You may close this window and return to the Email Setup Wizard.\n"


class GoogleSignIn:
    """One installed-app sign-in; see the module docstring. ``SignedIn.account`` is ""
    (only the mail scope is asked for): the wizard knows the mailbox."""

    def __init__(
        self,
        endpoint: GoogleEndpoint,
        client_id: str,
        client_secret: str,
        *,
        port: int = LOOPBACK_PORT,
        auth_uri: str = GOOGLE_AUTH_URI,
    ) -> None:
        self._endpoint = endpoint
        self._secret = client_secret
        self.port = port
        config = {
            "installed": {
                "client_id": client_id,
                "client_secret": client_secret,
                "auth_uri": auth_uri,
                "token_uri": endpoint.token_uri,
                "redirect_uris": ["http://localhost"],
            }
        }
        self._flow = InstalledAppFlow.from_client_config(config, [MAIL_SCOPE])
        self._flow.redirect_uri = f"http://localhost:{port}/"
        session = self._flow.oauth2session
        session.trust_env = False  # REQUESTS_CA_BUNDLE would replace our trust
        session.mount("https://", _ContextAdapter(tls_context(endpoint.ca_file)))
        url, _state = self._flow.authorization_url(prompt="consent")
        self.authorization_url: str = url

    def finish(self, redirected_to: str) -> SignedIn:
        """Exchange the code in the address the browser was sent to for a refresh token."""
        url = redirected_to.strip()
        if url.startswith("http:"):
            url = "https:" + url[len("http:") :]
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        if "error" in query:
            raise OAuthError(f"Google sign-in failed: {query['error']}", code=query["error"])
        if "code" not in query:
            raise OAuthError(
                "that address holds no sign-in code: paste the whole address the browser "
                f"showed after signing in (it starts with http://localhost:{self.port}/)"
            )
        try:
            token: Any = self._flow.fetch_token(
                authorization_response=url, timeout=self._endpoint.timeout
            )
        except OAuth2Error as exc:
            words = " ".join(f"{exc.error}: {exc.description or ''}".split()).rstrip(":")
            raise OAuthError(f"Google sign-in failed: {words}", code=exc.error) from None
        except requests.Timeout:
            raise OAuthError(
                f"no answer from Google's sign-in service in {self._endpoint.timeout:g} s"
            ) from None
        except requests.RequestException:
            raise OAuthError("cannot reach Google's sign-in service") from None
        refresh = str(token.get("refresh_token") or "")
        if not refresh:
            raise OAuthError(
                "Google gave no refresh token; remove the app's access in the Google "
                "account's security settings and sign in again"
            )
        return SignedIn("", refresh)

    def wait_on_loopback(self, timeout_seconds: float = 300.0) -> SignedIn:
        """Wait up to ``timeout_seconds`` for the browser's redirect on
        ``127.0.0.1:port``, then ``finish`` with it."""
        received: list[str] = []
        arrived = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                received.append(self.path)
                arrived.set()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(_DONE_PAGE)))
                self.end_headers()
                self.wfile.write(_DONE_PAGE)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the path holds the code: never logged

        try:
            server = HTTPServer(("127.0.0.1", self.port), Handler)
        except OSError as exc:
            raise OAuthError(
                f"cannot listen on 127.0.0.1:{self.port} for the sign-in ({exc.strerror})"
            ) from None
        server.timeout = 1.0
        try:
            waited = 0.0
            while not arrived.is_set() and waited < timeout_seconds:
                server.handle_request()
                waited += server.timeout
        finally:
            server.server_close()
        if not received:
            raise OAuthError(f"nobody finished the sign-in within {timeout_seconds:g} s")
        return self.finish(f"http://localhost:{self.port}{received[0]}")
