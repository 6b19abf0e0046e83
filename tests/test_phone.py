"""Numbers for SMS: ``actors.mail.phone.to_e164`` (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.mail.phone import PhoneNumberError, check_region, to_e164


@pytest.mark.parametrize(
    ("number", "region", "expected"),
    [
        ("07911 123456", "GB", "+447911123456"),
        ("07911123456", "gb", "+447911123456"),
        ("+44 (0)7911 123456", "", "+447911123456"),
        ("0044 7911 123456", "GB", "+447911123456"),
        ("+44 7911 123456", "US", "+447911123456"),
        ("(02) 9876 5432", "AU", "+61298765432"),
        ("030 1234567", "DE", "+49301234567"),
        ("+1 (202) 555-0143", "", "+12025550143"),
        ("  202.555.0143  ", "US", "+12025550143"),
    ],
)
def test_to_e164_normalises_a_valid_number(number: str, region: str, expected: str) -> None:
    assert to_e164(number, region) == expected


@pytest.mark.parametrize(
    ("number", "region", "message"),
    [
        ("", "GB", "the phone number is empty"),
        ("   ", "GB", "the phone number is empty"),
        (
            "07911 123456",
            "",
            "'07911 123456' has no country code: write it as +<country code><number> "
            "or set email_settings.sms_region",
        ),
        ("call me", "GB", "'call me' is not a phone number"),
        ("07911 12", "GB", "'07911 12' is not a valid phone number for GB"),
        ("+999 1234 5678", "", "'+999 1234 5678' does not start with a known country code"),
        ("1" * 51, "GB", "the phone number is longer than 50 characters"),
        (
            "07911 123456",
            "XX",
            "email_settings.sms_region 'XX' is not a country code such as GB or US",
        ),
    ],
)
def test_to_e164_refuses_with_one_line_saying_why(number: str, region: str, message: str) -> None:
    with pytest.raises(PhoneNumberError) as raised:
        to_e164(number, region)
    assert str(raised.value) == message


def test_check_region_accepts_empty_and_upper_cases() -> None:
    assert (check_region(""), check_region(" gb ")) == ("", "GB")


@given(
    number=st.one_of(
        st.text(max_size=60),
        st.from_regex(r"\A[+0(]?[0-9 ()\-.]{0,30}\Z"),
    ),
    region=st.one_of(st.sampled_from(["", "GB", "US", "DE", "AU", "gb"]), st.text(max_size=3)),
)
def test_to_e164_raises_nothing_but_its_own_one_line_error(number: str, region: str) -> None:
    outcome: str | PhoneNumberError
    try:
        outcome = to_e164(number, region)
    except PhoneNumberError as exc:
        outcome = exc
    if isinstance(outcome, PhoneNumberError):
        assert len(str(outcome).splitlines()) == 1
    else:
        assert outcome.startswith("+")
        assert outcome[1:].isdigit()
