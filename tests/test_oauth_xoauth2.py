"""The XOAUTH2 response (pure): its form, and the answers smtplib's AUTH gets from it."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from actors.mail.oauth import smtp_authobject, xoauth2_base64, xoauth2_string
from tests.oauth_servers import xoauth2_parts

# A mailbox and a token never hold the separator byte (^A) or line breaks.
_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80
)


@given(user=_text, token=_text)
def test_the_string_reads_back_as_its_user_and_token(user: str, token: str) -> None:
    assert xoauth2_parts(xoauth2_string(user, token).encode()) == (user, token)


@given(user=_text, token=_text)
def test_the_wire_form_is_the_base64_of_the_string(user: str, token: str) -> None:
    assert base64.b64decode(xoauth2_base64(user, token)).decode() == xoauth2_string(user, token)


def test_the_string_has_googles_and_microsofts_form() -> None:
    assert xoauth2_string("a@b.example", "tok") == "user=a@b.example\x01auth=Bearer tok\x01\x01"


def test_the_first_empty_challenge_gets_the_string() -> None:
    assert smtp_authobject("a@b.example", "tok")(b"") == xoauth2_string("a@b.example", "tok")


def test_an_initial_response_is_the_string() -> None:
    assert smtp_authobject("a@b.example", "tok")() == xoauth2_string("a@b.example", "tok")


def test_a_refusals_json_challenge_gets_an_empty_answer() -> None:
    assert smtp_authobject("a@b.example", "tok")(b'{"status":"401"}') == ""
