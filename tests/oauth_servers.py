"""Local stand-ins for the sign-in providers, for the OAuth 2.0 tests (OAUTH2.md, "Testing").

``OAuthAuthority`` is one identity provider with one store of issued tokens, served on
two loopback ports:

- ``https://127.0.0.1:PORT/<tenant>``: a Microsoft-style authority that msal accepts
  (msal insists on https: the server certificate comes from ``tests.tls_certs``, and a
  client trusts it through ``ca_cert``). It serves ``/<tenant>/v2.0/.well-known/
  openid-configuration``, ``/<tenant>/oauth2/v2.0/token`` (client credentials, refresh
  token with rotation, device code) and ``/<tenant>/oauth2/v2.0/devicecode``.
- Google's token endpoint at ``/token`` on both ports (``google_token_uri`` is the https
  one): refresh token, ``invalid_grant``, an installed app's authorization code
  (``google_code``), the JWT bearer grant of a service account with domain-wide
  delegation.
- ``http://127.0.0.1:PORT/introspect``: the introspection endpoint Dovecot's ``oauth2``
  passdb asks (``{"active": true, "email": ...}``).

The resource servers (``Dovecot(oauth2=authority)`` in ``tests.dovecot`` and
``RecordingSmtpServer(oauth=authority)`` in ``tests.smtp_servers``) accept an access token
only while ``check_token`` says it is live and issued for that mailbox. Tests steer it:
``add_app``/``add_public_client``/``add_google_client``/``add_service_account`` register
clients, ``sign_in`` gives a refresh token as a person's sign-in would, ``fail_next``
queues an AADSTS (or Google) error answer, ``expire_access_tokens`` makes every issued
access token stale on the resource side (the client still believes it), ``revoke``
kills a refresh token, ``approve_device`` completes a device-code sign-in. Counters:
``grants`` lists the grant type of every token request, in order.

Started by ``start()`` (also a context manager); every port is free and on 127.0.0.1.
"""

from __future__ import annotations

import base64
import collections
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.tls_certs import CertificateSet

TENANT = "0b7d3c1e-5a8f-4e2b-9c6d-2f1a8e4b7c90"
"""The tenant GUID the local Microsoft authority serves (msal warns on ``common``)."""
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MICROSOFT_APP_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_MAIL_SCOPE = "https://mail.google.com/"
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"
"""A service account's JWT names Google's own token endpoint as audience, always."""


@dataclass
class IssuedToken:
    """An access token the authority issued: for ``mailbox`` until ``expires_at``."""

    mailbox: str
    client_id: str
    expires_at: float  # time.time()
    active: bool = True


@dataclass
class _RefreshGrant:
    client_id: str
    mailbox: str
    active: bool = True


@dataclass
class _DeviceSignIn:
    client_id: str
    user_code: str
    mailbox: str | None = None  # set by approve_device


@dataclass
class ErrorAnswer:
    """An error the token endpoint gives instead of a token (``fail_next``)."""

    error: str
    description: str
    codes: tuple[int, ...] = ()
    status: int = 400


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    apps: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (secret, mailbox)
    public_clients: set[str] = field(default_factory=set)
    google_clients: dict[str, str] = field(default_factory=dict)  # id -> secret
    service_accounts: dict[str, tuple[Any, frozenset[str]]] = field(default_factory=dict)
    access: dict[str, IssuedToken] = field(default_factory=dict)
    refresh: dict[str, _RefreshGrant] = field(default_factory=dict)
    devices: dict[str, _DeviceSignIn] = field(default_factory=dict)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (client, box)
    failures: collections.deque[ErrorAnswer] = field(default_factory=collections.deque)
    grants: list[str] = field(default_factory=list)
    introspections: int = 0


class OAuthAuthority:
    """The local identity provider; see the module docstring.

    ``expires_in`` is the lifetime (seconds) given with every access token; the token's
    own expiry on the resource side is the same unless ``expire_access_tokens`` was called.
    """

    def __init__(self, certs: CertificateSet, *, expires_in: int = 3600) -> None:
        self.certs = certs
        self.ca_cert = str(certs.ca_cert)
        self.tenant = TENANT
        self.expires_in = expires_in
        self.state = _State()
        self._https = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self, "microsoft"))
        self._https.daemon_threads = True
        self._https.socket = certs.server_context().wrap_socket(
            self._https.socket, server_side=True
        )
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self, "google"))
        self._http.daemon_threads = True
        self._threads: list[threading.Thread] = []

    # --- addresses ----------------------------------------------------------------------

    @property
    def microsoft_authority(self) -> str:
        """The ``[oauth] microsoft_authority`` value: scheme, host and port, no tenant."""
        return f"https://127.0.0.1:{self._https.server_address[1]}"

    @property
    def google_token_uri(self) -> str:
        """Google's token endpoint, over https (oauthlib, used by the installed-app
        sign-in, insists on it; google-auth takes ``google_token_uri_http`` too)."""
        return f"{self.microsoft_authority}/token"

    @property
    def google_token_uri_http(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/token"

    @property
    def introspection_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/introspect"

    # --- life ---------------------------------------------------------------------------

    def start(self) -> OAuthAuthority:
        for server in (self._https, self._http):
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> OAuthAuthority:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- registration and steering ------------------------------------------------------

    def add_app(self, client_id: str, secret: str, mailbox: str) -> None:
        """A Microsoft app with a client secret, granted FullAccess to ``mailbox``."""
        with self.state.lock:
            self.state.apps[client_id] = (secret, mailbox.lower())

    def add_public_client(self, client_id: str) -> None:
        """A Microsoft public client (delegated sign-in: device code, refresh tokens)."""
        with self.state.lock:
            self.state.public_clients.add(client_id)

    def add_google_client(self, client_id: str, secret: str) -> None:
        """A Google OAuth client (installed app)."""
        with self.state.lock:
            self.state.google_clients[client_id] = secret

    def add_service_account(self, email: str, mailboxes: set[str]) -> dict[str, str]:
        """A Google service account allowed (domain-wide delegation) to act as
        ``mailboxes``; returns its key file's JSON fields (a fresh RSA key)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        with self.state.lock:
            self.state.service_accounts[email] = (
                key.public_key(),
                frozenset(m.lower() for m in mailboxes),
            )
        return {
            "type": "service_account",
            "project_id": "practice-test",
            "private_key_id": secrets.token_hex(8),
            "private_key": pem,
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": self.google_token_uri,
        }

    def sign_in(self, client_id: str, mailbox: str) -> str:
        """A refresh token for ``mailbox`` and ``client_id``, as a person's sign-in gives."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.refresh[token] = _RefreshGrant(client_id, mailbox.lower())
        return token

    def google_code(self, client_id: str, mailbox: str) -> str:
        """An authorization code, as Google's consent page hands the browser after
        ``mailbox`` signed in and agreed (the browser then goes to the redirect URI)."""
        code = "4/" + secrets.token_urlsafe(16)
        with self.state.lock:
            self.state.codes[code] = (client_id, mailbox.lower())
        return code

    def approve_device(self, user_code: str, mailbox: str) -> None:
        """The person entered ``user_code`` and signed in as ``mailbox``."""
        with self.state.lock:
            for device in self.state.devices.values():
                if device.user_code == user_code:
                    device.mailbox = mailbox.lower()
                    return
        raise KeyError(f"no device sign-in with user code {user_code!r}")

    def fail_next(
        self, error: str, description: str, *codes: int, status: int = 400, times: int = 1
    ) -> None:
        """The next ``times`` token requests get this error answer instead of a token."""
        with self.state.lock:
            for _ in range(times):
                self.state.failures.append(ErrorAnswer(error, description, codes, status))

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is expired for the resource servers."""
        with self.state.lock:
            for issued in self.state.access.values():
                issued.expires_at = 0.0

    def revoke(self, refresh_token: str | None = None) -> None:
        """Revoke one refresh token (all when None) and every access token issued so far."""
        with self.state.lock:
            for token, grant in self.state.refresh.items():
                if refresh_token is None or token == refresh_token:
                    grant.active = False
            for issued in self.state.access.values():
                issued.active = False

    def live_refresh_tokens(self, mailbox: str) -> list[str]:
        """The refresh tokens of ``mailbox`` that still work."""
        with self.state.lock:
            return [
                t
                for t, g in self.state.refresh.items()
                if g.active and g.mailbox == mailbox.lower()
            ]

    def issued_access_tokens(self) -> list[str]:
        with self.state.lock:
            return list(self.state.access)

    @property
    def grants(self) -> list[str]:
        with self.state.lock:
            return list(self.state.grants)

    def check_token(self, token: str, mailbox: str | None = None) -> str | None:
        """The mailbox ``token`` is live for (and equal to ``mailbox`` when given), or None."""
        with self.state.lock:
            issued = self.state.access.get(token)
            if issued is None or not issued.active or issued.expires_at <= time.time():
                return None
            if mailbox is not None and issued.mailbox != mailbox.lower():
                return None
            return issued.mailbox

    # --- answers (called by the HTTP handlers) ------------------------------------------

    def _issue(self, client_id: str, mailbox: str, extra: Mapping[str, Any]) -> dict[str, Any]:
        token = "at-" + secrets.token_urlsafe(32)
        self.state.access[token] = IssuedToken(mailbox, client_id, time.time() + self.expires_in)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in,
            **extra,
        }

    def _id_token(self, client_id: str, mailbox: str) -> str:
        now = int(time.time())
        claims = {
            "iss": f"{self.microsoft_authority}/{self.tenant}/v2.0",
            "aud": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "tid": self.tenant,
            "oid": _object_id(mailbox),
            "sub": _object_id(mailbox),
            "preferred_username": mailbox,
        }

        def part(value: Mapping[str, Any]) -> str:
            raw = json.dumps(value).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."

    def _microsoft_error(self, answer: ErrorAnswer) -> tuple[int, dict[str, Any]]:
        return answer.status, {
            "error": answer.error,
            "error_description": answer.description,
            "error_codes": list(answer.codes),
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": secrets.token_hex(8),
            "correlation_id": secrets.token_hex(8),
        }

    def microsoft_token(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        with self.state.lock:
            self.state.grants.append(f"microsoft:{grant}")
            if self.state.failures:
                return self._microsoft_error(self.state.failures.popleft())
            if grant == "client_credentials":
                app = self.state.apps.get(client_id)
                if app is None:
                    return self._microsoft_error(_unknown_app(client_id, self.tenant))
                if form.get("client_secret") != app[0]:
                    return self._microsoft_error(
                        ErrorAnswer(
                            "invalid_client",
                            "AADSTS7000215: Invalid client secret provided. Ensure the "
                            "secret being sent in the request is the client secret value, "
                            f"not the client secret ID, for a secret added to app '{client_id}'.",
                            (7000215,),
                            401,
                        )
                    )
                if form.get("scope") != MICROSOFT_APP_SCOPE:
                    return self._microsoft_error(
                        ErrorAnswer("invalid_scope", "AADSTS1002012: bad scope", (1002012,))
                    )
                return 200, self._issue(client_id, app[1], {})
            if client_id not in self.state.public_clients:
                return self._microsoft_error(_unknown_app(client_id, self.tenant))
            if grant == "refresh_token":
                old = form.get("refresh_token", "")
                found = self.state.refresh.get(old)
                if found is None or not found.active or found.client_id != client_id:
                    return self._microsoft_error(
                        ErrorAnswer(
                            "invalid_grant",
                            "AADSTS70008: The provided authorization code or refresh token "
                            "has expired due to inactivity. Send a new interactive "
                            "authorization request for this user and resource.",
                            (70008,),
                        )
                    )
                found.active = False  # each use replaces it
                mailbox = found.mailbox
            elif grant == DEVICE_CODE_GRANT:
                device = self.state.devices.get(form.get("device_code", ""))
                if device is None or device.client_id != client_id:
                    return self._microsoft_error(
                        ErrorAnswer("expired_token", "AADSTS70019: code expired", (70019,))
                    )
                if device.mailbox is None:
                    return self._microsoft_error(
                        ErrorAnswer(
                            "authorization_pending",
                            "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending.",
                            (70016,),
                        )
                    )
                del self.state.devices[form.get("device_code", "")]
                mailbox = device.mailbox
            else:
                return self._microsoft_error(
                    ErrorAnswer("unsupported_grant_type", f"AADSTS70003: {grant}", (70003,))
                )
            rotated = "rt-" + secrets.token_urlsafe(24)
            self.state.refresh[rotated] = _RefreshGrant(client_id, mailbox)
            return 200, self._issue(
                client_id,
                mailbox,
                {
                    "scope": form.get("scope", ""),
                    "refresh_token": rotated,
                    "id_token": self._id_token(client_id, mailbox),
                    "client_info": _b64url_json({"uid": _object_id(mailbox), "utid": self.tenant}),
                },
            )

    def microsoft_devicecode(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        client_id = form.get("client_id", "")
        with self.state.lock:
            if client_id not in self.state.public_clients:
                return self._microsoft_error(_unknown_app(client_id, self.tenant))
            device_code = secrets.token_urlsafe(24)
            user_code = secrets.token_hex(4).upper()
            self.state.devices[device_code] = _DeviceSignIn(client_id, user_code)
        verification = f"{self.microsoft_authority}/devicelogin"
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification,
            "expires_in": 900,
            "interval": 1,
            "message": f"To sign in, use a web browser to open the page {verification} "
            f"and enter the code {user_code} to authenticate.",
        }

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.microsoft_authority}/{tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
        }

    def google_token(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        with self.state.lock:
            self.state.grants.append(f"google:{grant}")
            if self.state.failures:
                answer = self.state.failures.popleft()
                return answer.status, {
                    "error": answer.error,
                    "error_description": answer.description,
                }
            if grant == "refresh_token":
                client_id = form.get("client_id", "")
                if self.state.google_clients.get(client_id) != form.get("client_secret"):
                    return 401, {
                        "error": "invalid_client",
                        "error_description": "The OAuth client was not found.",
                    }
                found = self.state.refresh.get(form.get("refresh_token", ""))
                if found is None or not found.active or found.client_id != client_id:
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    }
                # Google keeps the refresh token: no rotation.
                return 200, self._issue(client_id, found.mailbox, {"scope": GOOGLE_MAIL_SCOPE})
            if grant == "authorization_code":
                client_id = form.get("client_id", "")
                found_code = self.state.codes.pop(form.get("code", ""), None)
                if self.state.google_clients.get(client_id) != form.get("client_secret"):
                    return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
                if found_code is None or found_code[0] != client_id:
                    return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
                refresh = "1//" + secrets.token_urlsafe(24)
                self.state.refresh[refresh] = _RefreshGrant(client_id, found_code[1])
                return 200, self._issue(
                    client_id,
                    found_code[1],
                    {"scope": GOOGLE_MAIL_SCOPE, "refresh_token": refresh},
                )
            if grant == JWT_BEARER_GRANT:
                return self._service_account_token(form.get("assertion", ""))
            return 400, {"error": "unsupported_grant_type", "error_description": grant}

    def _service_account_token(self, assertion: str) -> tuple[int, dict[str, Any]]:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            key, mailboxes = self.state.service_accounts[unverified["iss"]]
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=GOOGLE_AUDIENCE)
        except (jwt.PyJWTError, KeyError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        subject = str(claims.get("sub", "")).lower()
        if subject not in mailboxes or GOOGLE_MAIL_SCOPE not in str(claims.get("scope", "")):
            return 401, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using "
                "this method, or client not authorized for any of the scopes requested.",
            }
        return 200, self._issue(str(claims["iss"]), subject, {"scope": GOOGLE_MAIL_SCOPE})

    def introspect(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        with self.state.lock:
            self.state.introspections += 1
        mailbox = self.check_token(form.get("token", ""))
        if mailbox is None:
            return 200, {"active": False}
        return 200, {"active": True, "email": mailbox}


def _object_id(mailbox: str) -> str:
    return "00000000-0000-0000-0000-" + mailbox.encode().hex()[:12].ljust(12, "0")


def _b64url_json(value: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _unknown_app(client_id: str, tenant: str) -> ErrorAnswer:
    return ErrorAnswer(
        "unauthorized_client",
        f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
        f"directory '{tenant}'. This can happen if the application has not been installed "
        "by the administrator of the tenant.",
        (700016,),
    )


def _handler_class(authority: OAuthAuthority, side: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the tests read the counters instead

        def _answer(self, status: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            text = self.rfile.read(length).decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                form = {k: str(v) for k, v in json.loads(text or "{}").items()}
            else:
                form = dict(urllib.parse.parse_qsl(text))
            # Client credentials may come as HTTP Basic auth (RFC 6749 2.3.1).
            basic = self.headers.get("Authorization", "")
            if basic.startswith("Basic "):
                pair = base64.b64decode(basic[len("Basic ") :]).decode()
                client_id, _, secret = pair.partition(":")
                form.setdefault("client_id", urllib.parse.unquote_plus(client_id))
                form.setdefault("client_secret", urllib.parse.unquote_plus(secret))
            return form

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
            if side == "microsoft" and path[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                if path[0] != authority.tenant:
                    self._answer(
                        400,
                        {
                            "error": "invalid_tenant",
                            "error_description": f"AADSTS90002: Tenant '{path[0]}' not found.",
                        },
                    )
                    return
                self._answer(200, authority.openid_configuration(path[0]))
                return
            self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
            form = self._form()
            if side == "microsoft" and path[1:] == ["oauth2", "v2.0", "token"]:
                self._answer(*authority.microsoft_token(form))
            elif side == "microsoft" and path[1:] == ["oauth2", "v2.0", "devicecode"]:
                self._answer(*authority.microsoft_devicecode(form))
            elif path == ["token"]:
                self._answer(*authority.google_token(form))
            elif side == "google" and path == ["introspect"]:
                self._answer(*authority.introspect(form))
            else:
                self._answer(404, {"error": "not_found"})

    return Handler


def xoauth2_parts(blob: bytes) -> tuple[str, str] | None:
    """``(user, token)`` from a decoded XOAUTH2 initial response, or None when malformed."""
    fields = blob.decode("utf-8", "replace").split("\x01")
    user = next((f[5:] for f in fields if f.startswith("user=")), None)
    auth = next((f[5:] for f in fields if f.startswith("auth=")), None)
    if user is None or auth is None or not auth.startswith("Bearer "):
        return None
    return user, auth[len("Bearer ") :]


# --- helpers for the tests ---------------------------------------------------------------

APP_ID = "5e1a2b3c-0000-4000-8000-00000000a991"
APP_SECRET = "Cl1ent-Secret~Canary~7731"
PUBLIC_ID = "5e1a2b3c-0000-4000-8000-00000000b992"
GOOGLE_ID = "998877-canary.apps.googleusercontent.com"
GOOGLE_SECRET = "GOCSPX-Canary-Secret-4411"
SERVICE_ACCOUNT = "mailer@practice-test.iam.gserviceaccount.com"


def oauth_endpoints(authority: OAuthAuthority, timeout: float = 5.0) -> Any:
    """The service's ``OAuthEndpoints`` pointing at ``authority`` (trusting its CA)."""
    from actors.mail.oauth import OAuthEndpoints
    from config.settings import OAuthSettings

    settings = OAuthSettings(
        microsoft_authority=authority.microsoft_authority,
        google_token_uri=authority.google_token_uri,
        ca_file=authority.ca_cert,
    )
    return OAuthEndpoints(settings, timeout)


def sign_in_settings(
    authority: OAuthAuthority, way: str, mailbox: str, **changes: Any
) -> dict[str, Any]:
    """The ``email_settings`` sign-in columns for ``way`` (``microsoft-app``,
    ``microsoft-delegated``, ``google-delegated``, ``google-app``) acting as ``mailbox``;
    registers the client (and signs ``mailbox`` in) at ``authority``."""
    values: dict[str, Any] = {"oauth_account": mailbox}
    if way == "microsoft-app":
        authority.add_app(APP_ID, APP_SECRET, mailbox)
        values.update(
            oauth_provider="microsoft",
            oauth_flow="app",
            oauth_tenant=authority.tenant,
            oauth_client_id=APP_ID,
            oauth_client_secret=APP_SECRET,
        )
    elif way == "microsoft-delegated":
        authority.add_public_client(PUBLIC_ID)
        values.update(
            oauth_provider="microsoft",
            oauth_flow="delegated",
            oauth_tenant=authority.tenant,
            oauth_client_id=PUBLIC_ID,
            oauth_refresh_token=authority.sign_in(PUBLIC_ID, mailbox),
        )
    elif way == "google-delegated":
        authority.add_google_client(GOOGLE_ID, GOOGLE_SECRET)
        values.update(
            oauth_provider="google",
            oauth_flow="delegated",
            oauth_client_id=GOOGLE_ID,
            oauth_client_secret=GOOGLE_SECRET,
            oauth_refresh_token=authority.sign_in(GOOGLE_ID, mailbox),
        )
    elif way == "google-app":
        key = authority.add_service_account(SERVICE_ACCOUNT, {mailbox})
        values.update(
            oauth_provider="google",
            oauth_flow="app",
            oauth_client_secret=json.dumps(key),
        )
    else:
        raise ValueError(f"unknown way {way!r}")
    values.update(changes)
    return values
