"""Reading a technician's answers: addresses, ports, choices, yes/no. Pure.

Each ``check_*``/``parse_*`` returns the value to store or raises ``AnswerError`` whose
message is one line a person can act on (it never repeats a password: none is checked
here). The wizard shows the message and asks again; the flag-driven mode stops with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time

from actors.mail.phone import PhoneNumberError
from actors.mail.phone import check_region as _check_region
from actors.mail.settings import SECURITY_CHOICES
from actors.mail.sms import Gateway, SmsGatewayError, parse_gateway

AFTER_IMPORT_ACTIONS = ("keep", "delete", "move")
"""What may happen to a message on the IMAP server once it is imported."""

STANDARD_PORTS: dict[str, dict[str, int]] = {
    "smtp": {"none": 25, "starttls": 587, "tls": 465},
    "imap": {"none": 143, "starttls": 143, "tls": 993},
}
"""The usual port of each protocol for each security setting."""

_LOCAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")
_EXAMPLE = "reception@smiledental.co.uk"


class AnswerError(ValueError):
    """Raised when an answer cannot be used; the message says why and what to write."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def check_address(text: str) -> str:
    """Return ``text`` trimmed when it is a plain email address (``name@domain.tld``).

    Raises ``AnswerError`` for an empty answer, a name with the address in angle
    brackets (the sender name is asked separately), spaces, no ``@`` or a domain without
    a dot. International domains must be written in their ASCII (``xn--``) form.
    """
    value = text.strip()
    if not value:
        raise AnswerError(f"An email address is needed, for example {_EXAMPLE}.")
    if "<" in value or ">" in value:
        raise AnswerError(
            f"{_shown(value)} is not a plain email address: write only the address, "
            f"for example {_EXAMPLE} (the sender name is asked next)."
        )
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise AnswerError(
            f"{_shown(value)} is not an email address: it needs an @, for example {_EXAMPLE}."
        )
    if not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise AnswerError(
            f"{_shown(value)} is not an email address: the part before the @ may hold only "
            f"letters, digits and . _ - +, for example {_EXAMPLE}."
        )
    if not _DOMAIN.match(domain):
        raise AnswerError(
            f"{_shown(value)} is not an email address: {_shown(domain)} is not a mail "
            f"domain (it needs a dot, like smiledental.co.uk)."
        )
    return value


def parse_port(text: str) -> int:
    """Return the port number in ``text``; raises ``AnswerError`` unless it is 1 to 65535."""
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise AnswerError(f"{_shown(value)} is not a port number: write a number from 1 to 65535.")
    return int(value)


def check_host(text: str, what: str) -> str:
    """Return the host name ``text`` trimmed; raises ``AnswerError`` when it is empty or
    holds a space, a scheme (``smtp://``) or a port (ports are asked separately)."""
    value = text.strip()
    if not value:
        raise AnswerError(f"The {what} server's host name is needed, e.g. mail.example.com.")
    if any(c.isspace() for c in value) or "/" in value or value.count(":") == 1:
        raise AnswerError(
            f"{_shown(value)} is not a host name: write only the name, e.g. mail.example.com "
            "(no smtp:// and no :port; the port is asked separately)."
        )
    return value


def pick(answer: str, choices: Sequence[str], default: str) -> str | None:
    """Return the choice ``answer`` means, or None when it means none of them.

    Empty: ``default``. Otherwise the choice it equals (case-insensitively), the one it is
    the only prefix of, or the one it numbers (``1`` is the first).
    """
    value = answer.strip().casefold()
    if not value:
        return default
    for choice in choices:
        if value == choice.casefold():
            return choice
    if value.isdigit() and 1 <= int(value) <= len(choices):
        return choices[int(value) - 1]
    starting = [c for c in choices if c.casefold().startswith(value)]
    return starting[0] if len(starting) == 1 else None


def parse_yes_no(answer: str, default: bool) -> bool | None:
    """Return True for yes/y, False for no/n, ``default`` for an empty answer, else None."""
    value = answer.strip().casefold()
    if not value:
        return default
    if value in ("y", "yes"):
        return True
    if value in ("n", "no"):
        return False
    return None


def port_for(kind: str, security: str, current: int) -> int:
    """Return the port to offer for ``kind`` (``smtp``/``imap``) with ``security``.

    ``current`` unless it is the usual port of another security setting and not of this
    one (the technician changed the security, so the port follows it).
    """
    usual = STANDARD_PORTS[kind]
    if current in usual.values() and usual[security] != current:
        return usual[security]
    return current


def check_security(text: str, column: str) -> str:
    """Return ``text`` as a security word; raises ``AnswerError`` naming ``column``."""
    value = text.strip().casefold()
    if value not in SECURITY_CHOICES:
        raise AnswerError(
            f"{column} must be one of {', '.join(SECURITY_CHOICES)}, not {_shown(text)}."
        )
    return value


def check_after_import(text: str) -> str:
    """Return ``keep``, ``delete`` or ``move:FOLDER``; raises ``AnswerError`` otherwise."""
    value = text.strip()
    action, sep, folder = value.partition(":")
    if (action in ("keep", "delete") and not sep) or (action == "move" and folder.strip()):
        return f"move:{folder.strip()}" if action == "move" else action
    raise AnswerError(
        f"{_shown(value)} is not an after-import action: write keep, delete or move:FOLDER "
        "(for example move:Imported)."
    )


def check_folder(text: str) -> str:
    """Return an IMAP folder name trimmed; raises ``AnswerError`` when it is empty."""
    value = text.strip()
    if not value:
        raise AnswerError("A folder name is needed (INBOX is the usual one).")
    return value


def check_gateway(text: str) -> Gateway:
    """Return the SMS gateway ``text`` describes (``actors.mail.sms.parse_gateway``);
    raises ``AnswerError`` with that module's one-line reason."""
    try:
        return parse_gateway(text)
    except SmsGatewayError as exc:
        raise AnswerError(f"{exc} (see docs/sms.md)") from None


def check_region(text: str) -> str:
    """Return the SMS region upper-cased ("" for none); raises ``AnswerError`` when it is
    not a two-letter country code the phone-number library knows."""
    try:
        return _check_region(text)
    except PhoneNumberError as exc:
        raise AnswerError(str(exc)) from None


_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def check_tenant(text: str) -> str:
    """Return a Microsoft tenant: its Directory (tenant) ID, a GUID, or one of its domains
    (``smiledental.onmicrosoft.com``), or ``consumers`` for a personal Outlook.com account.
    Raises ``AnswerError`` otherwise (``common`` too: the service's own app is registered
    in one organisation)."""
    value = text.strip()
    if _GUID.match(value) or _DOMAIN.match(value) or value.lower() == "consumers":
        return value
    raise AnswerError(
        f"{_shown(value)} is not a tenant: write the Directory (tenant) ID shown on the app "
        "registration's Overview page (like 0b7d3c1e-5a8f-4e2b-9c6d-2f1a8e4b7c90), or the "
        "organisation's domain (like smiledental.onmicrosoft.com); consumers for a personal "
        "Outlook.com account."
    )


def check_client_id(text: str) -> str:
    """Return an app's client ID trimmed; raises ``AnswerError`` when it is empty or holds
    a space (a Microsoft one is a GUID; a Google one ends in .apps.googleusercontent.com)."""
    value = text.strip()
    if not value or any(c.isspace() for c in value):
        raise AnswerError(
            "The app's client ID is needed: the Application (client) ID of the Microsoft app "
            "registration, or the Google OAuth client's ID."
        )
    return value


def parse_expiry(text: str) -> datetime | None:
    """Return the date ``YYYY-MM-DD`` as the end of that day UTC (naive), None when empty;
    raises ``AnswerError`` otherwise."""
    value = text.strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        raise AnswerError(
            f"{_shown(value)} is not a date: write it as YYYY-MM-DD (for example 2027-06-30), "
            "or leave it empty when it is not known."
        ) from None
    return datetime.combine(day, time(23, 59))
