"""Mobile numbers for SMS, normalised to E.164 (``+447911123456``). Pure.

The practice software stores numbers as people type them (``07911 123456``,
``+44 (0)7911 123456``, ``0044 7911 123456``). ``to_e164`` reads them with ``phonenumbers``
(Google's libphonenumber metadata, updated with each release): a number without a country
code belongs to the practice's region (``email_settings.sms_region``, ISO 3166 alpha-2
such as ``GB``); with no region set, every number must start with ``+`` or the
international prefix and carry its country code. A number the metadata does not know as
valid for its country is refused rather than sent somewhere unexpected.

``phonenumbers`` (about 60 modules of metadata) is imported by the function that reads a
number or a region, not with this module: a service whose practices send no SMS never
loads it (issue 11, the start cost of ``serve``).
"""

from __future__ import annotations

MAX_INPUT_LENGTH = 50
"""Longer text is not a phone number (the ``patients.mobile_phone`` column holds 50)."""


class PhoneNumberError(ValueError):
    """Raised when a number cannot be made E.164; the message is one line saying why."""


def check_region(region: str) -> str:
    """Return ``region`` upper-cased ("" stays ""), or raise ``PhoneNumberError`` when it
    is not a region ``phonenumbers`` knows (ISO 3166 alpha-2, e.g. ``GB``, ``US``)."""
    code = region.strip().upper()
    if not code:
        return code
    import phonenumbers  # on first use (the docstring)

    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise PhoneNumberError(
            f"email_settings.sms_region {_shown(region)} is not a country code such as GB or US"
        )
    return code


def to_e164(number: str, region: str = "") -> str:
    """Return ``number`` in E.164 form: ``+``, country code, national number, no spaces.

    ``region`` is the practice's ``sms_region`` ("" for none). Raises ``PhoneNumberError``
    (and nothing else) for an unknown region, an empty or over-long number, one without a
    country code when there is no region, text that is not a number, or a number that is
    not valid for its country.
    """
    import phonenumbers  # on first use (the docstring)

    code = check_region(region)
    text = number.strip()
    if not text:
        raise PhoneNumberError("the phone number is empty")
    if len(text) > MAX_INPUT_LENGTH:
        raise PhoneNumberError(f"the phone number is longer than {MAX_INPUT_LENGTH} characters")
    try:
        parsed = phonenumbers.parse(text, code or None)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            if code or text.startswith("+"):
                raise PhoneNumberError(
                    f"{_shown(text)} does not start with a known country code"
                ) from None
            raise PhoneNumberError(
                f"{_shown(text)} has no country code: write it as +<country code><number> "
                "or set email_settings.sms_region"
            ) from None
        raise PhoneNumberError(f"{_shown(text)} is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        country = parsed.country_code or 0
        where = phonenumbers.region_code_for_country_code(country)
        if where not in phonenumbers.SUPPORTED_REGIONS:  # "001" (non-geographic), "ZZ"
            where = f"+{country}"
        raise PhoneNumberError(f"{_shown(text)} is not a valid phone number for {where}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _shown(text: str) -> str:
    """``text`` quoted on one line, whatever it holds (control characters escaped)."""
    return repr(text[:MAX_INPUT_LENGTH])
