"""Known mail providers: their SMTP and IMAP servers, found from an address's domain. Pure.

The setup wizard fills in a provider's host, port and security when the practice's from
address is at one of its domains (``provider_for``), or when the technician names it
(``provider_named``, for a provider's business service on the practice's own domain:
Google Workspace is ``gmail``, Microsoft 365 is ``office365``). Every value stays a
default: a flag or an answer overrides it.

Each row was checked against the provider's own published settings (``docs/setup.md``
lists the sources). Providers whose settings could not be confirmed from their own
documents are left out rather than guessed: a wrong default costs a technician more
than no default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Security = Literal["none", "starttls", "tls"]
Login = Literal["address", "local_part"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One server: host, port and ``none``/``starttls``/``tls`` (the settings' words)."""

    host: str
    port: int
    security: Security


@dataclass(frozen=True, slots=True)
class Provider:
    """A mail provider: ``key`` (for ``--provider``), a name for people, the domains its
    addresses use, its servers, what its IMAP log-in name is (the whole address or the
    part before the ``@``), and a short note for the technician."""

    key: str
    name: str
    domains: tuple[str, ...]
    smtp: Endpoint
    imap: Endpoint
    imap_login: Login = "address"
    note: str = ""

    def imap_username(self, address: str) -> str:
        """Return the IMAP log-in name this provider expects for ``address``."""
        if self.imap_login == "local_part":
            return address.rpartition("@")[0]
        return address


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        key="gmail",
        name="Gmail / Google Workspace",
        domains=("gmail.com", "googlemail.com"),
        smtp=Endpoint("smtp.gmail.com", 587, "starttls"),
        imap=Endpoint("imap.gmail.com", 993, "tls"),
        note="Google needs an app password (2-Step Verification on), not the account "
        "password; turn IMAP on in Gmail's settings.",
    ),
    Provider(
        key="outlook",
        name="Outlook.com",
        domains=("outlook.com", "hotmail.com", "live.com"),
        smtp=Endpoint("smtp-mail.outlook.com", 587, "starttls"),
        imap=Endpoint("outlook.office365.com", 993, "tls"),
        note="Turn IMAP on in Outlook.com's settings. Microsoft is retiring password "
        "log-in: if a correct password is refused, the account cannot be used this way.",
    ),
    Provider(
        key="office365",
        name="Microsoft 365",
        domains=(),
        smtp=Endpoint("smtp.office365.com", 587, "starttls"),
        imap=Endpoint("outlook.office365.com", 993, "tls"),
        note="The mailbox needs Authenticated SMTP (SMTP AUTH) turned on by the Microsoft "
        "365 administrator; Microsoft is retiring password log-in.",
    ),
    Provider(
        key="icloud",
        name="iCloud Mail",
        domains=("icloud.com", "me.com", "mac.com"),
        smtp=Endpoint("smtp.mail.me.com", 587, "starttls"),
        imap=Endpoint("imap.mail.me.com", 993, "tls"),
        imap_login="local_part",
        note="Apple needs an app-specific password, not the Apple Account password.",
    ),
    Provider(
        key="fastmail",
        name="Fastmail",
        domains=("fastmail.com",),
        smtp=Endpoint("smtp.fastmail.com", 465, "tls"),
        imap=Endpoint("imap.fastmail.com", 993, "tls"),
        note="Fastmail needs an app password, not the account password.",
    ),
)
"""The known providers; ``key`` and every domain are unique and lower case."""


def domain_of(address: str) -> str:
    """Return the domain of ``address`` (after the last ``@``), lower case, no final dot;
    "" when there is no ``@``."""
    _local, at, domain = address.strip().rpartition("@")
    return domain.strip().rstrip(".").casefold() if at else ""


def provider_for(address: str) -> Provider | None:
    """Return the provider whose domains include ``address``'s domain, or None."""
    domain = domain_of(address)
    if not domain:
        return None
    for provider in PROVIDERS:
        if domain in provider.domains:
            return provider
    return None


def provider_named(key: str) -> Provider | None:
    """Return the provider with this ``key`` (case-insensitive), or None."""
    wanted = key.strip().casefold()
    for provider in PROVIDERS:
        if provider.key == wanted:
            return provider
    return None


def provider_keys() -> tuple[str, ...]:
    """Return every provider's ``key``, in table order (for ``--provider`` choices)."""
    return tuple(p.key for p in PROVIDERS)
