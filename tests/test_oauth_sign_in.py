"""Google's installed-app sign-in (``GoogleSignIn``) against the local token endpoint: the
redirect caught on the loopback port, or its address pasted back (over SSH)."""

from __future__ import annotations

import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from actors.mail.oauth import GoogleSignIn, OAuthError, SignedIn
from tests.mail_helpers import wait_until
from tests.oauth_servers import GOOGLE_ID, GOOGLE_SECRET, OAuthAuthority, oauth_endpoints
from tests.smtp_servers import free_port
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_mail"]

BOX = "reception@smile.example"


@pytest.fixture
def authority(certs: CertificateSet) -> Iterator[OAuthAuthority]:
    with OAuthAuthority(certs) as started:
        started.add_google_client(GOOGLE_ID, GOOGLE_SECRET)
        yield started


def begin(authority: OAuthAuthority) -> GoogleSignIn:
    return GoogleSignIn(
        oauth_endpoints(authority).google, GOOGLE_ID, GOOGLE_SECRET, port=free_port()
    )


def redirect_for(sign_in: GoogleSignIn, code: str) -> str:
    """The address Google sends the browser to after consent."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(sign_in.authorization_url).query))
    answer = urllib.parse.urlencode(
        {"state": query["state"], "code": code, "scope": "https://mail.google.com/"}
    )
    return f"http://localhost:{sign_in.port}/?{answer}"


def test_the_authorization_url_asks_for_mail_offline_with_pkce(authority: OAuthAuthority) -> None:
    query = dict(
        urllib.parse.parse_qsl(urllib.parse.urlsplit(begin(authority).authorization_url).query)
    )
    assert (query["scope"], query["access_type"], query["code_challenge_method"]) == (
        "https://mail.google.com/",
        "offline",
        "S256",
    )


def test_the_pasted_address_gives_a_refresh_token_that_works(authority: OAuthAuthority) -> None:
    sign_in = begin(authority)
    signed_in = sign_in.finish(redirect_for(sign_in, authority.google_code(GOOGLE_ID, BOX)))
    assert authority.live_refresh_tokens(BOX) == [signed_in.refresh_token]


def test_the_redirect_is_caught_on_the_loopback_port(authority: OAuthAuthority) -> None:
    sign_in = begin(authority)
    results: list[SignedIn | Exception] = []

    def wait() -> None:
        try:
            results.append(sign_in.wait_on_loopback(timeout_seconds=20))
        except Exception as exc:  # handed to the test's thread
            results.append(exc)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    address = redirect_for(sign_in, authority.google_code(GOOGLE_ID, BOX))
    page: list[bytes] = []

    def browser_arrives() -> bool:
        try:
            with urllib.request.urlopen(address.replace("localhost", "127.0.0.1"), timeout=5) as r:
                page.append(r.read())
        except OSError:
            return False
        return True

    wait_until(browser_arrives, "the loopback listener")
    waiter.join(timeout=20)
    [result] = results
    assert isinstance(result, SignedIn)
    assert authority.live_refresh_tokens(BOX) == [result.refresh_token]


def test_a_code_used_twice_is_refused_in_googles_words(authority: OAuthAuthority) -> None:
    code = authority.google_code(GOOGLE_ID, BOX)
    first = begin(authority)
    first.finish(redirect_for(first, code))
    second = begin(authority)
    with pytest.raises(OAuthError, match=r"^Google sign-in failed: invalid_grant"):
        second.finish(redirect_for(second, code))


def test_a_refused_consent_says_so(authority: OAuthAuthority) -> None:
    sign_in = begin(authority)
    with pytest.raises(OAuthError, match=r"^Google sign-in failed: access_denied$"):
        sign_in.finish(f"http://localhost:{sign_in.port}/?error=access_denied")


def test_an_address_without_a_code_says_what_to_paste(authority: OAuthAuthority) -> None:
    sign_in = begin(authority)
    with pytest.raises(OAuthError, match="paste the whole address"):
        sign_in.finish("http://localhost/")
