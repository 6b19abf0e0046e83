"""actors.mail.inbox: IMAP into email_messages, against real Dovecot and real databases."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from actors.mail.imap_session import ImapError, ImapSession
from actors.mail.inbox import Inbox
from actors.mail.parse import ParsedMessage, derived_message_id, parse_message
from actors.mail.settings import EmailSettings
from actors.practice_db import StaleIncarnationError, claim_incarnation
from actors.practice_schema import email_messages, email_service_inbox, patients
from config.settings import MailSettings
from events.clock import Clock, FakeClock, SystemClock
from events.types import (
    Event,
    InboxSynced,
    MessageParked,
    MessageReceived,
    MessageSkipped,
)
from tests.dovecot import Dovecot, imap_settings_for, make_message, new_practice_engine
from tests.fault_proxy import FaultProxy
from tests.servers import fresh_mariadb_database, fresh_postgres_database

pytest_plugins = ["tests.conftest_imap"]


class Harness:
    """An inbox under test: its database, its events, and a way to restart it."""

    def __init__(
        self, engine: Engine, settings: EmailSettings, mail: MailSettings, clock: Clock
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.mail = mail
        self.clock = clock
        self.events: list[Event] = []
        self.incarnation = 1
        self.inboxes: list[Inbox] = []

    def inbox(self, **kwargs: Any) -> Inbox:
        inbox = Inbox(
            self.engine,
            self.incarnation,
            self.settings,
            self.mail,
            self.events.extend,
            self.clock,
            **kwargs,
        )
        self.inboxes.append(inbox)
        return inbox

    def restart(self, **kwargs: Any) -> Inbox:
        """What the supervisor does after a crash: a new incarnation, a new Inbox."""
        for old in self.inboxes:
            old.close()
        self.incarnation += 1
        claim_incarnation(self.engine, self.incarnation, "test-server", self.clock.now())
        return self.inbox(**kwargs)

    def rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(email_messages).order_by(email_messages.c.id)))

    def mark(self) -> tuple[int | None, int]:
        with self.engine.connect() as conn:
            row = conn.execute(select(email_service_inbox)).one()
        return row.uidvalidity, row.last_uid

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.close()


@pytest.fixture
def harness(
    inbox_engine: Engine, imap_settings: EmailSettings, mail_settings: MailSettings
) -> Iterator[Harness]:
    made = Harness(inbox_engine, imap_settings, mail_settings, FakeClock())
    try:
        yield made
    finally:
        made.close()


def _of(events: list[Event], kind: type[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


# --- importing ------------------------------------------------------------------------


def test_new_mail_is_stored_with_its_fields(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    raw = make_message(
        "Checkup",
        sender="Pat Smith <pat@example.org>",
        to="reception@smile.example",
        cc="nurse@smile.example",
        text="Can I come on Monday?\n",
        html="<p>Can I come on Monday?</p>",
        message_id="<checkup.1@example.org>",
    )
    uid = dovecot.append(imap_user, raw)
    assert harness.inbox().poll() == 1
    [row] = harness.rows()
    assert (row.folder, row.status, row.channel) == ("inbox", "received", "email")
    assert (row.message_id, row.from_addr, row.to_addrs, row.cc_addrs, row.subject) == (
        "<checkup.1@example.org>",
        "pat@example.org",
        "reception@smile.example",
        "nurse@smile.example",
        "Checkup",
    )
    assert row.body_text == "Can I come on Monday?\n"
    assert row.body_html.strip() == "<p>Can I come on Monday?</p>"
    assert row.raw == raw
    assert (row.imap_uidvalidity, row.imap_uid) == (dovecot.uidvalidity(imap_user), uid)
    assert row.received_at is not None
    assert row.last_error is None


def test_events_name_each_row_and_the_new_mark(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    for i in range(3):
        dovecot.append(imap_user, make_message(f"m{i}"))
    harness.inbox(batch_size=2).poll()
    validity = dovecot.uidvalidity(imap_user)
    assert [(e.row_id, e.uid) for e in _of(harness.events, MessageReceived)] == [
        (r.id, r.imap_uid) for r in harness.rows()
    ]
    assert _of(harness.events, InboxSynced) == [
        InboxSynced(1, validity, 2),
        InboxSynced(1, validity, 3),
    ]


@pytest.mark.parametrize(
    ("patient_emails", "linked"),
    [(["PAT@example.org "], True), ([], False), (["pat@example.org", "pat@example.org"], False)],
    ids=["exactly-one", "none", "two"],
)
def test_a_sender_matching_exactly_one_patient_is_linked(
    harness: Harness,
    dovecot: Dovecot,
    imap_user: str,
    patient_emails: list[str],
    linked: bool,
) -> None:
    with harness.engine.begin() as conn:
        conn.execute(insert(patients).values(email="other@example.org"))
        ids = []
        for address in patient_emails:
            key = conn.execute(insert(patients).values(email=address)).inserted_primary_key
            assert key is not None
            ids.append(key[0])
    dovecot.append(imap_user, make_message(sender="Pat <pat@example.org>"))
    harness.inbox().poll()
    [row] = harness.rows()
    assert row.patient_id == (ids[0] if linked else None)


def test_nothing_is_imported_twice_across_polls(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    inbox = harness.inbox()
    dovecot.append(imap_user, make_message("first"))
    first = inbox.poll()
    dovecot.append(imap_user, make_message("second"))
    assert (first, inbox.poll(), inbox.poll()) == (1, 1, 0)
    assert [r.subject for r in harness.rows()] == ["first", "second"]


def test_nothing_is_imported_twice_after_a_restart(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.append(imap_user, make_message("first"))
    harness.inbox().poll()
    assert harness.restart().poll() == 0
    assert len(harness.rows()) == 1


def test_the_mark_advances_in_the_same_transaction_as_the_rows(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    # Given a practice row that already holds UID 2's place, the batch's insert fails:
    # neither UID 1's row nor the mark may be left behind.
    validity = dovecot.uidvalidity(imap_user)
    dovecot.append(imap_user, make_message("one"))
    dovecot.append(imap_user, make_message("two"))
    with harness.engine.begin() as conn:
        conn.execute(
            insert(email_messages).values(
                folder="sent", status="sent", imap_uidvalidity=validity, imap_uid=2
            )
        )
    with pytest.raises(Exception, match=r"(?i)unique"):
        harness.inbox().poll()
    assert [r.folder for r in harness.rows()] == ["sent"]
    assert harness.mark() == (validity, 0)


# --- after import -----------------------------------------------------------------------


def test_delete_removes_imported_mail_from_the_server(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    harness.settings = replace(harness.settings, imap_after_import="delete")
    dovecot.append(imap_user, make_message("gone"))
    harness.inbox().poll()
    assert (len(harness.rows()), dovecot.uids(imap_user)) == (1, [])


def test_move_puts_imported_mail_in_the_folder(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    harness.settings = replace(harness.settings, imap_after_import="move:Done")
    raw = make_message("moved")
    dovecot.append(imap_user, raw)
    harness.inbox().poll()
    assert (dovecot.uids(imap_user), dovecot.messages(imap_user, "Done")) == ([], [raw])


def test_keep_leaves_imported_mail_on_the_server(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    uid = dovecot.append(imap_user, make_message("kept"))
    harness.inbox().poll()
    assert dovecot.uids(imap_user) == [uid]


class _CrashBeforeAction(ImapSession):
    """A real session whose process "dies" right after the commit, before the action."""

    def apply_after_import(self, uids: Any, action: str) -> None:
        if uids and action != "keep":
            raise RuntimeError("crashed between the commit and the after-import action")
        super().apply_after_import(uids, action)


def test_a_crash_before_the_action_imports_nothing_again_and_the_next_run_applies_it(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    harness.settings = replace(harness.settings, imap_after_import="delete")
    dovecot.append(imap_user, make_message("crash"))
    crashing = harness.inbox(open_session=_open_crashing)
    with pytest.raises(RuntimeError, match="crashed between"):
        crashing.poll()
    assert (len(harness.rows()), len(dovecot.uids(imap_user))) == (1, 1)
    assert harness.restart().poll() == 0
    assert (len(harness.rows()), dovecot.uids(imap_user)) == (1, [])


def _open_crashing(
    settings: EmailSettings, mail: MailSettings, clock: Clock, readonly: bool
) -> ImapSession:
    plain = ImapSession.open(settings, mail, clock, readonly=readonly)
    plain.__class__ = _CrashBeforeAction
    return plain


# --- UIDVALIDITY ------------------------------------------------------------------------


def test_a_new_uidvalidity_reimports_without_duplicates(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.create_folder(imap_user, "Practice")
    harness.settings = replace(harness.settings, imap_folder="Practice")
    old = [make_message("a"), make_message("b")]
    for raw in old:
        dovecot.append(imap_user, raw, "Practice")
    harness.inbox().poll()
    new_validity = dovecot.recreate_folder(imap_user, "Practice")
    for raw in [*old, make_message("c")]:
        dovecot.append(imap_user, raw, "Practice")
    assert harness.restart().poll() == 1
    assert [r.subject for r in harness.rows()] == ["a", "b", "c"]
    assert harness.mark() == (new_validity, 3)


def test_a_different_message_reusing_a_message_id_is_stored_under_a_derived_one(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    first = make_message("first", message_id="<shared@example.org>")
    second = make_message("second", message_id="<shared@example.org>")
    dovecot.append(imap_user, first)
    dovecot.append(imap_user, second)
    assert harness.inbox().poll() == 2
    one, two = harness.rows()
    assert (one.message_id, one.raw, two.raw) == ("<shared@example.org>", first, second)
    assert two.message_id == derived_message_id(second)
    assert "<shared@example.org> is already used" in two.last_error
    assert [e.message_id for e in _of(harness.events, MessageReceived)] == [
        "<shared@example.org>",
        two.message_id,
    ]


def test_a_reused_message_id_is_deleted_only_after_it_is_stored(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    harness.settings = replace(harness.settings, imap_after_import="delete")
    dovecot.append(imap_user, make_message("first", message_id="<shared@example.org>"))
    harness.inbox().poll()
    dovecot.append(imap_user, make_message("second", message_id="<shared@example.org>"))
    harness.inbox().poll()
    assert [r.subject for r in harness.rows()] == ["first", "second"]
    assert dovecot.uids(imap_user) == []


def test_a_second_copy_of_the_same_bytes_is_skipped_with_an_event_and_kept_on_the_server(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    harness.settings = replace(harness.settings, imap_after_import="delete")
    raw = make_message("twice")
    dovecot.append(imap_user, raw)
    copy = dovecot.append(imap_user, raw)
    assert harness.inbox().poll() == 1
    [row] = harness.rows()
    [skipped] = _of(harness.events, MessageSkipped)
    assert (skipped.uid, skipped.duplicate_of) == (copy, row.id)
    assert dovecot.uids(imap_user) == [copy]


def test_a_new_uidvalidity_skips_stored_bytes_even_when_a_message_id_is_reused(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.create_folder(imap_user, "Practice")
    harness.settings = replace(harness.settings, imap_folder="Practice")
    old = make_message("old", message_id="<shared@example.org>")
    dovecot.append(imap_user, old, "Practice")
    harness.inbox().poll()
    dovecot.recreate_folder(imap_user, "Practice")
    dovecot.append(imap_user, old, "Practice")
    dovecot.append(imap_user, make_message("new", message_id="<shared@example.org>"), "Practice")
    assert harness.restart().poll() == 1
    assert [r.subject for r in harness.rows()] == ["old", "new"]
    assert [e.uid for e in _of(harness.events, MessageSkipped)] == [1]


# --- bad mail -----------------------------------------------------------------------------


def test_a_malformed_message_is_stored_raw_with_a_note(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    raw = (
        b"From: pat@example.org\r\nSubject: odd\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nHello\r\n"
    )
    dovecot.append(imap_user, raw)
    harness.inbox().poll()
    [row] = harness.rows()
    assert (row.raw, row.from_addr, row.body_text) == (raw, "pat@example.org", "Hello\n")
    assert "could not decode the plain body" in row.last_error


def _parser_that_dies_on_poison(raw: bytes) -> ParsedMessage:
    if b"POISON" in raw:
        raise RuntimeError("the parser died")
    return parse_message(raw)


def test_a_message_that_kills_the_importer_k_times_is_parked(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    limit = harness.mail.poison_limit
    poison = make_message("bad", text="POISON\n")
    dovecot.append(imap_user, poison)
    dovecot.append(imap_user, make_message("good"))
    inbox = harness.inbox(parse=_parser_that_dies_on_poison)
    deaths = 0
    while True:
        try:
            inbox.poll()
            break
        except RuntimeError:
            deaths += 1
            assert deaths <= limit + 1, "it crash-loops"
            inbox = harness.restart(parse=_parser_that_dies_on_poison)
    assert deaths == limit
    parked, good = harness.rows()
    assert (parked.raw, parked.imap_uid, good.subject) == (poison, 1, "good")
    assert parked.last_error.startswith("parked: importing UID 1")
    [event] = _of(harness.events, MessageParked)
    assert (event.uid, event.row_id) == (1, parked.id)


# --- the connection -----------------------------------------------------------------------


def test_idle_returns_early_with_new_mail(
    inbox_engine: Engine,
    dovecot: Dovecot,
    imap_user: str,
    imap_settings: EmailSettings,
    mail_settings: MailSettings,
) -> None:
    harness = Harness(inbox_engine, imap_settings, mail_settings, SystemClock())
    inbox = harness.inbox()
    try:
        assert inbox.poll() == 0
        threading.Timer(0.5, dovecot.append, args=(imap_user, make_message("news"))).start()
        assert inbox.poll(wait_seconds=120) == 1
    finally:
        harness.close()


def test_a_connection_cut_mid_fetch_loses_and_duplicates_nothing(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    raws = [make_message(f"m{i}", text=f"MARKER-{i} " + "x" * 20000) for i in range(5)]
    for raw in raws:
        dovecot.append(imap_user, raw)
    with FaultProxy("127.0.0.1", dovecot.port) as proxy:
        harness.settings = replace(harness.settings, imap_port=proxy.port)
        inbox = harness.inbox(batch_size=2)
        proxy.cut_when(b"MARKER-2", direction="to_client")
        with pytest.raises(ImapError, match="lost"):
            inbox.poll()
        imported_before_cut = len(harness.rows())
        assert inbox.poll() == 5 - imported_before_cut
    assert (imported_before_cut, [r.raw for r in harness.rows()]) == (2, raws)


def test_a_stale_incarnation_imports_nothing(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    stale = harness.inbox()
    claim_incarnation(harness.engine, 2, "test-server", harness.clock.now())
    dovecot.append(imap_user, make_message("late"))
    with pytest.raises(StaleIncarnationError):
        stale.poll()
    assert harness.rows() == []


def test_a_wrong_password_gives_a_plain_reason(harness: Harness) -> None:
    harness.settings = replace(harness.settings, imap_password="not-it-at-all")
    with pytest.raises(ImapError, match="wrong user name or password") as caught:
        harness.inbox().poll()
    assert "not-it-at-all" not in str(caught.value)


# --- other databases ----------------------------------------------------------------------


def _import_on(
    url_context: Callable[[], Any],
    dovecot: Dovecot,
    imap_user: str,
    mail: MailSettings,
) -> None:
    with url_context() as url:
        engine = new_practice_engine(url)
        harness = Harness(engine, imap_settings_for(dovecot, imap_user), mail, FakeClock())
        try:
            raws = [make_message("one"), make_message("two", text="ü " * 100000)]
            for raw in raws:
                dovecot.append(imap_user, raw)
            assert harness.inbox(batch_size=1).poll() == 2
            assert harness.restart().poll() == 0
            assert [r.raw for r in harness.rows()] == raws
            assert harness.mark() == (dovecot.uidvalidity(imap_user), 2)
        finally:
            harness.close()
            engine.dispose()


@pytest.mark.postgres
def test_import_on_postgresql(
    dovecot: Dovecot, imap_user: str, mail_settings: MailSettings
) -> None:
    _import_on(fresh_postgres_database, dovecot, imap_user, mail_settings)


@pytest.mark.mariadb
def test_import_on_mariadb(dovecot: Dovecot, imap_user: str, mail_settings: MailSettings) -> None:
    _import_on(fresh_mariadb_database, dovecot, imap_user, mail_settings)


# --- batches, fetched ahead -----------------------------------------------------------------


def test_several_batches_are_imported_once_each_with_the_mark_after_each(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    uids = [dovecot.append(imap_user, make_message(f"m{i}")) for i in range(5)]
    assert harness.inbox(batch_size=2).poll() == 5
    assert [r.subject for r in harness.rows()] == ["m0", "m1", "m2", "m3", "m4"]
    synced = [e.last_uid for e in _of(harness.events, InboxSynced)]
    assert synced == [uids[1], uids[3], uids[4]]


def test_delete_over_several_batches_empties_the_folder(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    harness.settings = replace(harness.settings, imap_after_import="delete")
    for i in range(5):
        dovecot.append(imap_user, make_message(f"d{i}"))
    harness.inbox(batch_size=2).poll()
    assert (len(harness.rows()), dovecot.uids(imap_user)) == (5, [])


def _parser_that_dies_on(word: bytes) -> Callable[[bytes], ParsedMessage]:
    def parse(raw: bytes) -> ParsedMessage:
        if word in raw:
            raise RuntimeError("the parser died")
        return parse_message(raw)

    return parse


def test_the_next_batch_is_noted_pending_with_the_commit_of_the_one_before(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    uids = [dovecot.append(imap_user, make_message(f"n{i}", text=f"N{i}\n")) for i in range(4)]
    with pytest.raises(RuntimeError):
        harness.inbox(batch_size=2, parse=_parser_that_dies_on(b"N2")).poll()
    with harness.engine.connect() as conn:
        mark = conn.execute(select(email_service_inbox)).one()
    assert (mark.last_uid, mark.pending_uid, mark.pending_attempts) == (uids[1], uids[2], 1)
    assert harness.restart().poll() == 2
    assert [r.subject for r in harness.rows()] == ["n0", "n1", "n2", "n3"]


def test_it_says_whether_it_is_connected_and_waits_in_idle(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    inbox = harness.inbox()
    before = (inbox.connected, inbox.waits_in_idle)
    inbox.poll()
    during = (inbox.connected, inbox.waits_in_idle)
    inbox.close()
    assert (before, during, (inbox.connected, inbox.waits_in_idle)) == (
        (False, False),
        (True, True),
        (False, False),
    )


def test_a_due_self_test_ends_the_round_after_a_batch_and_the_next_poll_goes_on(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    """A long backlog (a weekend's mail, a re-import) must not hold the check-in back: when
    the mailbox's self-test is due the import stops after the batch it is storing."""
    uids = [dovecot.append(imap_user, make_message(f"y{i}")) for i in range(5)]
    inbox = harness.inbox(batch_size=2, must_yield=lambda: True)
    counts = []
    for _ in range(3):
        counts.append((inbox.poll(), inbox.yielded))
    assert counts == [(2, True), (2, True), (1, False)]
    assert [r.subject for r in harness.rows()] == ["y0", "y1", "y2", "y3", "y4"]
    assert harness.mark()[1] == uids[-1]


def test_a_round_that_ends_early_still_deletes_what_it_stored(
    harness: Harness, dovecot: Dovecot, imap_user: str
) -> None:
    harness.settings = replace(harness.settings, imap_after_import="delete")
    uids = [dovecot.append(imap_user, make_message(f"z{i}")) for i in range(5)]
    harness.inbox(batch_size=2, must_yield=lambda: True).poll()
    assert dovecot.uids(imap_user) == uids[2:]
