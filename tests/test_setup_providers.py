"""The known-provider table of the setup wizard: lookups by domain and by name, and the
values checked against each provider's own published settings (docs/setup.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.setup.providers import (
    PROVIDERS,
    Endpoint,
    domain_of,
    provider_for,
    provider_keys,
    provider_named,
)

EXPECTED = {
    "gmail": (Endpoint("smtp.gmail.com", 587, "starttls"), Endpoint("imap.gmail.com", 993, "tls")),
    "outlook": (
        Endpoint("smtp-mail.outlook.com", 587, "starttls"),
        Endpoint("outlook.office365.com", 993, "tls"),
    ),
    "office365": (
        Endpoint("smtp.office365.com", 587, "starttls"),
        Endpoint("outlook.office365.com", 993, "tls"),
    ),
    "icloud": (
        Endpoint("smtp.mail.me.com", 587, "starttls"),
        Endpoint("imap.mail.me.com", 993, "tls"),
    ),
    "fastmail": (
        Endpoint("smtp.fastmail.com", 465, "tls"),
        Endpoint("imap.fastmail.com", 993, "tls"),
    ),
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_provider_has_its_published_servers(key: str) -> None:
    provider = provider_named(key)
    assert provider is not None
    assert (provider.smtp, provider.imap) == EXPECTED[key]


def test_the_table_holds_exactly_the_confirmed_providers() -> None:
    assert set(provider_keys()) == set(EXPECTED)


def test_keys_and_domains_are_unique_and_lower_case() -> None:
    domains = [d for p in PROVIDERS for d in p.domains]
    keys = list(provider_keys())
    assert len(set(domains)) == len(domains)
    assert len(set(keys)) == len(keys)
    assert all(d == d.lower() for d in domains + keys)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("reception@gmail.com", "gmail"),
        ("reception@googlemail.com", "gmail"),
        ("Reception@GMAIL.COM", "gmail"),
        ("reception@hotmail.com", "outlook"),
        ("reception@live.com", "outlook"),
        ("reception@outlook.com", "outlook"),
        ("reception@me.com", "icloud"),
        ("reception@mac.com", "icloud"),
        ("reception@icloud.com", "icloud"),
        ("reception@fastmail.com", "fastmail"),
        ("  reception@gmail.com.  ", "gmail"),
    ],
)
def test_an_address_at_a_provider_domain_finds_it(address: str, key: str) -> None:
    provider = provider_for(address)
    assert provider is not None
    assert provider.key == key


@pytest.mark.parametrize(
    "address", ["reception@smiledental.co.uk", "no-at-sign", "", "gmail.com", "x@mail.gmail.com"]
)
def test_an_address_elsewhere_finds_no_provider(address: str) -> None:
    assert provider_for(address) is None


def test_microsoft_365_is_found_by_name_only() -> None:
    provider = provider_named("Office365")
    assert provider is not None
    assert provider.domains == ()


def test_an_unknown_name_finds_no_provider() -> None:
    assert provider_named("yahoo") is None


def test_icloud_logs_in_to_imap_with_the_part_before_the_at() -> None:
    icloud = provider_named("icloud")
    gmail = provider_named("gmail")
    assert icloud is not None
    assert gmail is not None
    assert icloud.imap_username("jo.smith@icloud.com") == "jo.smith"
    assert gmail.imap_username("jo.smith@gmail.com") == "jo.smith@gmail.com"


@given(
    local=st.from_regex(r"[a-z0-9._+-]{1,20}", fullmatch=True),
    index=st.integers(min_value=0, max_value=len(PROVIDERS) - 1),
    upper=st.booleans(),
)
def test_every_listed_domain_finds_its_provider_in_any_case(
    local: str, index: int, upper: bool
) -> None:
    provider = PROVIDERS[index]
    for domain in provider.domains:
        written = domain.upper() if upper else domain
        assert provider_for(f"{local}@{written}") == provider
        assert domain_of(f"{local}@{written}") == domain
