"""actors.mail.imap_session against a real Dovecot (plain, STARTTLS, TLS)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

import pytest

from actors.mail.imap_session import (
    FetchedMessage,
    ImapError,
    ImapSession,
    internaldate,
    probe,
    read_fetch_data,
)
from actors.mail.settings import EmailSettings
from config.settings import MailSettings
from events.clock import SystemClock
from tests.dovecot import Dovecot, free_port, imap_settings_for
from tests.fault_proxy import FaultProxy

pytest_plugins = ["tests.conftest_imap"]


@pytest.fixture
def session(imap_settings: EmailSettings, mail_settings: MailSettings) -> Iterator[ImapSession]:
    opened = ImapSession.open(imap_settings, mail_settings, SystemClock())
    try:
        yield opened
    finally:
        opened.close()


def _append_later(dovecot: Dovecot, user: str, raw: bytes) -> threading.Timer:
    timer = threading.Timer(0.3, dovecot.append, args=(user, raw))
    timer.start()
    return timer


# --- probe --------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
def test_probe_passes_for_each_security(
    dovecot: Dovecot, imap_user: str, mail_settings: MailSettings, security: str
) -> None:
    settings = imap_settings_for(dovecot, imap_user, security=security)
    assert probe(settings, mail_settings).ok


def test_probe_says_wrong_password_without_showing_it(
    imap_settings: EmailSettings, mail_settings: MailSettings
) -> None:
    result = probe(replace(imap_settings, imap_password="Hunter2-wrong"), mail_settings)
    assert not result.ok
    assert "wrong user name or password" in result.reason
    assert "Hunter2" not in result.reason


def test_probe_says_the_certificate_is_not_trusted_without_the_ca_file(
    dovecot: Dovecot, imap_user: str, mail_settings: MailSettings
) -> None:
    settings = imap_settings_for(dovecot, imap_user, security="tls")
    result = probe(settings, replace(mail_settings, ca_file=""))
    assert "not trusted" in result.reason


def test_probe_says_the_folder_is_missing(
    imap_settings: EmailSettings, mail_settings: MailSettings
) -> None:
    result = probe(replace(imap_settings, imap_folder="Nowhere"), mail_settings)
    assert result.reason.startswith("the folder 'Nowhere' does not exist")


def test_probe_says_the_port_is_closed(
    imap_settings: EmailSettings, mail_settings: MailSettings
) -> None:
    result = probe(replace(imap_settings, imap_port=free_port()), mail_settings)
    assert "is closed (connection refused)" in result.reason


def test_probe_of_a_server_that_never_answers_says_no_answer_in_n_seconds(
    dovecot: Dovecot, imap_settings: EmailSettings, mail_settings: MailSettings
) -> None:
    with FaultProxy("127.0.0.1", dovecot.port) as proxy:
        proxy.black_hole(True)
        settings = replace(imap_settings, imap_port=proxy.port, imap_security="none")
        result = probe(settings, replace(mail_settings, io_timeout_seconds=0.5))
    assert result.reason == f"no answer from 127.0.0.1:{proxy.port} in 0.5 s"


def test_probe_says_when_starttls_is_not_offered(
    own_dovecot: Dovecot, mail_settings: MailSettings
) -> None:
    own_dovecot.add_user("bob", "pw")
    settings = imap_settings_for(own_dovecot, "bob", security="starttls")
    assert "does not offer STARTTLS" in probe(settings, mail_settings).reason


# --- reading ------------------------------------------------------------------------------


def test_uids_after_ignores_the_last_message_that_n_star_returns(
    dovecot: Dovecot, imap_user: str, session: ImapSession
) -> None:
    last = dovecot.append(imap_user, b"Subject: one\r\n\r\nx\r\n")
    assert session.uids_after(last) == []


def test_uids_after_lists_new_uids_in_order(
    dovecot: Dovecot, imap_user: str, session: ImapSession
) -> None:
    uids = [dovecot.append(imap_user, f"Subject: {i}\r\n\r\nx\r\n".encode()) for i in range(3)]
    assert session.uids_after(uids[0]) == uids[1:]


def test_fetch_does_not_mark_messages_read(
    dovecot: Dovecot, imap_user: str, session: ImapSession
) -> None:
    dovecot.append(imap_user, b"Subject: peek\r\n\r\nx\r\n")
    [uid] = session.uids_after(0)
    [fetched] = session.fetch([uid])
    assert fetched.raw == b"Subject: peek\r\n\r\nx\r\n"
    with dovecot.client(imap_user) as imap:
        imap.select_folder("INBOX", readonly=True)
        assert b"\\Seen" not in imap.get_flags([uid])[uid]


# --- after import -------------------------------------------------------------------------


def test_delete_removes_the_messages(
    dovecot: Dovecot, imap_user: str, session: ImapSession
) -> None:
    dovecot.append(imap_user, b"Subject: a\r\n\r\nx\r\n")
    dovecot.append(imap_user, b"Subject: b\r\n\r\nx\r\n")
    first, second = session.uids_after(0)
    session.apply_after_import([first], "delete")
    assert dovecot.uids(imap_user) == [second]


def test_move_puts_the_messages_in_a_new_folder(
    dovecot: Dovecot, imap_user: str, session: ImapSession
) -> None:
    dovecot.append(imap_user, b"Subject: a\r\n\r\nx\r\n")
    session.apply_after_import(session.uids_after(0), "move:Imported")
    assert (dovecot.uids(imap_user), dovecot.messages(imap_user, "Imported")) == (
        [],
        [b"Subject: a\r\n\r\nx\r\n"],
    )


# --- waiting ------------------------------------------------------------------------------


def test_idle_returns_early_when_new_mail_arrives(
    dovecot: Dovecot, imap_user: str, session: ImapSession
) -> None:
    _append_later(dovecot, imap_user, b"Subject: news\r\n\r\nx\r\n")
    assert session.wait(120) is True


def test_idle_without_news_returns_false(session: ImapSession) -> None:
    assert session.wait(1.5) is False


def test_idle_keep_alives_keep_a_quiet_connection_alive(
    imap_settings: EmailSettings, mail_settings: MailSettings
) -> None:
    # Dovecot says "Still here" every second; silence of 2.5 s would mean dead.
    session = ImapSession.open(imap_settings, mail_settings, SystemClock(), dead_after=2.5)
    try:
        assert session.wait(5) is False
    finally:
        session.close()


def test_idle_treats_silence_as_a_dead_connection(
    dovecot: Dovecot, imap_settings: EmailSettings, mail_settings: MailSettings
) -> None:
    with FaultProxy("127.0.0.1", dovecot.port) as proxy:
        settings = replace(imap_settings, imap_port=proxy.port)
        session = ImapSession.open(settings, mail_settings, SystemClock(), dead_after=2.5)
        try:
            # Silence once IDLE is running: the proxy swallows the "Still here"s.
            threading.Timer(0.5, proxy.black_hole, args=(True,)).start()
            with pytest.raises(ImapError, match="no sign of life"):
                session.wait(120)
        finally:
            session.close()


def test_idle_notices_a_kicked_session(
    dovecot: Dovecot, imap_user: str, session: ImapSession
) -> None:
    timer = threading.Timer(0.3, dovecot.kick, args=(imap_user,))
    timer.start()
    with pytest.raises(ImapError, match=r"connection .* was lost"):
        session.wait(120)
    timer.join()


def test_a_dead_session_refuses_further_use(
    dovecot: Dovecot, imap_user: str, session: ImapSession
) -> None:
    dovecot.kick(imap_user)
    with pytest.raises(ImapError):
        session.uids_after(0)
    with pytest.raises(ImapError, match="lost earlier"):
        session.uids_after(0)


# --- reading FETCH answers (pure) -----------------------------------------------------------


def test_a_fetch_answer_is_read_by_uid_with_its_internaldate_in_utc() -> None:
    data = [
        (b'1 (UID 7 INTERNALDATE "05-Jan-2026 09:00:00 +0100" BODY[] {3}', b"abc"),
        b")",
        (b"2 (UID 9 BODY[] {2}", b"de"),
        b' INTERNALDATE " 6-Jan-2026 23:30:00 -0200")',
    ]
    assert read_fetch_data(data) == {
        7: FetchedMessage(7, b"abc", datetime(2026, 1, 5, 8, 0)),
        9: FetchedMessage(9, b"de", datetime(2026, 1, 7, 1, 30)),
    }


def test_unsolicited_flag_updates_in_a_fetch_answer_are_dropped() -> None:
    data = [b"3 (FLAGS (\\Seen))", (b"1 (UID 7 BODY[] {1}", b"x"), b")"]
    assert list(read_fetch_data(data)) == [7]


def test_an_unusual_fetch_answer_is_read_by_imapclient() -> None:
    data = [(b"1 (BODY[] {1}", b"x"), b" UID 7 FLAGS (\\Seen))"]
    assert read_fetch_data(data) == {7: FetchedMessage(7, b"x", None)}


def test_an_internaldate_in_another_form_is_still_read() -> None:
    assert internaldate(b"Mon, 05 Jan 2026 09:00:00 +0000") == datetime(2026, 1, 5, 9, 0)


def test_fetching_ahead_gives_what_fetch_gives(
    session: ImapSession, dovecot: Dovecot, imap_user: str
) -> None:
    uids = [
        dovecot.append(imap_user, f"Subject: {i}\r\n\r\nbody {i}\r\n".encode()) for i in range(3)
    ]
    assert session.uids_after(0) == uids  # a command boundary: the session sees them
    ahead = session.fetch_begin(uids[1:])
    assert session.fetch_end(ahead) == session.fetch(uids[1:])
