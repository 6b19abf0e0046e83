"""The Email Setup Wizard signs in with Microsoft 365 and Google (issue 14, item 2).

Real servers throughout: the local HTTPS authority that msal accepts and the local Google
token endpoint (``tests.oauth_servers``), aiosmtpd with AUTH XOAUTH2 (STARTTLS) and a
Dovecot whose ``oauth2`` passdb asks the authority about every token (implicit TLS).
``email-service setup`` runs as its own process, in a pseudo-terminal (pexpect) for the
interactive flows:

- Microsoft app-only: the preset offers sign-in and recommends app, the administrator's
  commands are printed with the tenant, client ID and mailbox filled in, the client secret
  is typed unseen, the connection test signs in and passes on both servers, the row holds
  the sign-in columns.
- Microsoft delegated: the device code's message is shown, the person signs in (the
  authority approves the code), the test passes, and the refresh token saved is the one
  the test's own sign-in rotated to (the one signed in with no longer works).

Without a terminal, the flags named after the columns do the same (secrets only from
environment variables), including a Google Workspace service account; a refused secret
fails with what to do; ``setup --help`` lists the flags.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pexpect
import pytest

from actors.mail.oauth import OAuthError
from actors.mail.settings import EmailSettings
from actors.practice_schema import init_practice_database
from supervisor.setup.answers import AnswerError, check_tenant, parse_expiry
from supervisor.setup.checks import ProbeChecker
from supervisor.setup.draft import with_provider
from supervisor.setup.providers import provider_named
from supervisor.setup.sign_in import admin_steps, provider_of, recommended_flow
from supervisor.setup.sign_in_flow import GoogleBrowserSignIn
from supervisor.setup.store import read_row
from supervisor.setup.wizard import Wizard, read_key_file
from tests.conftest import host_secrets
from tests.dovecot import Dovecot
from tests.mail_helpers import mail_settings
from tests.oauth_servers import GOOGLE_MAIL_SCOPE, TENANT, OAuthAuthority, oauth_endpoints
from tests.smtp_servers import RecordingSmtpServer
from tests.test_setup_wizard import ScriptedPrompt
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_imap"]

ADDRESS = "reception@smile.example"
APP_ID = "5d1c0e8a-3b7f-4c2a-9e6d-1a2b3c4d5e6f"
APP_SECRET = "Canary-app-Secret~8Qz"
PUBLIC_ID = "7e2f1a9c-4d3b-4a1e-8f7c-6b5a4d3c2e1f"
GOOGLE_ID = "4411-smile.apps.googleusercontent.com"
GOOGLE_SECRET = "GOCSPX-Canary-wizard-5150"
EXE = Path(sys.executable).with_name("email-service")
STEP = 60  # seconds allowed for each screen to appear (a bound, not a measurement)
DB = "Smile Dental"


class Authority(OAuthAuthority):
    """The local authority, also answering Google's browser sign-in: ``authorize`` is the
    consent page (the test plays the browser: it reads the address the wizard printed and
    gets the one the browser is sent back to), and the token endpoint trades the code for
    a refresh token (``authorization_code`` grant, PKCE S256 checked)."""

    def __init__(self, certs: CertificateSet) -> None:
        super().__init__(certs)
        self.codes: dict[str, tuple[str, str, str, str]] = {}

    def authorize(self, url: str, mailbox: str) -> str:
        asked = {
            k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()
        }
        assert (asked["response_type"], asked["access_type"]) == ("code", "offline")
        code = "code-" + secrets.token_urlsafe(12)
        self.codes[code] = (
            asked["client_id"],
            asked["redirect_uri"],
            asked["code_challenge"],
            mailbox,
        )
        query = urllib.parse.urlencode(
            {"state": asked["state"], "code": code, "scope": GOOGLE_MAIL_SCOPE}
        )
        return f"{asked['redirect_uri']}?{query}"

    def google_token(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "authorization_code":
            return super().google_token(form)
        found = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if (
            found is None
            or found[:2] != (form.get("client_id"), form.get("redirect_uri"))
            or found[2] != challenge.decode()
        ):
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        refresh = self.sign_in(found[0], found[3])
        status, body = super().google_token(
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "client_id": found[0],
                "client_secret": form.get("client_secret", ""),
            }
        )
        return status, {**body, "refresh_token": refresh} if status == 200 else body


@pytest.fixture(scope="module")
def authority(imap_certs: CertificateSet) -> Iterator[Authority]:
    with Authority(imap_certs) as running:
        running.add_app(APP_ID, APP_SECRET, ADDRESS)
        running.add_public_client(PUBLIC_ID)
        running.add_google_client(GOOGLE_ID, GOOGLE_SECRET)
        yield running


@pytest.fixture(scope="module")
def oauth_dovecot(
    tmp_path_factory: pytest.TempPathFactory,
    imap_certs: CertificateSet,
    authority: OAuthAuthority,
) -> Iterator[Dovecot]:
    server = Dovecot(
        tmp_path_factory.mktemp("dovecot-oauth"),
        certs=imap_certs,
        introspection_url=authority.introspection_url,
    )
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def smtp_server(
    imap_certs: CertificateSet, authority: OAuthAuthority
) -> Iterator[RecordingSmtpServer]:
    server = RecordingSmtpServer("starttls", imap_certs, oauth=authority).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def site(tmp_path: Path, imap_certs: CertificateSet, authority: OAuthAuthority) -> tuple[Path, str]:
    """A configuration file (the local authority as the providers) and a new practice."""
    folder = tmp_path / "practices"
    folder.mkdir()
    url = f"sqlite:///{folder / (DB + '.sqlite3')}"
    init_practice_database(url, practice_name=DB)
    config = tmp_path / "service.toml"
    config.write_text(
        '[service]\nserver_id = "SRV1"\n'
        f"event_store = {json.dumps('sqlite:///' + str(tmp_path / 'events.sqlite3'))}\n"
        f"[databases]\nserver_url = {json.dumps(f'sqlite:///{folder}')}\n"
        f"[mail]\nca_file = {json.dumps(str(imap_certs.ca_cert))}\n"
        "io_timeout_seconds = 10\n"
        f"[oauth]\nmicrosoft_authority = {json.dumps(authority.microsoft_authority)}\n"
        f"google_token_uri = {json.dumps(authority.google_token_uri)}\n"
        f"ca_file = {json.dumps(str(imap_certs.ca_cert))}\n"
    )
    return config, url


def _environment(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("EMAIL_SERVICE_") or k == "EMAIL_SERVICE_SERVICE_KEY_FILE")
        and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    env["TERM"] = "dumb"
    env.update(extra)
    return env


class Terminal:
    """``email-service setup`` on a pty, with the transcript of all it wrote."""

    def __init__(self, config: Path, **env: str) -> None:
        self.transcript = io.StringIO()
        self.child = pexpect.spawn(
            str(EXE),
            ["--config", str(config), "setup", "--db", DB],
            env=_environment(**env),
            encoding="utf-8",
            timeout=STEP,
            dimensions=(50, 250),
        )
        self.child.logfile_read = self.transcript

    def answer(self, question: str, reply: str) -> None:
        self.child.expect_exact(question)
        self.child.sendline(reply)

    def sees(self, text: str) -> None:
        self.child.expect_exact(text)

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus or 0)


def _sender_and_way(term: Terminal, flow: str) -> None:
    term.sees("Email Setup Wizard for database 'Smile Dental'")
    term.answer("From address (the practice's email address):", ADDRESS)
    term.answer("Sender name patients see:", DB)
    term.answer("Mail provider", "office365")
    term.sees("Recommended for this unattended server: app")
    term.answer("Sign in with Microsoft, or with a password [sign-in/password] (sign-in):", "")
    term.answer("[app/delegated] (app):", flow)
    term.answer(f"Mailbox the service signs in to [{ADDRESS}]:", "")
    term.answer("Directory (tenant) ID, or the organisation's domain", TENANT)


def _servers_and_test(
    term: Terminal,
    smtp_server: RecordingSmtpServer,
    dovecot: Dovecot,
    hosts: tuple[str, str] = ("smtp.office365.com", "outlook.office365.com"),
) -> None:
    term.answer(f"SMTP server (host name) [{hosts[0]}]:", "127.0.0.1")
    term.answer("SMTP security [none/starttls/tls] (starttls):", "")
    term.answer("SMTP port [587]:", str(smtp_server.port))
    term.sees(f"Sending signs in as {ADDRESS} (no password).")
    term.answer("Import incoming email over IMAP? [y/N]:", "y")
    term.answer(f"IMAP server (host name) [{hosts[1]}]:", "127.0.0.1")
    term.answer("IMAP security [none/starttls/tls] (tls):", "")
    term.answer("IMAP port [993]:", str(dovecot.tls_port))
    term.sees(f"Receiving signs in as {ADDRESS} (no password).")
    term.answer("Folder to import from [INBOX]:", "")
    term.answer("(keep):", "")
    term.answer("Send text messages (SMS)? [y/N]:", "")
    term.sees("SMTP (sending)    ok")
    term.sees("IMAP (receiving)  ok")
    term.answer("Every test passed. Save these settings? [Y/n]:", "y")
    term.sees("Saved.")
    term.answer(f"Send a test message to {ADDRESS}? [Y/n]:", "n")
    term.answer("Send a test message to another address (empty: none):", "")


def _stored(row: Mapping[str, Any], column: str, plain: str) -> bool:
    """``column`` holds ``plain`` in the encrypted form (``enc:v1:``, the host's key)."""
    value = row[column]
    if not (isinstance(value, str) and value.startswith("enc:v1:")):
        return False
    opened, problems = host_secrets().open_row({column: value})
    return not problems and opened[column] == plain


# --- in a terminal ----------------------------------------------------------------------------


def test_a_microsoft_app_only_set_up_in_a_terminal_passes_and_is_saved(
    site: tuple[Path, str],
    smtp_server: RecordingSmtpServer,
    oauth_dovecot: Dovecot,
    authority: OAuthAuthority,
) -> None:
    config, url = site
    term = Terminal(config)
    try:
        _sender_and_way(term, "")
        term.answer("Application (client) ID of the app registration:", APP_ID)
        term.sees(f"/{TENANT}/v2.0/adminconsent?client_id={APP_ID}")
        term.sees(
            f"New-ServicePrincipal -AppId {APP_ID} -ObjectId <Enterprise application Object ID>"
        )
        term.sees(f"Add-MailboxPermission -Identity {ADDRESS} -User")
        term.sees(f"Set-CASMailbox -Identity {ADDRESS} -SmtpClientAuthenticationDisabled $false")
        term.answer("Client secret (its Value):", APP_SECRET)
        term.answer("The client secret's end date (YYYY-MM-DD; empty: not known):", "2027-06-30")
        _servers_and_test(term, smtp_server, oauth_dovecot)
        status = term.finish()
    finally:
        term.child.close()
    transcript = term.transcript.getvalue()
    row = read_row(url)
    assert status == 0, transcript
    assert row is not None
    assert (row["smtp_auth"], row["imap_auth"], row["oauth_provider"], row["oauth_flow"]) == (
        "oauth2",
        "oauth2",
        "microsoft",
        "app",
    )
    assert (row["oauth_tenant"], row["oauth_client_id"], row["oauth_account"]) == (
        TENANT,
        APP_ID,
        ADDRESS,
    )
    assert _stored(row, "oauth_client_secret", APP_SECRET)
    assert str(row["oauth_expires_at"]).startswith("2027-06-30 23:59")
    assert APP_SECRET not in transcript


def test_a_refused_client_secret_is_explained_and_corrected_in_the_sign_in_part(
    site: tuple[Path, str],
    smtp_server: RecordingSmtpServer,
    oauth_dovecot: Dovecot,
    authority: Authority,
) -> None:
    config, url = site
    wrong = "Secret-ID-not-Value~42"
    term = Terminal(config)
    try:
        _sender_and_way(term, "")
        term.answer("Application (client) ID of the app registration:", APP_ID)
        term.answer("Client secret (its Value):", wrong)
        term.answer("The client secret's end date (YYYY-MM-DD; empty: not known):", "")
        term.answer("SMTP server (host name) [smtp.office365.com]:", "127.0.0.1")
        term.answer("SMTP security [none/starttls/tls] (starttls):", "")
        term.answer("SMTP port [587]:", str(smtp_server.port))
        term.answer("Import incoming email over IMAP? [y/N]:", "")
        term.answer("Send text messages (SMS)? [y/N]:", "")
        term.sees("SMTP (sending)    FAILED: the app's client secret is wrong: create a new one")
        term.sees("AADSTS7000215")
        term.answer("What now? [correct/test again/quit] (correct):", "")
        term.answer("Correct which part? [sender/sign-in/smtp/imap/sms] (sign-in):", "")
        term.answer("Sign in with Microsoft, or with a password [sign-in/password] (sign-in):", "")
        term.answer("[app/delegated] (app):", "")
        term.answer(f"Mailbox the service signs in to [{ADDRESS}]:", "")
        term.answer("Directory (tenant) ID, or the organisation's domain", "")
        term.answer(f"Application (client) ID of the app registration [{APP_ID}]:", "")
        term.answer("Client secret (its Value) (Enter keeps the saved one):", APP_SECRET)
        term.answer("The client secret's end date (YYYY-MM-DD; empty: not known):", "")
        term.sees("SMTP (sending)    ok")
        term.answer("Every test passed. Save these settings? [Y/n]:", "y")
        term.sees("Saved.")
        term.answer(f"Send a test message to {ADDRESS}? [Y/n]:", "n")
        term.answer("Send a test message to another address (empty: none):", "")
        status = term.finish()
    finally:
        term.child.close()
    transcript = term.transcript.getvalue()
    row = read_row(url)
    assert status == 0, transcript
    assert row is not None
    assert _stored(row, "oauth_client_secret", APP_SECRET)
    assert wrong not in transcript
    assert APP_SECRET not in transcript


def test_a_delegated_device_code_sign_in_in_a_terminal_saves_the_live_refresh_token(
    site: tuple[Path, str],
    smtp_server: RecordingSmtpServer,
    oauth_dovecot: Dovecot,
    authority: OAuthAuthority,
) -> None:
    config, url = site
    term = Terminal(config)
    try:
        _sender_and_way(term, "delegated")
        term.answer("Application (client) ID of the app registration:", PUBLIC_ID)
        term.sees("Allow public client flows")
        term.answer("Sign in now (the test needs it)? [Y/n]:", "")
        term.child.expect(r"enter the code ([0-9A-F]+) to authenticate")
        authority.approve_device(str(term.child.match.group(1)), ADDRESS)
        term.sees(f"Signed in as {ADDRESS}.")
        _servers_and_test(term, smtp_server, oauth_dovecot)
        status = term.finish()
    finally:
        term.child.close()
    transcript = term.transcript.getvalue()
    row = read_row(url)
    assert status == 0, transcript
    assert row is not None
    assert (row["oauth_flow"], row["oauth_client_id"], row["oauth_account"]) == (
        "delegated",
        PUBLIC_ID,
        ADDRESS,
    )
    [live] = authority.live_refresh_tokens(ADDRESS)
    assert _stored(row, "oauth_refresh_token", live)
    assert live not in transcript


def test_a_google_browser_sign_in_finished_by_pasting_the_address_over_ssh(
    site: tuple[Path, str],
    smtp_server: RecordingSmtpServer,
    oauth_dovecot: Dovecot,
    authority: Authority,
) -> None:
    config, url = site
    term = Terminal(config)
    try:
        term.sees("Email Setup Wizard for database 'Smile Dental'")
        term.answer("From address (the practice's email address):", ADDRESS)
        term.answer("Sender name patients see:", DB)
        term.answer("Mail provider", "gmail")
        term.sees("Recommended for a Workspace domain: app (a service account")
        term.answer("Sign in with Google, or with a password [sign-in/password] (sign-in):", "")
        term.answer("[app/delegated] (app):", "delegated")
        term.answer(f"Mailbox the service signs in to [{ADDRESS}]:", "")
        term.answer("OAuth client ID (Desktop app):", GOOGLE_ID)
        term.answer("OAuth client secret:", GOOGLE_SECRET)
        term.sees("Credentials, Create credentials, OAuth client ID, Desktop app")
        term.answer("Sign in now (the test needs it)? [Y/n]:", "")
        term.child.expect(r"(https://accounts\.google\.com/o/oauth2/auth\?\S+)")
        printed = str(term.child.match.group(1))
        term.sees("ssh -L")
        # The browser, on another computer: it ends on http://localhost:PORT/?... which
        # does not load there; the person copies that address into the wizard.
        ended_on = authority.authorize(printed, ADDRESS)
        term.answer("Paste the address the browser ended on", ended_on)
        try:
            term.sees(f"Signed in as {ADDRESS}.")
        except pexpect.TIMEOUT:
            raise AssertionError(term.transcript.getvalue()[-1500:]) from None
        _servers_and_test(term, smtp_server, oauth_dovecot, ("smtp.gmail.com", "imap.gmail.com"))
        status = term.finish()
    finally:
        term.child.close()
    transcript = term.transcript.getvalue()
    row = read_row(url)
    assert status == 0, transcript
    assert row is not None
    assert (row["oauth_provider"], row["oauth_flow"], row["oauth_client_id"]) == (
        "google",
        "delegated",
        GOOGLE_ID,
    )
    [live] = authority.live_refresh_tokens(ADDRESS)[-1:]
    assert _stored(row, "oauth_refresh_token", live)
    assert _stored(row, "oauth_client_secret", GOOGLE_SECRET)
    assert GOOGLE_SECRET not in transcript
    assert live not in transcript


# --- without a terminal: the flags --------------------------------------------------------------


def _flags(
    config: Path, smtp_server: RecordingSmtpServer, dovecot: Dovecot, *extra: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(EXE), "--config", str(config), "setup", "--db", DB, "--no-input",
            "--from-address", ADDRESS, "--provider", "office365",
            "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_server.port),
            "--imap", "--imap-host", "127.0.0.1", "--imap-port", str(dovecot.tls_port),
            "--smtp-auth", "oauth2", "--imap-auth", "oauth2", *extra,
        ],
        env=_environment(**env),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )  # fmt: skip


def test_the_flags_set_up_microsoft_app_only_with_the_secret_from_the_environment(
    site: tuple[Path, str], smtp_server: RecordingSmtpServer, oauth_dovecot: Dovecot
) -> None:
    config, url = site
    done = _flags(
        config, smtp_server, oauth_dovecot,
        "--oauth-provider", "microsoft", "--oauth-flow", "app", "--oauth-tenant", TENANT,
        "--oauth-client-id", APP_ID, "--oauth-client-secret-env", "APP_SECRET",
        "--oauth-expires-at", "2027-01-31", "--save",
        APP_SECRET=APP_SECRET,
    )  # fmt: skip
    row = read_row(url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert row is not None
    assert (row["oauth_flow"], row["smtp_auth"], row["oauth_account"]) == ("app", "oauth2", "")
    assert _stored(row, "oauth_client_secret", APP_SECRET)
    assert str(row["oauth_expires_at"]).startswith("2027-01-31")
    assert APP_SECRET not in done.stdout + done.stderr


def test_a_refused_client_secret_fails_the_test_with_what_to_do(
    site: tuple[Path, str], smtp_server: RecordingSmtpServer, oauth_dovecot: Dovecot
) -> None:
    config, url = site
    done = _flags(
        config, smtp_server, oauth_dovecot,
        "--oauth-provider", "microsoft", "--oauth-flow", "app", "--oauth-tenant", TENANT,
        "--oauth-client-id", APP_ID, "--oauth-client-secret-env", "APP_SECRET", "--save",
        APP_SECRET="Wrong-canary-Secret~1",
    )  # fmt: skip
    assert done.returncode == 1
    assert "the app's client secret is wrong: create a new one" in done.stdout
    assert "AADSTS7000215" in done.stdout
    assert "Wrong-canary-Secret~1" not in done.stdout + done.stderr
    row = read_row(url)
    assert row is None or row["smtp_auth"] != "oauth2"


def test_the_flags_set_up_a_google_workspace_service_account(
    site: tuple[Path, str],
    smtp_server: RecordingSmtpServer,
    oauth_dovecot: Dovecot,
    authority: OAuthAuthority,
) -> None:
    config, url = site
    key = authority.add_service_account("mailer@smile-project.iam.example", {ADDRESS})
    done = _flags(
        config, smtp_server, oauth_dovecot,
        "--oauth-provider", "google", "--oauth-flow", "app", "--oauth-account", ADDRESS,
        "--oauth-client-secret-env", "KEY_JSON", "--save",
        KEY_JSON=json.dumps(key),
    )  # fmt: skip
    row = read_row(url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert row is not None
    assert (row["oauth_provider"], row["oauth_flow"]) == ("google", "app")
    assert key["private_key"].splitlines()[1] not in done.stdout + done.stderr


def test_a_secret_as_a_flags_value_is_refused_without_repeating_it(site: tuple[Path, str]) -> None:
    config, _url = site
    done = subprocess.run(
        [
            str(EXE),
            "--config",
            str(config),
            "setup",
            "--db",
            DB,
            "--oauth-client-secret",
            "S3cr3t-x",
        ],
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--oauth-client-secret-env" in done.stderr
    assert "S3cr3t-x" not in done.stderr


def test_setup_help_lists_the_sign_in_flags() -> None:
    done = subprocess.run(
        [str(EXE), "setup", "--help"],
        env=_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    flags = set(re.findall(r"--[a-z0-9-]+", done.stdout))
    assert {
        "--smtp-auth",
        "--imap-auth",
        "--oauth-provider",
        "--oauth-flow",
        "--oauth-tenant",
        "--oauth-client-id",
        "--oauth-account",
        "--oauth-expires-at",
        "--oauth-client-secret-env",
        "--oauth-refresh-token-env",
    } <= flags


def test_the_expiry_flag_takes_a_date_only(site: tuple[Path, str]) -> None:
    config, _url = site
    done = subprocess.run(
        [
            str(EXE), "--config", str(config), "setup", "--db", DB, "--no-input",
            "--oauth-expires-at", "next June",
        ],
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--oauth-expires-at: 'next June' is not a date" in done.stderr


# --- the wizard's words, pure ---------------------------------------------------------------


def test_microsoft_is_recommended_app_only_and_gmail_delegated() -> None:
    assert recommended_flow("microsoft", ADDRESS) == "app"
    assert recommended_flow("google", "smile@workspace.example") == "app"
    assert recommended_flow("google", "smile.dental@gmail.com") == "delegated"
    assert recommended_flow("microsoft", "smile.dental@outlook.com") == "delegated"


def test_the_presets_servers_say_which_provider_signs_in() -> None:
    office = with_provider(EmailSettings(from_address=ADDRESS), provider_named("office365"))  # type: ignore[arg-type]
    gmail = with_provider(EmailSettings(from_address=ADDRESS), provider_named("gmail"))  # type: ignore[arg-type]
    assert (provider_of(office), provider_of(gmail)) == ("microsoft", "google")
    assert provider_of(EmailSettings(smtp_host="mail.smile.example")) == ""


def test_the_google_service_account_steps_name_its_client_id_and_the_scope() -> None:
    settings = EmailSettings(oauth_provider="google", oauth_flow="app", oauth_account=ADDRESS)
    steps = "\n".join(admin_steps(settings, "1234567890"))
    assert "Client ID: 1234567890" in steps
    assert "OAuth scopes: https://mail.google.com/" in steps


def test_a_tenant_is_a_guid_or_a_domain_never_common() -> None:
    assert check_tenant(f" {TENANT} ") == TENANT
    assert check_tenant("smiledental.onmicrosoft.com") == "smiledental.onmicrosoft.com"
    assert check_tenant("consumers") == "consumers"
    with pytest.raises(AnswerError, match="is not a tenant"):
        check_tenant("common")


def test_an_expiry_date_is_the_end_of_that_day() -> None:
    assert parse_expiry("2027-06-30") == datetime(2027, 6, 30, 23, 59)
    assert parse_expiry("") is None


def test_a_key_file_that_is_not_a_service_account_is_refused_without_its_text(
    tmp_path: Path,
) -> None:
    path = tmp_path / "key.json"
    path.write_text('{"type": "authorized_user", "client_secret": "Leak-me-not"}')
    with pytest.raises(AnswerError) as refused:
        read_key_file(str(path), "")
    assert "not a service account key file" in str(refused.value)
    assert "Leak-me-not" not in str(refused.value)


# --- Google's browser sign-in: the loopback answer and the pasted address ------------------------


def test_google_browser_sign_in_takes_the_loopback_answer_and_asks_for_a_code(
    authority: OAuthAuthority,
) -> None:
    endpoint = oauth_endpoints(authority).google
    browser = GoogleBrowserSignIn(endpoint, "client-1", "client-secret-1", ADDRESS, port=0)
    try:
        assert "login_hint=reception%40smile.example" in browser.url
        assert "access_type=offline" in browser.url
        back = f"http://127.0.0.1:{browser.port}/?state=x&error=access_denied"
        with urllib.request.urlopen(back, timeout=10) as answer:
            assert answer.status == 200
        received = browser.received()
        with pytest.raises(OAuthError, match="access_denied"):
            browser.finish(received)
        with pytest.raises(OAuthError, match="no sign-in answer"):
            browser.finish("http://localhost:8765/")
    finally:
        browser.close()
    assert received.endswith("/?state=x&error=access_denied")


# --- the sign-in section's choices (a scripted prompt; no servers needed) -------------------------


def _wizard(prompt: ScriptedPrompt) -> Wizard:
    def no_save(_settings: EmailSettings) -> None:
        raise AssertionError("nothing is saved here")

    return Wizard(prompt, ProbeChecker(mail_settings()), no_save)


def test_choosing_a_password_at_microsoft_keeps_passwords_and_asks_nothing_more() -> None:
    office = with_provider(EmailSettings(from_address=ADDRESS), provider_named("office365"))  # type: ignore[arg-type]
    prompt = ScriptedPrompt([("Sign in with Microsoft", "password")])
    settings = _wizard(prompt).ask_sign_in(dataclasses.replace(office, smtp_auth="oauth2"))
    assert (settings.smtp_auth, settings.imap_auth) == ("password", "password")
    assert "Recommended for this unattended server: app" in prompt.screen


def test_a_server_at_neither_provider_asks_no_sign_in_question() -> None:
    prompt = ScriptedPrompt([])
    settings = EmailSettings(from_address=ADDRESS, smtp_host="mail.smile.example")
    assert _wizard(prompt).ask_sign_in(settings) == settings
    assert prompt.asked == []


def test_changing_the_way_forgets_the_other_ways_secrets() -> None:
    saved = dataclasses.replace(
        with_provider(EmailSettings(from_address=ADDRESS), provider_named("office365")),  # type: ignore[arg-type]
        smtp_auth="oauth2",
        oauth_provider="microsoft",
        oauth_flow="delegated",
        oauth_tenant=TENANT,
        oauth_client_id=PUBLIC_ID,
        oauth_refresh_token="rt-old-sign-in",
    )
    prompt = ScriptedPrompt(
        [
            ("Sign in with Microsoft", ""),
            ("Which way", "app"),
            ("Mailbox the service signs in to", ""),
            ("Directory (tenant) ID", ""),
            ("Application (client) ID", APP_ID),
            ("Client secret", APP_SECRET),
            ("end date", ""),
        ]
    )
    settings = _wizard(prompt).ask_sign_in(saved)
    assert (settings.oauth_flow, settings.oauth_refresh_token) == ("app", "")
    assert settings.oauth_client_secret == APP_SECRET
    assert APP_SECRET not in prompt.screen
