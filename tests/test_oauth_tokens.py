"""Token sources (``actors.mail.oauth``) against the local authority of ``tests.oauth_servers``.

msal talks to a local HTTPS Microsoft authority (client credentials, refresh with
rotation, device code, AADSTS errors), google-auth to a local Google token endpoint
(refresh, ``invalid_grant``, a service account's JWT). Expiry is judged on a fake clock.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from actors import progress
from actors.mail.oauth import (
    DeviceSignIn,
    OAuthError,
    TokenSource,
    TokenSources,
    save_refresh_token,
    token_source,
)
from actors.mail.oauth.source import REFUSAL_PAUSE
from actors.mail.settings import EmailSettings, read_settings
from actors.practice_db import make_engine
from actors.practice_schema import email_settings, init_practice_database
from events.clock import FakeClock
from tests.mail_helpers import wait_until
from tests.oauth_servers import (
    APP_SECRET,
    GOOGLE_SECRET,
    PUBLIC_ID,
    OAuthAuthority,
    oauth_endpoints,
    sign_in_settings,
)
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_mail"]

BOX = "reception@smile.example"
MARGIN = 300.0


@pytest.fixture
def authority(certs: CertificateSet) -> Iterator[OAuthAuthority]:
    with OAuthAuthority(certs) as started:
        yield started


def source_for(
    authority: OAuthAuthority,
    way: str,
    mailbox: str = BOX,
    *,
    clock: FakeClock | None = None,
    saved: list[str] | None = None,
    **changes: object,
) -> TokenSource:
    settings = EmailSettings(**sign_in_settings(authority, way, mailbox, **changes))
    return token_source(
        settings,
        oauth_endpoints(authority),
        save_refresh_token=None if saved is None else saved.append,
        clock=clock or FakeClock(),
    )


# --- the four ways -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "way", ["microsoft-app", "microsoft-delegated", "google-delegated", "google-app"]
)
def test_each_way_gets_a_token_the_mail_servers_accept_for_the_mailbox(
    authority: OAuthAuthority, way: str
) -> None:
    token = source_for(authority, way).token()
    assert authority.check_token(token, BOX) == BOX


def test_microsoft_app_only_asks_with_client_credentials(authority: OAuthAuthority) -> None:
    source_for(authority, "microsoft-app").token()
    assert authority.grants == ["microsoft:client_credentials"]


def test_microsoft_delegated_saves_the_refresh_token_that_replaced_the_old_one(
    authority: OAuthAuthority,
) -> None:
    saved: list[str] = []
    source_for(authority, "microsoft-delegated", saved=saved).token()
    assert saved == authority.live_refresh_tokens(BOX)


def test_microsoft_delegated_uses_the_replacing_refresh_token_next_time(
    authority: OAuthAuthority,
) -> None:
    source = source_for(authority, "microsoft-delegated", saved=[])
    first = source.token()
    source.refused(first)
    assert authority.check_token(source.token(), BOX) == BOX  # the old one no longer works


def test_device_code_sign_in_gives_the_account_and_a_refresh_token(
    authority: OAuthAuthority,
) -> None:
    authority.add_public_client(PUBLIC_ID)
    endpoints = oauth_endpoints(authority)
    sign_in = DeviceSignIn(endpoints.microsoft, authority.tenant, PUBLIC_ID)
    authority.approve_device(sign_in.user_code, BOX)
    signed_in = sign_in.finish()
    assert (signed_in.account, signed_in.refresh_token in authority.live_refresh_tokens(BOX)) == (
        BOX,
        True,
    )


def test_device_code_sign_in_tells_the_person_the_code(authority: OAuthAuthority) -> None:
    authority.add_public_client(PUBLIC_ID)
    sign_in = DeviceSignIn(oauth_endpoints(authority).microsoft, authority.tenant, PUBLIC_ID)
    assert sign_in.user_code in sign_in.message


def test_a_signed_in_result_never_shows_its_refresh_token(authority: OAuthAuthority) -> None:
    authority.add_public_client(PUBLIC_ID)
    sign_in = DeviceSignIn(oauth_endpoints(authority).microsoft, authority.tenant, PUBLIC_ID)
    authority.approve_device(sign_in.user_code, BOX)
    signed_in = sign_in.finish()
    assert signed_in.refresh_token not in repr(signed_in)


# --- keeping tokens ------------------------------------------------------------------------


def test_a_kept_token_is_used_again_while_it_has_more_than_the_margin_left(
    authority: OAuthAuthority,
) -> None:
    clock = FakeClock()
    source = source_for(authority, "microsoft-app", clock=clock)
    first = source.token()
    clock.advance(authority.expires_in - MARGIN - 1)
    assert (source.token(), len(authority.grants)) == (first, 1)


def test_a_token_is_fetched_again_within_the_margin_before_it_expires(
    authority: OAuthAuthority,
) -> None:
    clock = FakeClock()
    source = source_for(authority, "microsoft-app", clock=clock)
    first = source.token()
    clock.advance(authority.expires_in - MARGIN + 1)
    assert source.token() != first


def test_a_refused_token_is_forgotten_and_a_new_one_fetched(authority: OAuthAuthority) -> None:
    source = source_for(authority, "google-delegated")
    first = source.token()
    source.refused(first)
    assert (source.token() != first, len(authority.grants)) == (True, 2)


# --- refusals, in the provider's words -----------------------------------------------------


def test_a_wrong_client_secret_gives_microsofts_code_and_words(authority: OAuthAuthority) -> None:
    source = source_for(authority, "microsoft-app", oauth_client_secret="Wrong-Secret-9")
    with pytest.raises(OAuthError, match=r"^Microsoft sign-in failed: AADSTS7000215: Invalid"):
        source.token()


def test_a_microsoft_refusal_never_shows_the_secret(authority: OAuthAuthority) -> None:
    authority.fail_next("invalid_client", f"AADSTS7000222: The secret {APP_SECRET} expired.", 1)
    with pytest.raises(OAuthError) as caught:
        source_for(authority, "microsoft-app").token()
    assert APP_SECRET not in str(caught.value)


def test_an_expired_refresh_token_is_aadsts700082_on_one_line(authority: OAuthAuthority) -> None:
    authority.fail_next(
        "invalid_grant",
        "AADSTS700082: The refresh token has expired due to inactivity.\r\n"
        "Trace ID: 1234\r\nCorrelation ID: 5678\r\nTimestamp: 2026-12-02 10:00:00Z",
        700082,
    )
    with pytest.raises(OAuthError) as caught:
        source_for(authority, "microsoft-delegated").token()
    assert (str(caught.value), caught.value.code) == (
        "Microsoft sign-in failed: AADSTS700082: The refresh token has expired due to inactivity.",
        "AADSTS700082",
    )


def test_a_revoked_google_refresh_token_is_invalid_grant(authority: OAuthAuthority) -> None:
    source = source_for(authority, "google-delegated")
    authority.revoke()
    with pytest.raises(OAuthError) as caught:
        source.token()
    assert str(caught.value) == (
        "Google sign-in failed: invalid_grant: Token has been expired or revoked."
    )


def test_a_google_refusal_never_shows_the_client_secret(authority: OAuthAuthority) -> None:
    authority.fail_next("invalid_client", f"bad secret {GOOGLE_SECRET}")
    with pytest.raises(OAuthError) as caught:
        source_for(authority, "google-delegated").token()
    assert GOOGLE_SECRET not in str(caught.value)


def test_a_service_account_not_delegated_for_the_mailbox_is_refused(
    authority: OAuthAuthority,
) -> None:
    source = source_for(authority, "google-app", oauth_account="other@smile.example")
    with pytest.raises(OAuthError, match="unauthorized_client"):
        source.token()


def test_a_service_account_key_that_is_not_json_is_named_without_its_text(
    authority: OAuthAuthority,
) -> None:
    source = source_for(authority, "google-app", oauth_client_secret="not-json-Key-Canary")
    with pytest.raises(OAuthError) as caught:
        source.token()
    assert "not-json-Key-Canary" not in str(caught.value)


def test_an_unknown_tenant_gives_microsofts_words(authority: OAuthAuthority) -> None:
    source = source_for(authority, "microsoft-app", oauth_tenant="no-such-tenant")
    with pytest.raises(OAuthError) as caught:
        source.token()
    assert str(caught.value) == (
        "Microsoft sign-in failed: AADSTS90002: Tenant 'no-such-tenant' not found."
    )


# --- reaching the provider -----------------------------------------------------------------


def test_an_authority_whose_certificate_is_not_trusted_is_refused(
    authority: OAuthAuthority,
) -> None:
    settings = EmailSettings(**sign_in_settings(authority, "microsoft-app", BOX))
    endpoints = oauth_endpoints(authority)
    untrusting = dataclasses.replace(
        endpoints, oauth=dataclasses.replace(endpoints.oauth, ca_file="")
    )
    with pytest.raises(OAuthError, match="is not trusted"):
        token_source(settings, untrusting).token()


@dataclasses.dataclass
class BlackHole:
    """A port that accepts connections and never says a word; ``accepted`` counts them."""

    port: int
    held: list[socket.socket]

    @property
    def accepted(self) -> int:
        return len(self.held)


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        hole = BlackHole(int(listener.getsockname()[1]), [])
        stop = threading.Event()

        def hold() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    hole.held.append(listener.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        yield hole
        stop.set()
        thread.join(timeout=5)
        for sock in hole.held:
            sock.close()


def silent_endpoints(authority: OAuthAuthority, hole: BlackHole, timeout: float) -> Any:
    endpoints = oauth_endpoints(authority, timeout=timeout)
    return dataclasses.replace(
        endpoints,
        oauth=dataclasses.replace(
            endpoints.oauth, microsoft_authority=f"https://127.0.0.1:{hole.port}"
        ),
    )


def test_a_provider_that_never_answers_gives_up_after_the_timeout(
    authority: OAuthAuthority, black_hole: BlackHole
) -> None:
    settings = EmailSettings(**sign_in_settings(authority, "microsoft-app", BOX))
    silent = silent_endpoints(authority, black_hole, 0.5)
    with pytest.raises(OAuthError, match=r"^no answer from the Microsoft sign-in service"):
        token_source(settings, silent).token()


# --- settings ------------------------------------------------------------------------------


def test_settings_without_a_mailbox_name_the_column() -> None:
    settings = EmailSettings(smtp_auth="oauth2", oauth_provider="google", oauth_flow="app")
    with pytest.raises(OAuthError, match="oauth_account is empty"):
        token_source(settings, _any_endpoints())


def test_settings_without_a_provider_name_the_column() -> None:
    settings = EmailSettings(smtp_auth="oauth2", oauth_client_id="x", oauth_account="a@b.test")
    with pytest.raises(OAuthError, match="oauth_provider is empty"):
        token_source(settings, _any_endpoints())


def test_the_kept_source_is_the_same_while_the_settings_are(authority: OAuthAuthority) -> None:
    sources = TokenSources(oauth_endpoints(authority), FakeClock())
    settings = EmailSettings(**sign_in_settings(authority, "microsoft-app", BOX))
    first = sources.for_settings("Smile", settings)
    assert sources.for_settings("Smile", dataclasses.replace(settings)) is first


def test_a_new_refresh_token_from_the_wizard_is_taken_up(authority: OAuthAuthority) -> None:
    sources = TokenSources(oauth_endpoints(authority), FakeClock())
    settings = EmailSettings(**sign_in_settings(authority, "microsoft-delegated", BOX))
    source = sources.for_settings("Smile", settings)
    source.token()
    authority.revoke()  # the old grant is gone; the person signed in again in the wizard
    again = dataclasses.replace(settings, oauth_refresh_token=authority.sign_in(PUBLIC_ID, BOX))
    assert authority.check_token(sources.for_settings("Smile", again).token(), BOX) == BOX


def test_incomplete_settings_give_a_source_that_says_why(authority: OAuthAuthority) -> None:
    sources = TokenSources(oauth_endpoints(authority), FakeClock())
    incomplete = EmailSettings(smtp_auth="oauth2", oauth_account=BOX)
    source = sources.for_settings("Smile", incomplete)
    with pytest.raises(OAuthError, match="oauth_client_id is empty"):
        source.token()


def test_a_replaced_refresh_token_is_written_to_email_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    engine = make_engine(url)
    with engine.begin() as conn:
        save_refresh_token(conn, "rt-replacement")
    with engine.connect() as conn:
        stored = conn.execute(select(email_settings.c.oauth_refresh_token)).scalar_one()
        settings = read_settings(conn)
    engine.dispose()
    assert (stored, settings is not None and settings.oauth_refresh_token) == (
        "rt-replacement",
        "rt-replacement",
    )


def _any_endpoints() -> object:
    from actors.mail.oauth import OAuthEndpoints
    from config.settings import OAuthSettings

    return OAuthEndpoints(OAuthSettings(), 1.0)


def test_every_answer_from_the_provider_beats(authority: OAuthAuthority) -> None:
    # A mailbox waiting on a slow provider is busy, not hung: each answer is progress.
    beats: list[int] = []
    progress.install(lambda: beats.append(1))
    try:
        source_for(authority, "microsoft-app").token()
    finally:
        progress.install(None)
    assert len(beats) == 2  # msal's discovery, then the token


def test_a_refusal_is_given_again_without_asking_within_a_minute(
    authority: OAuthAuthority,
) -> None:
    clock = FakeClock()
    source = source_for(authority, "google-delegated", clock=clock)
    authority.revoke()
    for _ in range(3):
        with pytest.raises(OAuthError, match="invalid_grant"):
            source.token()
        clock.advance(REFUSAL_PAUSE / 4)
    assert authority.grants == ["google:refresh_token"]


def test_a_refusal_is_asked_about_again_after_a_minute(authority: OAuthAuthority) -> None:
    clock = FakeClock()
    source = source_for(authority, "google-delegated", clock=clock)
    authority.fail_next("invalid_grant", "Token has been expired or revoked.")
    with pytest.raises(OAuthError):
        source.token()
    clock.advance(REFUSAL_PAUSE)
    assert authority.check_token(source.token(), BOX) == BOX


def test_an_unreachable_provider_is_asked_again_at_once(
    authority: OAuthAuthority, black_hole: BlackHole
) -> None:
    settings = EmailSettings(**sign_in_settings(authority, "microsoft-app", BOX))
    source = token_source(settings, silent_endpoints(authority, black_hole, 0.2))
    for _ in range(2):
        with pytest.raises(OAuthError, match="no answer"):
            source.token()
    wait_until(lambda: black_hole.accepted == 2, "the second connection")


def test_an_older_refresh_token_read_back_is_not_taken_for_a_new_sign_in(
    authority: OAuthAuthority,
) -> None:
    # A save failed: the settings still hold a token this source replaced since.
    sources = TokenSources(oauth_endpoints(authority), FakeClock())
    settings = EmailSettings(**sign_in_settings(authority, "microsoft-delegated", BOX))
    source = sources.for_settings("Smile", settings)
    source.refused(source.token())
    source.token()  # replaced twice now
    stale = sources.for_settings("Smile", settings)  # the first token, read back
    stale.refused(stale.token())
    assert authority.check_token(stale.token(), BOX) == BOX
