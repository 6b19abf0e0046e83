"""Testing a practice's mail set-up before it is saved: the self-test's own probes.

``ProbeChecker.check`` runs, for each enabled component, the same check the service's
self-test runs: ``actors.mail.smtp_transport.probe`` (connect, TLS, log in, no mail sent)
and ``actors.mail.imap_session.probe`` (connect, TLS, log in, open the folder read-only).
SMS is checked without sending a text: the gateway setting must be valid, and an
email-to-SMS gateway needs the SMTP test to pass. Each result carries the probe's reason
in plain words and, from ``advice_for``, what to do about it. No text made here holds a
password: the probes' reasons are scrubbed by the probes, and ``scrub`` is applied again.

The checks block the calling thread: about ``mail.io_timeout_seconds`` per server that
does not answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from actors.mail import imap_session, sign_in_words, smtp_transport
from actors.mail.oauth import OAuthEndpoints, OAuthError, TokenSource, token_source
from actors.mail.settings import EmailSettings
from actors.mail.sms import EmailGateway
from config.settings import MailSettings, OAuthSettings
from supervisor.setup.answers import AnswerError, check_gateway, check_region

COMPONENT_NAMES = {"smtp": "SMTP (sending)", "imap": "IMAP (receiving)", "sms": "SMS"}
"""How each component is named on screen."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One component's test: ``ok``, or the ``reason`` it failed and ``advice`` for a
    person. ``note`` is shown beside an ``ok`` (what was and was not tested)."""

    component: str
    ok: bool
    reason: str = ""
    advice: str = ""
    note: str = ""


class Checker(Protocol):
    """Tests every enabled component of a practice's settings."""

    def check(self, settings: EmailSettings) -> tuple[CheckResult, ...]:
        """Return one result per enabled component: SMTP always, IMAP and SMS when on."""
        ...


def enabled_components(settings: EmailSettings) -> tuple[str, ...]:
    """Return the components to test: ``smtp`` always (the practice sends through it),
    ``imap`` when ``imap_enabled``, ``sms`` when ``sms_enabled``."""
    return (
        ("smtp",)
        + (("imap",) if settings.imap_enabled else ())
        + (("sms",) if settings.sms_enabled else ())
    )


_ADVICE: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("wrong user name or password",),
        "Check the user name and password. Many providers want an app password here, "
        "not the password used to log in on their website.",
    ),
    (
        ("not trusted",),
        "This computer does not trust the server's certificate. Use the server name "
        "written on its certificate (usually the provider's name, such as "
        "smtp.example.com, not an IP address); for a server with a private certificate, "
        "set mail.ca_file in the configuration.",
    ),
    (
        ("does not offer starttls", "tls handshake", "tls failed"),
        "The security setting does not fit the port: use tls with 465 (SMTP) or 993 "
        "(IMAP), starttls with 587 (SMTP) or 143 (IMAP).",
    ),
    (
        ("port closed", "is closed", "connection refused"),
        "Nothing accepts connections on that port: check the port number and the "
        "security setting (SMTP: 587 starttls or 465 tls; IMAP: 993 tls or 143 "
        "starttls), and that the mail server is running.",
    ),
    (
        ("host not found", "was not found"),
        "The host name was not found: check its spelling, and that this computer can "
        "look up names on the internet (DNS).",
    ),
    (
        ("timed out", "unreachable", "did not answer", "no answer from"),
        "The server did not answer: the host is unreachable from this computer or a "
        "firewall drops the connection. Check the host name and port, and that this "
        "computer may connect out to that port.",
    ),
    (
        ("does not exist on",),
        "Check the folder name (INBOX is the usual one) or create the folder.",
    ),
    (
        ("does not offer auth",),
        "The server does not accept a log-in on this connection: try starttls or tls, "
        "or leave the user name empty if the server needs no log-in.",
    ),
)


def advice_for(reason: str) -> str:
    """Return what a person should do about a probe's ``reason``, or "" when the reason
    is not one the wizard knows (the reason itself is then all there is)."""
    folded = reason.casefold()
    for needles, advice in _ADVICE:
        if any(needle in folded for needle in needles):
            return advice
    return ""


def failed(component: str, reason: str, settings: EmailSettings) -> CheckResult:
    """Return a failed result with ``reason`` on one line (the probes' reasons hold no
    secret: what a server said to a log-in went through ``actors.mail.redact``) and advice
    added."""
    line = smtp_transport.scrub(reason, settings)
    return CheckResult(component, False, line, advice_for(line))


class ProbeChecker:
    """The real checker: the self-test's probes, with the service's ``[mail]`` settings
    (timeout, extra certificate authorities) and, for OAuth 2.0 sign-in, its ``[oauth]``
    providers (``oauth``): one token source per check, shared by SMTP and IMAP as the
    service shares it. A refresh token the provider replaced during the check (Microsoft
    does at every use) is kept: ``latest`` puts it into the settings to save."""

    def __init__(
        self,
        mail: MailSettings,
        *,
        local_hostname: str = "",
        oauth: OAuthSettings | None = None,
    ) -> None:
        self._mail = mail
        self._local_hostname = local_hostname
        self._endpoints = OAuthEndpoints(oauth or OAuthSettings(), mail.io_timeout_seconds)
        self._rotated: tuple[str, str] | None = None  # (given, replaced by)

    def check(self, settings: EmailSettings) -> tuple[CheckResult, ...]:
        settings = self.latest(settings)
        tokens: TokenSource | None = None
        sign_in_failure = ""
        if settings.uses_oauth:
            given = settings.oauth_refresh_token

            def keep(new: str) -> None:
                self._rotated = (given, new)

            try:
                tokens = token_source(settings, self._endpoints, save_refresh_token=keep)
            except OAuthError as exc:
                sign_in_failure = str(exc)
        results: list[CheckResult] = []
        for component in enabled_components(settings):
            if component in ("smtp", "imap") and sign_in_failure and _signs_in(settings, component):
                reason = sign_in_words.advised(sign_in_failure, settings, "token")
                results.append(failed(component, reason, settings))
            elif component == "smtp":
                results.append(self._smtp(settings, tokens))
            elif component == "imap":
                results.append(self._imap(settings, tokens))
            else:
                results.append(sms_result(settings, results))
        return tuple(results)

    def latest(self, settings: EmailSettings) -> EmailSettings:
        """``settings`` with the refresh token that replaced theirs during a check."""
        if self._rotated is not None and self._rotated[0] == settings.oauth_refresh_token:
            return dataclasses.replace(settings, oauth_refresh_token=self._rotated[1])
        return settings

    def _smtp(self, settings: EmailSettings, tokens: TokenSource | None) -> CheckResult:
        result = smtp_transport.probe(
            settings,
            timeout=self._mail.io_timeout_seconds,
            ca_file=self._mail.ca_file,
            local_hostname=self._local_hostname,
            tokens=tokens,
        )
        return CheckResult("smtp", True) if result.ok else failed("smtp", result.reason, settings)

    def _imap(self, settings: EmailSettings, tokens: TokenSource | None) -> CheckResult:
        result = imap_session.probe(settings, self._mail, tokens)
        return CheckResult("imap", True) if result.ok else failed("imap", result.reason, settings)


def _signs_in(settings: EmailSettings, component: str) -> bool:
    return (settings.smtp_auth if component == "smtp" else settings.imap_auth) == "oauth2"


def sms_result(settings: EmailSettings, earlier: Sequence[CheckResult]) -> CheckResult:
    """Return the SMS result: the gateway and region must be valid; an email-to-SMS
    gateway also needs the SMTP result in ``earlier`` to be ok. No text is sent."""
    try:
        gateway = check_gateway(settings.sms_gateway)
        check_region(settings.sms_region)
    except AnswerError as exc:
        return CheckResult("sms", False, str(exc), "Correct the SMS settings (see docs/sms.md).")
    if isinstance(gateway, EmailGateway):
        smtp_ok = any(r.component == "smtp" and r.ok for r in earlier)
        if not smtp_ok:
            return CheckResult(
                "sms",
                False,
                "the email-to-SMS gateway sends through the SMTP server, which failed its test",
                "Correct the SMTP settings first.",
            )
        return CheckResult("sms", True, note="texts go out as email through the SMTP server")
    return CheckResult("sms", True, note=f"gateway {gateway.host} is valid; no test text was sent")
