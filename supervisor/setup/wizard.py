"""The Email Setup Wizard's flow: ask, test, correct, save when asked.

``Wizard.run`` is the interactive flow on a ``Prompt``: the sender (from address, name,
known provider), signing in for Microsoft 365 and Google (sign-in or a password; app or
delegated, the recommended way first; the administrator's steps; a person's sign-in now for
delegated: ``supervisor.setup.sign_in``/``sign_in_flow``), sending over SMTP, receiving over
IMAP (on or off, folder, what happens after import), SMS (on or off, gateway), each question
offering the draft's value as its default; then every enabled connection is tested
(``supervisor.setup.checks``) and the result shown per component, ``ok`` or the server's
answer in plain words with what to do. After a failure the person may correct one part and
test again, or quit; settings are saved only when the person says so, and only when every
test passed unless the wizard was started with ``force``. ``run_unattended`` is the same
test-and-save decision without questions, for ``--no-input``.

Passwords and sign-in secrets (client secret, refresh token, key file) are asked with
``Prompt.ask_secret`` or read from a file, and are never part of any text this module
produces. Saving goes through the ``save`` callable given (one transaction).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from actors.mail import sign_in_words
from actors.mail.oauth import OAuthError
from actors.mail.settings import OAUTH_FLOWS, OAUTH_PROVIDERS, SECURITY_CHOICES, EmailSettings
from actors.mail.sms import HttpGateway
from supervisor.setup.answers import (
    AFTER_IMPORT_ACTIONS,
    AnswerError,
    check_address,
    check_client_id,
    check_folder,
    check_gateway,
    check_host,
    check_region,
    check_tenant,
    parse_expiry,
    parse_port,
    port_for,
)
from supervisor.setup.checks import COMPONENT_NAMES, Checker, CheckResult
from supervisor.setup.draft import with_provider
from supervisor.setup.prompt import Prompt
from supervisor.setup.providers import (
    Provider,
    domain_of,
    provider_for,
    provider_keys,
    provider_named,
)
from supervisor.setup.sign_in import admin_steps, provider_of, recommendation, recommended_flow
from supervisor.setup.sign_in_flow import SignIns

SECTIONS = ("sender", "sign-in", "smtp", "imap", "sms")
"""The parts of the settings a person can go back and correct."""
_PASSWORD_SECTIONS = tuple(s for s in SECTIONS if s != "sign-in")
"""The parts offered when the mail servers are neither Microsoft's nor Google's."""

SaveFn = Callable[[EmailSettings], None]
SendTestFn = Callable[[str], Sequence[str]]
"""Sends a test message to an address through the practice's outbox and returns the
outcome in words (``supervisor.test_message``)."""
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the wizard ended: the settings last tested, their results, and whether they
    were saved."""

    settings: EmailSettings
    results: tuple[CheckResult, ...]
    saved: bool

    @property
    def all_passed(self) -> bool:
        """Whether every enabled component passed its test."""
        return all(r.ok for r in self.results)


def result_lines(results: Sequence[CheckResult]) -> list[str]:
    """Return the test results for people: one line per component, ``ok`` or ``FAILED:``
    with the reason, then a "What to do" line when there is advice."""
    width = max(len(name) for name in COMPONENT_NAMES.values())
    lines = []
    for result in results:
        name = COMPONENT_NAMES[result.component].ljust(width)
        if result.ok:
            lines.append(f"  {name}  ok" + (f" ({result.note})" if result.note else ""))
            continue
        lines.append(f"  {name}  FAILED: {result.reason}")
        if result.advice:
            lines.append(f"  {' ' * width}  What to do: {result.advice}")
    return lines


def _until_valid(prompt: Prompt, ask: Callable[[], str], check: Callable[[str], _T]) -> _T:
    """Ask until ``check`` accepts the answer; show each ``AnswerError`` and ask again."""
    while True:
        try:
            return check(ask())
        except AnswerError as exc:
            prompt.say(str(exc))


class Wizard:
    """The interactive flow; see the module docstring. One use per ``run``."""

    def __init__(
        self,
        prompt: Prompt,
        checker: Checker,
        save: SaveFn,
        *,
        force: bool = False,
        timeout_hint: float = 0.0,
        send_test: SendTestFn | None = None,
        sign_ins: SignIns | None = None,
    ) -> None:
        self._prompt = prompt
        self._sign_ins = sign_ins
        self._checker = checker
        self._save = save
        self._force = force
        self._timeout_hint = timeout_hint
        self._send_test = send_test

    # --- the whole flow -------------------------------------------------------------

    def run(self, draft: EmailSettings, provider: Provider | None = None) -> Outcome:
        """Ask every section starting from ``draft`` (the saved row with any flags and a
        provider applied: ``supervisor.setup.draft.build_draft``), test, offer
        corrections, save when asked. ``provider`` is the provider already applied, whose
        note is shown first."""
        settings = draft
        if provider is not None:
            self._prompt.say(f"\n{provider.name}: its server settings are offered. {provider.note}")
        for section in SECTIONS:
            settings = self.ask_section(section, settings)
        while True:
            results = self.test(settings)
            if all(r.ok for r in results):
                return self._offer_save(settings, results)
            choice = self._after_failure()
            if choice == "quit":
                self._prompt.say("Nothing was saved.")
                return Outcome(settings, results, saved=False)
            if choice == "save anyway":
                return self._store(settings, results)
            if choice == "correct":
                first_failed = next(r.component for r in results if not r.ok)
                default = "smtp" if first_failed == "sms" else first_failed
                sections = SECTIONS if provider_of(settings) else _PASSWORD_SECTIONS
                if default in ("smtp", "imap") and settings.uses_oauth:
                    default = "sign-in"  # a refused sign-in is corrected there first
                section = self._prompt.choose("Correct which part?", sections, default)
                settings = self.ask_section(section, settings)

    def test(self, settings: EmailSettings) -> tuple[CheckResult, ...]:
        """Test every enabled connection and show the results."""
        hint = (
            f" (a server that does not answer takes up to {self._timeout_hint:g} s)"
            if self._timeout_hint
            else ""
        )
        self._prompt.say(f"\nTesting the connections{hint}...")
        results = self._checker.check(settings)
        self._prompt.say("\n".join(result_lines(results)))
        return results

    def _after_failure(self) -> str:
        choices = ["correct", "test again", "quit"]
        if self._force:
            choices.append("save anyway")
        else:
            self._prompt.say(
                "Settings that fail a test are not saved (start the wizard with --force "
                "to be allowed to save them anyway)."
            )
        return self._prompt.choose("What now?", choices, "correct")

    def _offer_save(self, settings: EmailSettings, results: tuple[CheckResult, ...]) -> Outcome:
        if self._prompt.confirm("Every test passed. Save these settings?", True):
            return self._store(settings, results)
        self._prompt.say("Nothing was saved.")
        return Outcome(settings, results, saved=False)

    def _store(self, settings: EmailSettings, results: tuple[CheckResult, ...]) -> Outcome:
        settings = latest_sign_in(self._checker, settings)
        self._save(settings)
        self._prompt.say(
            "Saved. The email service restarts this database's mailbox to use them: "
            "`email-service status` shows the result within one check-in interval."
        )
        if self._send_test is not None:
            self.offer_test_message(settings.from_address)
        return Outcome(settings, results, saved=True)

    def offer_test_message(self, from_address: str) -> None:
        """After saving: offer a test message through the practice's outbox, to the
        practice's own address or another one, and show what the mail server answered."""
        if self._send_test is None:
            return
        p = self._prompt
        to = ""
        if from_address and p.confirm(f"Send a test message to {from_address}?", True):
            to = from_address
        else:
            to = _until_valid(
                p,
                lambda: p.ask("Send a test message to another address (empty: none)"),
                lambda text: check_address(text) if text.strip() else "",
            )
        if to:
            p.say("\n".join(self._send_test(to)))

    # --- the sections ---------------------------------------------------------------

    def ask_section(self, section: str, settings: EmailSettings) -> EmailSettings:
        """Ask one section's questions; return the settings with the answers."""
        if section == "sender":
            return self.ask_sender(settings)
        if section == "sign-in":
            return self.ask_sign_in(settings)
        if section == "smtp":
            return self.ask_smtp(settings)
        if section == "imap":
            return self.ask_imap(settings)
        if section == "sms":
            return self.ask_sms(settings)
        raise ValueError(f"unknown section {section!r}")

    def ask_sender(self, settings: EmailSettings) -> EmailSettings:
        """From address (checked), sender name, and a known provider's servers: those of
        the new address's provider when the address moved to another domain or no server
        is set yet; when none is known and no server is set, the person may name one."""
        p = self._prompt
        p.say("\nThe sender")
        before = settings.from_address
        address = _until_valid(
            p,
            lambda: p.ask("From address (the practice's email address)", before),
            check_address,
        )
        name = p.ask("Sender name patients see", settings.from_name).strip()
        settings = dataclasses.replace(settings, from_address=address, from_name=name)
        provider = None
        if not settings.smtp_host or domain_of(before) != domain_of(address):
            provider = provider_for(address)
        if provider is None and not settings.smtp_host:
            provider = self._ask_provider()
        if provider is not None:
            settings = with_provider(settings, provider)
            p.say(f"{provider.name}: its server settings are filled in below. {provider.note}")
        return settings

    def _ask_provider(self) -> Provider | None:
        keys = ("other", *provider_keys())
        p = self._prompt
        chosen = p.choose(
            "Mail provider (gmail for Google Workspace, office365 for Microsoft 365; "
            "other: you enter the servers)",
            keys,
            "other",
        )
        return None if chosen == "other" else provider_named(chosen)

    def _server(
        self, kind: str, label: str, host: str, security: str, port: int
    ) -> tuple[str, str, int]:
        p = self._prompt
        host = _until_valid(
            p, lambda: p.ask(f"{label} server (host name)", host), lambda t: check_host(t, label)
        )
        security = p.choose(f"{label} security", SECURITY_CHOICES, security)
        offered = str(port_for(kind, security, port))
        port = _until_valid(p, lambda: p.ask(f"{label} port", offered), parse_port)
        return host, security, port

    def _password(self, label: str, saved: str, fallback: str = "", fallback_name: str = "") -> str:
        if saved:
            text = f"{label} password (Enter keeps the saved one)"
        elif fallback:
            text = f"{label} password (Enter: the same as the {fallback_name} password)"
        else:
            text = f"{label} password"
        answer = self._prompt.ask_secret(text)
        return answer or saved or fallback

    def ask_sign_in(self, settings: EmailSettings) -> EmailSettings:
        """Microsoft 365 or Google: sign in (recommended; which way and why, what an
        administrator does once, a person's sign-in now when delegated) or a password.
        Other providers: nothing is asked (passwords)."""
        provider = provider_of(settings)
        if provider not in OAUTH_PROVIDERS:
            return settings
        p = self._prompt
        name = "Microsoft" if provider == "microsoft" else "Google"
        p.say(f"\nSigning in ({name})")
        p.say("\n".join(recommendation(provider, settings.from_address)))
        password_only = not settings.uses_oauth and bool(settings.smtp_password)
        way = p.choose(
            f"Sign in with {name}, or with a password",
            ("sign-in", "password"),
            "password" if password_only else "sign-in",
        )
        if way == "password":
            return dataclasses.replace(settings, smtp_auth="password", imap_auth="password")
        same_provider = settings.oauth_provider == provider and settings.oauth_flow in OAUTH_FLOWS
        flow = p.choose(
            "Which way (app: the service signs in as itself; delegated: a person signs in once)",
            OAUTH_FLOWS,
            settings.oauth_flow
            if same_provider
            else recommended_flow(provider, settings.from_address),
        )
        account = _until_valid(
            p,
            lambda: p.ask(
                "Mailbox the service signs in to", settings.oauth_account or settings.from_address
            ),
            check_address,
        )
        if not same_provider or flow != settings.oauth_flow:  # nothing saved fits any more
            settings = dataclasses.replace(
                settings,
                oauth_client_secret="",
                oauth_refresh_token="",
                oauth_expires_at=None,
            )
        settings = dataclasses.replace(
            settings,
            smtp_auth="oauth2",
            imap_auth="oauth2",
            oauth_provider=provider,
            oauth_flow=flow,
            oauth_account=account,
        )
        if provider == "microsoft":
            return self._microsoft(settings)
        return self._google(settings)

    def _microsoft(self, settings: EmailSettings) -> EmailSettings:
        p = self._prompt
        tenant = _until_valid(
            p,
            lambda: p.ask(
                "Directory (tenant) ID, or the organisation's domain (xyz.onmicrosoft.com)",
                settings.oauth_tenant,
            ),
            check_tenant,
        )
        client_id = _until_valid(
            p,
            lambda: p.ask(
                "Application (client) ID of the app registration", settings.oauth_client_id
            ),
            check_client_id,
        )
        changed = (tenant, client_id) != (settings.oauth_tenant, settings.oauth_client_id)
        settings = dataclasses.replace(settings, oauth_tenant=tenant, oauth_client_id=client_id)
        p.say("\n".join(admin_steps(settings)))
        if settings.oauth_flow == "app":
            secret = self._secret(
                "Client secret (its Value)", bool(settings.oauth_client_secret) and not changed
            )
            expires = _until_valid(
                p,
                lambda: p.ask(
                    "The client secret's end date (YYYY-MM-DD; empty: not known)",
                    f"{settings.oauth_expires_at:%Y-%m-%d}" if settings.oauth_expires_at else "",
                ),
                parse_expiry,
            )
            return dataclasses.replace(
                settings,
                oauth_client_secret=secret or settings.oauth_client_secret,
                oauth_refresh_token="",
                oauth_expires_at=expires,
            )
        settings = dataclasses.replace(settings, oauth_client_secret="", oauth_expires_at=None)
        if settings.oauth_refresh_token and not changed:
            if not p.confirm("A sign-in is saved. Sign in again?", False):
                return settings
        elif not p.confirm("Sign in now (the test needs it)?", True):
            return settings
        return self._device_sign_in(settings)

    def _device_sign_in(self, settings: EmailSettings) -> EmailSettings:
        p = self._prompt
        if self._sign_ins is None:
            p.say("Signing in is not available here.")
            return settings
        try:
            device = self._sign_ins.microsoft_device(
                settings.oauth_tenant, settings.oauth_client_id, ""
            )
            p.say(f"\n{device.message}")
            p.say(f"Sign in as {settings.oauth_account}. Waiting for the sign-in...")
            signed = device.finish()
        except OAuthError as exc:
            p.say(f"The sign-in failed: {_advised(str(exc), settings)}")
            return settings
        return self._signed_in(settings, signed.account, signed.refresh_token)

    def _signed_in(
        self, settings: EmailSettings, account: str, refresh_token: str
    ) -> EmailSettings:
        p = self._prompt
        if account and account.casefold() != settings.oauth_account.casefold():
            p.say(
                f"Signed in as {account}, not {settings.oauth_account}: the service uses "
                f"{account}'s sign-in for {settings.oauth_account} (it needs access to it)."
            )
        else:
            p.say(f"Signed in as {account or settings.oauth_account}.")
        return dataclasses.replace(settings, oauth_refresh_token=refresh_token)

    def _google(self, settings: EmailSettings) -> EmailSettings:
        p = self._prompt
        if settings.oauth_flow == "app":
            key, client_id = _until_valid(
                p,
                lambda: p.ask(
                    "Service account key file (JSON)"
                    + (" (Enter keeps the saved key)" if settings.oauth_client_secret else "")
                ),
                lambda text: read_key_file(text, settings.oauth_client_secret),
            )
            settings = dataclasses.replace(
                settings, oauth_client_secret=key, oauth_client_id=client_id, oauth_tenant=""
            )
            p.say("\n".join(admin_steps(settings, client_id)))
            return settings
        client_id = _until_valid(
            p,
            lambda: p.ask("OAuth client ID (Desktop app)", settings.oauth_client_id),
            check_client_id,
        )
        changed = client_id != settings.oauth_client_id
        secret = self._secret(
            "OAuth client secret", bool(settings.oauth_client_secret) and not changed
        )
        settings = dataclasses.replace(
            settings,
            oauth_client_id=client_id,
            oauth_client_secret=secret or settings.oauth_client_secret,
            oauth_tenant="",
        )
        p.say("\n".join(admin_steps(settings)))
        if settings.oauth_refresh_token and not changed and not secret:
            if not p.confirm("A sign-in is saved. Sign in again?", False):
                return settings
        elif not p.confirm("Sign in now (the test needs it)?", True):
            return settings
        return self._browser_sign_in(settings)

    def _browser_sign_in(self, settings: EmailSettings) -> EmailSettings:
        p = self._prompt
        if self._sign_ins is None:
            p.say("Signing in is not available here.")
            return settings
        try:
            browser = self._sign_ins.google_browser(
                settings.oauth_client_id, settings.oauth_client_secret, settings.oauth_account
            )
        except OAuthError as exc:
            p.say(f"The sign-in failed: {_advised(str(exc), settings)}")
            return settings
        try:
            p.say(
                f"\nOpen this address in a browser and sign in as {settings.oauth_account}:\n"
                f"  {browser.url}\n"
                f"Google then sends the browser to http://localhost:{browser.port}/ on this "
                "computer. Working over SSH? Either connect with "
                f"ssh -L {browser.port}:localhost:{browser.port} first, or, when the browser "
                "ends on a page that cannot be reached, copy that page's whole address from "
                "the address bar and paste it below."
            )
            while True:
                answer = p.ask(
                    "Paste the address the browser ended on (Enter once the browser says "
                    "the sign-in is complete; q: give up)"
                ).strip()
                if answer.casefold() in ("q", "quit"):
                    p.say("Not signed in.")
                    return settings
                url = answer or browser.received()
                if not url:
                    p.say("Nothing has come back yet: finish the sign-in in the browser first.")
                    continue
                try:
                    signed = browser.finish(url)
                except OAuthError as exc:
                    p.say(f"The sign-in failed: {_advised(str(exc), settings)}")
                    continue
                return self._signed_in(settings, signed.account, signed.refresh_token)
        finally:
            browser.close()

    def _secret(self, label: str, saved: bool) -> str:
        text = f"{label} (Enter keeps the saved one)" if saved else label
        while True:
            answer = self._prompt.ask_secret(text).strip()
            if answer or saved:
                return answer
            self._prompt.say(f"The {label.lower()} is needed.")

    def ask_smtp(self, settings: EmailSettings) -> EmailSettings:
        """Sending: host, security, port, user name, password."""
        p = self._prompt
        p.say("\nSending email (SMTP)")
        host, security, port = self._server(
            "smtp", "SMTP", settings.smtp_host, settings.smtp_security, settings.smtp_port
        )
        if settings.smtp_auth == "oauth2":
            p.say(f"Sending signs in as {settings.oauth_account} (no password).")
            return dataclasses.replace(
                settings,
                smtp_host=host,
                smtp_security=security,
                smtp_port=port,
                smtp_username=settings.oauth_account,
            )
        username = p.ask(
            "SMTP user name (empty: the server needs no log-in)",
            settings.smtp_username or settings.from_address,
        ).strip()
        password = self._password("SMTP", settings.smtp_password) if username else ""
        return dataclasses.replace(
            settings,
            smtp_host=host,
            smtp_security=security,
            smtp_port=port,
            smtp_username=username,
            smtp_password=password,
        )

    def ask_imap(self, settings: EmailSettings) -> EmailSettings:
        """Receiving: on or off; host, security, port, user name, password, folder and
        what happens to a message on the server after it is imported."""
        p = self._prompt
        p.say("\nReceiving email (IMAP)")
        if not p.confirm("Import incoming email over IMAP?", settings.imap_enabled):
            return dataclasses.replace(settings, imap_enabled=False)
        host, security, port = self._server(
            "imap", "IMAP", settings.imap_host, settings.imap_security, settings.imap_port
        )
        if settings.imap_auth == "oauth2":
            p.say(f"Receiving signs in as {settings.oauth_account} (no password).")
            username, password = settings.oauth_account, settings.imap_password
        else:
            username = p.ask(
                "IMAP user name", settings.imap_username or settings.smtp_username
            ).strip()
            same_account = username == settings.smtp_username
            password = self._password(
                "IMAP",
                settings.imap_password,
                settings.smtp_password if same_account else "",
                "SMTP",
            )
        folder = _until_valid(
            p, lambda: p.ask("Folder to import from", settings.imap_folder or "INBOX"), check_folder
        )
        current_action, _, current_target = settings.imap_after_import.partition(":")
        action = p.choose(
            "After import, the message on the server is (keep it, delete it, or move it "
            "to another folder)",
            AFTER_IMPORT_ACTIONS,
            current_action if current_action in AFTER_IMPORT_ACTIONS else "keep",
        )
        after = action
        if action == "move":
            target = _until_valid(
                p,
                lambda: p.ask("Move it to which folder", current_target or "Imported"),
                check_folder,
            )
            after = f"move:{target}"
        return dataclasses.replace(
            settings,
            imap_enabled=True,
            imap_host=host,
            imap_security=security,
            imap_port=port,
            imap_username=username,
            imap_password=password,
            imap_folder=folder,
            imap_after_import=after,
        )

    def ask_sms(self, settings: EmailSettings) -> EmailSettings:
        """SMS: on or off; the gateway (checked), its account for an HTTP gateway, and the
        country of numbers written without a country code."""
        p = self._prompt
        p.say("\nText messages (SMS)")
        if not p.confirm("Send text messages (SMS)?", settings.sms_enabled):
            return dataclasses.replace(settings, sms_enabled=False)
        gateway_text = ""

        def gateway_answer() -> str:
            return p.ask(
                "SMS gateway (email:{number}@gateway-domain, or the HTTP gateway's https:// URL)",
                settings.sms_gateway,
            )

        def check(text: str) -> str:
            check_gateway(text)
            return text.strip()

        gateway_text = _until_valid(p, gateway_answer, check)
        username, password, sender = settings.sms_username, settings.sms_password, settings.sms_from
        if isinstance(check_gateway(gateway_text), HttpGateway):
            username = p.ask("SMS gateway account name (empty: none)", username).strip()
            password = self._password("SMS gateway", password)
            sender = p.ask(
                "SMS sender (a number like +441234567890 or an approved name)", sender
            ).strip()
        region = _until_valid(
            p,
            lambda: p.ask(
                "Country of numbers written without a country code (two letters such as GB; "
                "empty: every number has one)",
                settings.sms_region,
            ),
            check_region,
        )
        return dataclasses.replace(
            settings,
            sms_enabled=True,
            sms_gateway=gateway_text,
            sms_username=username,
            sms_password=password,
            sms_from=sender,
            sms_region=region,
        )


def run_unattended(
    settings: EmailSettings,
    checker: Checker,
    save: SaveFn,
    *,
    save_requested: bool,
    force: bool,
) -> Outcome:
    """Test ``settings`` and save them when ``save_requested`` and every test passed (or
    ``force``). No questions; the caller shows the outcome."""
    results = checker.check(settings)
    passed = all(r.ok for r in results)
    if save_requested and (passed or force):
        settings = latest_sign_in(checker, settings)
        save(settings)
        return Outcome(settings, results, saved=True)
    return Outcome(settings, results, saved=False)


def _advised(reason: str, settings: EmailSettings) -> str:
    return sign_in_words.advised(reason, settings, "token")


def read_key_file(path: str, saved: str) -> tuple[str, str]:
    """Return a Google service account key file's JSON text and its ``client_id``; an empty
    ``path`` keeps ``saved``. Raises ``AnswerError`` (never repeating the key) when the file
    cannot be read or is not a service account key."""
    if not path.strip():
        if not saved:
            raise AnswerError("The key file is needed: the JSON file of the service account key.")
        text = saved
    else:
        try:
            text = Path(path.strip()).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise AnswerError(f"{path.strip()!r} cannot be read ({exc.strerror}).") from None
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise AnswerError(
            'That is not a service account key file (JSON with "type": "service_account"): '
            "create one in the Google Cloud console (Service accounts, Keys, Add key, JSON)."
        )
    for field_name in ("client_email", "private_key"):
        if not info.get(field_name):
            raise AnswerError(f"The key file lacks its {field_name}: download a new key.")
    return text, str(info.get("client_id") or "")


def latest_sign_in(checker: Checker, settings: EmailSettings) -> EmailSettings:
    """``settings`` with the refresh token the connection test rotated to, when it did (a
    Microsoft refresh token is replaced at every use; the old one no longer works)."""
    latest = getattr(checker, "latest", None)
    return latest(settings) if callable(latest) else settings
