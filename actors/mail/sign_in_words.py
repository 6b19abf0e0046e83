"""Sign-in failures in plain words: what a mail or sign-in server's text means, and what to do.

Microsoft 365 and Google answer a refused sign-in with texts that mean something precise
to an administrator and nothing to a receptionist (``550 5.7.30 Basic authentication is
not supported for Client Submission.``, ``AADSTS700082: ...``, a base64 JSON challenge).
``advice(text, ...)`` returns, for each known text (``shared/OAUTH2.md`` section 5, plus
the common Google password refusals), one sentence saying what it means and what to do,
with the practice's mailbox filled into any command; ``explained`` puts the server's own
words after it, so nothing the server said is lost: ``"Microsoft no longer accepts the
password for this mailbox: sign in with Microsoft in the Email Setup Wizard (the server
said: 550 5.7.30 ...)"``. An unknown text gets no advice ("").

Pure: no I/O, no secrets in or out (the texts are a server's replies, never a password).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from actors.mail.settings import EmailSettings

WIZARD = "the Email Setup Wizard (email-service setup)"
"""Where a person fixes the set-up, named the same way in every piece of advice."""

MICROSOFT_HOSTS = ("office365.com", "outlook.com", "office.com", "microsoft.com")
"""Host name endings of Microsoft 365's mail servers (a password refusal there is advice)."""
GOOGLE_HOSTS = ("gmail.com", "google.com", "googlemail.com")


@dataclass(frozen=True, slots=True)
class SignInContext:
    """What the advice depends on besides the text.

    ``oauth``: this protocol signs in with a token (not a password). ``mailbox``: the
    mailbox signed in to, filled into commands. ``host``: the mail server, to recognise
    Microsoft's and Google's generic refusals of a password.
    """

    oauth: bool = False
    mailbox: str = ""
    host: str = ""

    @property
    def microsoft(self) -> bool:
        return _ends_with_any(self.host, MICROSOFT_HOSTS)

    @property
    def google(self) -> bool:
        return _ends_with_any(self.host, GOOGLE_HOSTS)


def _ends_with_any(host: str, suffixes: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == s or host.endswith("." + s) for s in suffixes)


def context_for(settings: EmailSettings, protocol: str) -> SignInContext:
    """The context of ``settings``' ``protocol`` (``smtp`` or ``imap``; anything else: the
    token service, which is OAuth by definition)."""
    if protocol == "smtp":
        oauth, host, user = (
            settings.smtp_auth == "oauth2",
            settings.smtp_host,
            settings.smtp_username,
        )
    elif protocol == "imap":
        oauth, host, user = (
            settings.imap_auth == "oauth2",
            settings.imap_host,
            settings.imap_username,
        )
    else:
        oauth, host, user = True, "", ""
    mailbox = (settings.oauth_account if oauth else "") or user or settings.from_address
    return SignInContext(oauth=oauth, mailbox=mailbox, host=host)


def _box(c: SignInContext) -> str:
    return c.mailbox or "<mailbox>"


# --- the texts -----------------------------------------------------------------------------

_Advice = Callable[[SignInContext, re.Match[str]], str]

_PASSWORD_REFUSED_AT_MICROSOFT = (
    "Microsoft no longer accepts the password for this mailbox: sign in with Microsoft in " + WIZARD
)


def _tenant_smtp_off(c: SignInContext, _m: re.Match[str]) -> str:
    return (
        "sending through Microsoft 365 (SMTP AUTH) is turned off for the whole organisation: "
        "an administrator runs, in Exchange Online PowerShell, "
        "Set-TransportConfig -SmtpClientAuthenticationDisabled $false"
    )


def _mailbox_smtp_off(c: SignInContext, _m: re.Match[str]) -> str:
    return (
        "sending through Microsoft 365 (Authenticated SMTP) is turned off for this mailbox: "
        f"an administrator runs Set-CASMailbox -Identity {_box(c)} "
        "-SmtpClientAuthenticationDisabled $false, or ticks Authenticated SMTP for it in the "
        "Microsoft 365 admin centre (Users, Mail, Manage email apps)"
    )


def _basic_off(_c: SignInContext, _m: re.Match[str]) -> str:
    return _PASSWORD_REFUSED_AT_MICROSOFT


def _microsoft_smtp_refused(c: SignInContext, _m: re.Match[str]) -> str:
    if c.oauth:
        return (
            "Microsoft refused the sign-in token for sending: the wrong account signed in, "
            "the app lacks the SMTP permission (SMTP.Send, or SMTP.SendAsApp for app-only), "
            f"or it has no rights on {_box(c)}; check the sign-in account and the "
            "administrator's steps in docs/setup.md"
        )
    return (
        "Microsoft refused the user name or password; if they are right, Microsoft no "
        "longer accepts a password for this mailbox: sign in with Microsoft in " + WIZARD
    )


def _microsoft_imap_refused(c: SignInContext, _m: re.Match[str]) -> str:
    if c.oauth:
        return (
            f"Microsoft refused the sign-in for reading {_box(c)}: IMAP is turned off for "
            "this mailbox, the app has no FullAccess on it (Add-MailboxPermission), or the "
            "service principal was made with the App registration's Object ID instead of the "
            "Enterprise application's; see the administrator's steps in docs/setup.md"
        )
    return _PASSWORD_REFUSED_AT_MICROSOFT


def _not_connected(c: SignInContext, _m: re.Match[str]) -> str:
    return (
        f"signed in, but without access to the mailbox {_box(c)}: check that the sign-in "
        "account is this mailbox, or (app-only) that an administrator gave the app FullAccess "
        f"on it: Add-MailboxPermission -Identity {_box(c)} -User <service principal> "
        "-AccessRights FullAccess"
    )


_AADSTS: dict[str, str] = {
    "700082": (
        "the Microsoft sign-in was not used for 90 days and has expired: sign in with "
        "Microsoft again in " + WIZARD
    ),
    "65001": (
        "an administrator must approve (consent to) the app first: open the admin-consent "
        "link the Email Setup Wizard prints, signed in as an administrator"
    ),
    "700016": (
        "Microsoft does not know this app in this organisation: check the client ID "
        "(Application ID) and the tenant ID (Directory ID) in " + WIZARD
    ),
    "7000215": (
        "the app's client secret is wrong: create a new one (Entra admin centre, App "
        "registrations, Certificates & secrets) and enter it in " + WIZARD
    ),
    "7000222": (
        "the app's client secret has expired: create a new one (Entra admin centre, App "
        "registrations, Certificates & secrets) and enter it in " + WIZARD
    ),
    "50173": (
        "the Microsoft sign-in ended when the account's password was changed: sign in with "
        "Microsoft again in " + WIZARD
    ),
    "50076": (
        "Microsoft asks for multi-factor sign-in again: sign in with Microsoft again in " + WIZARD
    ),
    "53003": (
        "an administrator's Conditional Access policy blocks this sign-in: ask the "
        "administrator to allow it, or use the app-only way (see docs/setup.md)"
    ),
    "90002": "Microsoft does not know this tenant ID: check it in " + WIZARD,
    "70011": (
        "Microsoft refused the permission asked for (scope): the app's API permissions need "
        "IMAP and SMTP of Office 365 Exchange Online; see docs/setup.md"
    ),
}


def _aadsts(_c: SignInContext, m: re.Match[str]) -> str:
    return _AADSTS.get(m.group(1), "")


def _invalid_grant(c: SignInContext, m: re.Match[str]) -> str:
    detail = m.group(0).lower()
    if "jwt" in detail or "account not found" in detail:
        return (
            "Google refused the service account's key (deleted, disabled or wrong): create a "
            "new key in the Google Cloud console and enter its JSON file in " + WIZARD
        )
    return (
        "Google no longer accepts the saved sign-in (the password was changed, it was unused "
        "for 6 months, a consent screen in Testing allows only 7 days, or it was revoked): "
        "sign in with Google again in " + WIZARD
    )


def _unauthorized_client(_c: SignInContext, _m: re.Match[str]) -> str:
    return (
        "the Google Workspace administrator has not authorised the service account: in the "
        "Admin console (Security, API controls, Domain-wide delegation) add its client ID "
        "with the scope https://mail.google.com/"
    )


def _invalid_client(_c: SignInContext, _m: re.Match[str]) -> str:
    return "the OAuth client ID or client secret is wrong: check them in " + WIZARD


def _google_app_password(_c: SignInContext, _m: re.Match[str]) -> str:
    return (
        "Google does not accept the account's own password here: sign in with Google in "
        + WIZARD
        + " (or, as a fallback, use an app password)"
    )


def _google_bad_credentials(c: SignInContext, _m: re.Match[str]) -> str:
    if c.oauth:
        return (
            "Google refused the sign-in token: it is for another account or lacks the "
            "mail permission; sign in with Google again in " + WIZARD
        )
    return (
        "Google refused the user name or password: Google accepts only an app password "
        "(which needs 2-Step Verification) or, better, sign in with Google in " + WIZARD
    )


def _microsoft_login_failed(c: SignInContext, _m: re.Match[str]) -> str:
    return _PASSWORD_REFUSED_AT_MICROSOFT if c.microsoft and not c.oauth else ""


_RULES: tuple[tuple[re.Pattern[str], _Advice], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), advice)
    for pattern, advice in (
        (r"SmtpClientAuthentication is disabled for the Tenant", _tenant_smtp_off),
        (r"SmtpClientAuthentication is disabled for the Mailbox", _mailbox_smtp_off),
        (r"basic authentication is disabled", _basic_off),
        (r"5\.7\.30 Basic authentication is not supported", _basic_off),
        (r"\b5\.7\.3 Authentication unsuccessful", _microsoft_smtp_refused),
        (r"AUTHENTICATE failed", _microsoft_imap_refused),
        (r"User is authenticated but not connected", _not_connected),
        (r"AADSTS(\d+)", _aadsts),
        (r"invalid_grant\b.*", _invalid_grant),
        (r"unauthorized_client\b", _unauthorized_client),
        (r"invalid_client\b", _invalid_client),
        (r"5\.7\.9 Application-specific password required", _google_app_password),
        (r"5\.7\.14 .*(web browser|signin)", _google_app_password),
        (r"5\.7\.8 Username and Password not accepted", _google_bad_credentials),
        (r"\bLOGIN failed", _microsoft_login_failed),
    )
)

_JSON = re.compile(r"\{[^{}]*\"status\"[^{}]*\}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def _challenge(text: str) -> dict[str, object] | None:
    """The JSON error challenge of an XOAUTH2 exchange (Gmail's, Dovecot's) in ``text``,
    as sent (JSON) or base64-encoded; None when there is none."""
    candidates = [m.group(0) for m in _JSON.finditer(text)]
    for blob in _BASE64.findall(text):
        try:
            decoded = base64.b64decode(blob, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
        candidates.extend(m.group(0) for m in _JSON.finditer(decoded))
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _challenge_advice(c: SignInContext, challenge: dict[str, object]) -> str:
    status = str(challenge.get("status", ""))
    if status == "400":
        return (
            "the sign-in token lacks the mail permission (scope "
            f"{challenge.get('scope') or 'https://mail.google.com/'}): sign in again in "
            + WIZARD
            + " and allow access to mail"
        )
    if status == "401":
        return (
            f"the mail server refused the sign-in token for {_box(c)}: it expired, was "
            "revoked, or is for another account; sign in again in " + WIZARD
        )
    return ""


def one_line(text: str) -> str:
    line = " ".join(text.split())
    # imapclient hands imaplib's bytes on as their repr: b'[AUTHENTICATIONFAILED] ...'
    bytes_repr = re.fullmatch(r"b(['\"])(.*)\1", line)
    if bytes_repr:
        return bytes_repr.group(2)
    # imaplib's framing of a BAD answer: "EXAMINE command error: BAD [b'words']"
    framed = re.fullmatch(r"\w+ command error: (BAD|NO) \[b(['\"])(.*)\2\]", line)
    return f"{framed.group(1)} {framed.group(3)}" if framed else line


def advice(text: str, context: SignInContext = SignInContext()) -> str:
    """Return what ``text`` (a server's or a sign-in service's words) means and what to do,
    in plain words, or "" when it is not a known sign-in failure. Pure."""
    line = one_line(text)
    for pattern, rule in _RULES:
        found = pattern.search(line)
        if found is not None:
            said = rule(context, found)
            if said:
                return said
    challenge = _challenge(line)
    if challenge is not None:
        return _challenge_advice(context, challenge)
    return ""


def explained(text: str, context: SignInContext = SignInContext()) -> str:
    """Return ``text`` with its advice first: ``"ADVICE (the server said: TEXT)"``; ``text``
    unchanged when there is no advice. Pure."""
    said = advice(text, context)
    return f"{said} (the server said: {one_line(text)})" if said else text


def words_for(text: str, settings: EmailSettings, protocol: str) -> str:
    """``advice`` for ``settings``' ``protocol`` (``smtp``, ``imap`` or ``token``)."""
    return advice(text, context_for(settings, protocol))


def advised(reason: str, settings: EmailSettings, protocol: str) -> str:
    """``reason`` (a whole one-line reason that quotes a server or sign-in service) with
    the advice for what it quotes first: ``"ADVICE. REASON"``; unchanged without. Pure."""
    said = words_for(reason, settings, protocol)
    if not said or reason.startswith(said):
        return reason
    return f"{said}. {reason[:1].upper()}{reason[1:]}"
