"""The settings the wizard starts from: the saved row, a provider's servers, the flags. Pure.

``build_draft`` is the one place that decides which value wins, so the interactive wizard
(whose questions offer the draft's values as defaults) and the flag-driven mode (which
tests and saves the draft as it is) can never disagree:

1. the practice's saved ``email_settings`` row;
2. a known provider's SMTP and IMAP servers (``supervisor.setup.providers``), when one is
   named with ``--provider``, or when the from address is at a provider's domain and
   either nothing is set up yet (no ``smtp_host``) or the address moved to another domain;
3. every flag that was given.

Then the log-in names default to the from address when a provider was applied and none
is given (providers always want a log-in), and the whole result is checked with
``actors.mail.settings.settings_from_row``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from actors.mail.settings import EmailSettings, EmailSettingsError, settings_from_row
from supervisor.setup.answers import AnswerError, check_address, check_gateway, check_region
from supervisor.setup.providers import Provider, domain_of, provider_for, provider_named

COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(EmailSettings))
"""The ``email_settings`` columns the wizard reads and writes (all but ``id``)."""


@dataclass(frozen=True, slots=True)
class Draft:
    """Settings to test and perhaps save, and the provider whose servers went into them."""

    settings: EmailSettings
    provider: Provider | None


def lenient_settings(row: Mapping[str, Any]) -> tuple[EmailSettings, tuple[str, ...]]:
    """Return the saved row as settings, with each unusable column replaced by its default,
    and one line per column replaced (so a broken row can still be corrected)."""
    problems: list[str] = []
    usable: dict[str, Any] = {}
    for column in COLUMNS:
        if column not in row:
            continue
        try:
            settings_from_row({column: row[column]})
        except (EmailSettingsError, ValueError, TypeError) as exc:
            problems.append(f"{exc}; the default is offered instead")
            continue
        usable[column] = row[column]
    return settings_from_row(usable), tuple(problems)


def provider_applies(saved: EmailSettings, address: str) -> Provider | None:
    """Return the provider of ``address`` when its servers should replace the saved ones:
    nothing is set up yet, or the address is at another domain than the saved one."""
    provider = provider_for(address)
    if provider is None:
        return None
    if not saved.smtp_host or domain_of(saved.from_address) != domain_of(address):
        return provider
    return None


def with_provider(settings: EmailSettings, provider: Provider) -> EmailSettings:
    """Return ``settings`` with ``provider``'s servers and the log-in names it expects for
    the from address (a provider's account is the address itself)."""
    address = settings.from_address
    return dataclasses.replace(
        settings,
        smtp_host=provider.smtp.host,
        smtp_port=provider.smtp.port,
        smtp_security=provider.smtp.security,
        smtp_username=address,
        imap_host=provider.imap.host,
        imap_port=provider.imap.port,
        imap_security=provider.imap.security,
        imap_username=provider.imap_username(address),
    )


def build_draft(
    saved: EmailSettings, flags: Mapping[str, Any], provider_key: str | None = None
) -> Draft:
    """Return the settings to test: ``saved``, then a provider's servers, then ``flags``
    (column name to value, only the flags given). See the module docstring.

    Raises ``AnswerError`` (one line, never a password) for an unknown ``provider_key``, a
    from address that is not one, a bad SMS gateway or region when SMS is on, or any value
    ``settings_from_row`` refuses.
    """
    unknown = sorted(set(flags) - set(COLUMNS))
    if unknown:
        raise AnswerError(f"unknown email_settings column(s): {', '.join(unknown)}")
    settings = saved
    address = str(flags.get("from_address", saved.from_address))
    if address:
        address = check_address(address)
    settings = dataclasses.replace(settings, from_address=address)
    provider: Provider | None
    if provider_key:
        provider = provider_named(provider_key)
        if provider is None:
            raise AnswerError(f"{provider_key!r} is not a known provider")
    else:
        provider = provider_applies(saved, address) if address else None
    if provider is not None:
        settings = with_provider(settings, provider)
    values = {f.name: getattr(settings, f.name) for f in fields(EmailSettings)}
    values.update(flags)
    try:
        settings = settings_from_row(values)
    except EmailSettingsError as exc:
        raise AnswerError(str(exc)) from None
    if provider is not None:  # flags may have emptied them; a provider wants a log-in
        settings = with_provider_logins(settings, provider)
    if settings.sms_enabled:
        check_gateway(settings.sms_gateway)
        settings = dataclasses.replace(settings, sms_region=check_region(settings.sms_region))
    return Draft(settings, provider)


def with_provider_logins(settings: EmailSettings, provider: Provider) -> EmailSettings:
    """Return ``settings`` with empty log-in names filled from the from address."""
    address = settings.from_address
    return dataclasses.replace(
        settings,
        smtp_username=settings.smtp_username or address,
        imap_username=settings.imap_username or provider.imap_username(address),
    )


def as_row(settings: EmailSettings) -> dict[str, Any]:
    """Return ``settings`` as ``email_settings`` column values (without ``id``)."""
    return {column: getattr(settings, column) for column in COLUMNS}
